package processors_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/IBM/sarama"

	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/internal/clickhouse/schema"
	"github.com/eprostream/eprostream/internal/config"
	"github.com/eprostream/eprostream/internal/connect"
	"github.com/eprostream/eprostream/internal/kafka/consumerlag"
	"github.com/eprostream/eprostream/internal/kafka/kafkaconfig"
	"github.com/eprostream/eprostream/internal/kafka/topics"
	"github.com/eprostream/eprostream/internal/loadgen"
	"github.com/eprostream/eprostream/internal/testenv"
)

// stack is one test's isolated slice of the real Kafka and ClickHouse.
type stack struct {
	t     *testing.T
	cfg   config.Config
	names topics.Names
	ch    driver.Conn
	db    string
}

func newStack(t *testing.T, partitions int) *stack {
	cfg := testenv.Kafka(t)
	admin, err := connect.KafkaAdmin(cfg, "spine-test")
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := topics.Migrate(context.Background(), admin, topics.Catalogue(cfg.TopicPrefix, partitions, 1), log); err != nil {
		t.Fatal(err)
	}
	ch, db := testenv.ClickHouse(t)
	if err := schema.Migrate(context.Background(), ch, db, log); err != nil {
		t.Fatal(err)
	}
	cfg.ClickHouseDatabase = db
	return &stack{t: t, cfg: cfg, names: topics.NewNames(cfg.TopicPrefix), ch: ch, db: db}
}

// freePort returns a loopback address nobody listens on.
func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// proc is a running `eprostream process`.
type proc struct {
	cmd  *exec.Cmd
	done chan error
	log  string
}

func (s *stack) start(name string, args ...string) *proc {
	s.t.Helper()
	return s.startWithEnv(name, nil, args...)
}

// startWithEnv starts `eprostream process args...` with extra environment.
func (s *stack) startWithEnv(name string, env []string, args ...string) *proc {
	s.t.Helper()
	return s.startCommand(name, env, append([]string{"process"}, args...)...)
}

// startCommand starts `eprostream args...` (any subcommand) with the
// stack's environment and env.
func (s *stack) startCommand(name string, env []string, args ...string) *proc {
	s.t.Helper()
	logPath := filepath.Join(s.t.TempDir(), name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		s.t.Fatal(err)
	}
	cmd := exec.Command(testenv.Binary(s.t), args...)
	cmd.Env = append(os.Environ(), "TOPIC_PREFIX="+s.cfg.TopicPrefix, "ADMIN_ADDR=", "LOG_LEVEL=info",
		"CLICKHOUSE_DATABASE="+s.db,
		"KAFKA_BROKERS="+strings.Join(s.cfg.KafkaBrokers, ","))
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	p := &proc{cmd: cmd, done: make(chan error, 1), log: logPath}
	go func() { p.done <- cmd.Wait(); f.Close() }()
	s.t.Cleanup(func() { p.kill() })
	return p
}

func (p *proc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	p.done <- nil // let a second kill return at once
}

// stop sends SIGTERM and waits for a clean exit.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- nil
		if err != nil {
			t.Fatalf("process exited with %v; log %s:\n%s", err, p.log, tail(p.log))
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("process did not stop within 60s after SIGTERM; log %s", p.log)
	}
}

// readLog returns a process's whole log.
func readLog(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// produce sends every record with acks=all and returns once all are stored.
func (s *stack) produce(records []loadgen.Record) {
	s.t.Helper()
	cfg := kafkaconfig.Sarama("spine-test-producer", s.cfg.DialTimeout)
	cfg.Producer.Flush.Messages = 500
	cfg.Producer.Flush.Frequency = 5 * time.Millisecond
	producer, err := sarama.NewAsyncProducer(s.cfg.KafkaBrokers, cfg)
	if err != nil {
		s.t.Fatal(err)
	}
	var failed error
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for range producer.Successes() {
		}
	}()
	go func() {
		defer wg.Done()
		for e := range producer.Errors() {
			failed = e.Err
		}
	}()
	for _, r := range records {
		producer.Input() <- &sarama.ProducerMessage{Topic: s.names.Submissions, Key: sarama.StringEncoder(r.Key), Value: sarama.ByteEncoder(r.Value)}
	}
	producer.AsyncClose()
	wg.Wait()
	if failed != nil {
		s.t.Fatal(failed)
	}
}

// waitDrained waits until intake and subject have committed everything
// (checked twice in a row, since intake feeds subject).
func (s *stack) waitDrained(timeout time.Duration, procs ...*proc) {
	s.waitGroups(timeout, map[string][]string{
		"intake":  {s.names.Submissions},
		"subject": {s.names.Clean, s.names.Commands},
	}, procs...)
}

// waitAll also waits for the warehouse group.
func (s *stack) waitAll(timeout time.Duration, procs ...*proc) {
	s.waitGroups(timeout, s.inputs(), procs...)
}

// pending is the number of records the spine's groups have not committed
// yet (their consumer lag on every input, added up), or -1 when it cannot
// be read.
func (s *stack) pending() int64 {
	client, err := sarama.NewClient(s.cfg.KafkaBrokers, kafkaconfig.Sarama("spine-test-lag", s.cfg.DialTimeout))
	if err != nil {
		return -1
	}
	defer client.Close()
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		return -1
	}
	var total int64
	for g, in := range s.inputs() {
		n, err := consumerlag.Of(client, admin, topics.Group(s.cfg.TopicPrefix, g), in...)
		if err != nil {
			return -1
		}
		total += n
	}
	return total
}

// inputs are the spine's groups and the topics each reads.
func (s *stack) inputs() map[string][]string {
	return map[string][]string{
		"intake":    {s.names.Submissions},
		"subject":   {s.names.Clean, s.names.Commands},
		"warehouse": {s.names.Clean, s.names.Alerts, s.names.DLQ, s.names.Commands, s.names.Enrolments, s.names.Audit, s.names.Questionnaires},
	}
}

func (s *stack) waitGroups(timeout time.Duration, groups map[string][]string, procs ...*proc) {
	s.t.Helper()
	client, err := sarama.NewClient(s.cfg.KafkaBrokers, kafkaconfig.Sarama("spine-test-lag", s.cfg.DialTimeout))
	if err != nil {
		s.t.Fatal(err)
	}
	defer client.Close()
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		s.t.Fatal(err)
	}
	deadline := time.Now().Add(timeout)
	zero := 0
	for zero < 2 {
		if time.Now().After(deadline) {
			for _, p := range procs {
				s.t.Logf("log %s:\n%s", p.log, tail(p.log))
			}
			s.t.Fatalf("groups did not drain within %s", timeout)
		}
		for _, p := range procs {
			select {
			case err := <-p.done:
				p.done <- err
				s.t.Fatalf("process exited early (%v); log:\n%s", err, tail(p.log))
			default:
			}
		}
		time.Sleep(time.Second)
		var total int64
		var failed error
		for g, in := range groups {
			n, err := consumerlag.Of(client, admin, topics.Group(s.cfg.TopicPrefix, g), in...)
			total, failed = total+n, errors.Join(failed, err)
		}
		if failed != nil || total > 0 {
			zero = 0
			continue
		}
		zero++
	}
}

// readAll returns every record of topic, all partitions, up to now.
func (s *stack) readAll(topic string) []*sarama.ConsumerMessage {
	s.t.Helper()
	consumer, err := sarama.NewConsumer(s.cfg.KafkaBrokers, kafkaconfig.Sarama("spine-test-reader", s.cfg.DialTimeout))
	if err != nil {
		s.t.Fatal(err)
	}
	defer consumer.Close()
	client, err := sarama.NewClient(s.cfg.KafkaBrokers, kafkaconfig.Sarama("spine-test-reader", s.cfg.DialTimeout))
	if err != nil {
		s.t.Fatal(err)
	}
	defer client.Close()
	parts, err := client.Partitions(topic)
	if err != nil {
		s.t.Fatal(err)
	}
	var out []*sarama.ConsumerMessage
	for _, p := range parts {
		hwm, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			s.t.Fatal(err)
		}
		oldest, _ := client.GetOffset(topic, p, sarama.OffsetOldest)
		if hwm <= oldest {
			continue
		}
		pc, err := consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			s.t.Fatal(err)
		}
		for msg := range pc.Messages() {
			out = append(out, msg)
			if msg.Offset >= hwm-1 {
				break
			}
		}
		pc.Close()
	}
	return out
}

// alertKeys reads epro-alerts: the set of alert identities and of alert ids.
func (s *stack) alerts() (keys map[string]bool, ids map[string]bool) {
	keys, ids = map[string]bool{}, map[string]bool{}
	for _, m := range s.readAll(s.names.Alerts) {
		v, err := codecs.JSON[codecs.Alert]{}.Decode(m.Value)
		if err != nil {
			s.t.Fatalf("undecodable alert: %v", err)
		}
		a := v.(codecs.Alert)
		keys[strings.Join([]string{a.RuleID, a.SubjectID, a.MessageID, a.Evidence.Item, a.Severity}, "|")] = true
		ids[a.AlertID] = true
	}
	return keys, ids
}

// table reads subject-table: the latest state of each subject.
func (s *stack) table() map[string]codecs.SubjectState {
	out := map[string]codecs.SubjectState{}
	for _, m := range s.readAll(s.names.SubjectTable) {
		v, err := codecs.DecodeState(m.Value)
		if err != nil {
			s.t.Fatalf("undecodable state: %v", err)
		}
		out[string(m.Key)] = v
	}
	return out
}

// stored is the number of records on topic (its partitions' end offsets
// added up), or -1 when the broker does not answer.
func (s *stack) stored(topic string) int64 {
	client, err := sarama.NewClient(s.cfg.KafkaBrokers, kafkaconfig.Sarama("spine-test-stored", s.cfg.DialTimeout))
	if err != nil {
		return -1
	}
	defer client.Close()
	parts, err := client.Partitions(topic)
	if err != nil {
		return -1
	}
	var n int64
	for _, p := range parts {
		hwm, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			return -1
		}
		n += hwm
	}
	return n
}
