// Command spinebench measures the spine's throughput on the local stack,
// beside a plain sarama consume→produce pass-through of the same records in
// the same run (the anchor), and the subject table's recovery speed.
//
//	go run ./bench/spinebench -records 200000
//
// It creates topics under a fresh prefix and prints Markdown rows for
// bench/RESULTS.md.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eprostream/eprostream/catalog"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"

	"github.com/eprostream/eprostream/internal/config"
	"github.com/eprostream/eprostream/internal/connect"
	"github.com/eprostream/eprostream/internal/kafka/consumerlag"
	"github.com/eprostream/eprostream/internal/kafka/kafkaconfig"
	"github.com/eprostream/eprostream/internal/loadgen"

	"github.com/eprostream/eprostream/internal/kafka/topics"
	"github.com/eprostream/eprostream/processors/intake"
	"github.com/eprostream/eprostream/processors/subject"
)

func main() {
	records := flag.Int("records", 200_000, "records per measurement")
	subjects := flag.Int("subjects-per-site", 250, "subjects per site (2 studies x 10 sites)")
	peer := flag.String("peer", "", "directory of the Kafka Streams peer (its run.sh): compare the subject group with it instead")
	rounds := flag.Int("rounds", 2, "with -peer: rounds, alternating which runs first")
	profile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	flag.Parse()
	if *profile != "" {
		f, err := os.Create(*profile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "spinebench:", err)
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "spinebench:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	var err error
	if *peer != "" {
		err = runPeer(*records, *subjects, *peer, *rounds)
	} else {
		err = run(*records, *subjects)
	}
	if err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "spinebench:", err)
		os.Exit(1)
	}
}

type bench struct {
	cfg    config.Config
	names  topics.Names
	log    *slog.Logger
	client sarama.Client
	admin  sarama.ClusterAdmin
}

// newBench connects to the stack and creates the topics of a fresh prefix.
func newBench(name string) (*bench, error) {
	cfg, err := config.FromOSEnv()
	if err != nil {
		return nil, err
	}
	cfg.TopicPrefix = fmt.Sprintf("bench-%d-%s.", time.Now().Unix(), name)
	b := &bench{cfg: cfg, names: topics.NewNames(cfg.TopicPrefix), log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	admin, err := connect.KafkaAdmin(cfg, "spinebench")
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	specs := append(topics.Catalogue(cfg.TopicPrefix, cfg.Partitions, 1),
		topics.Spec{Name: cfg.TopicPrefix + "passthrough", Partitions: int32(cfg.Partitions), ReplicationFactor: 1})
	if err := topics.Migrate(context.Background(), admin, specs, b.log); err != nil {
		return nil, err
	}
	if b.client, err = sarama.NewClient(cfg.KafkaBrokers, kafkaconfig.Sarama("spinebench", cfg.DialTimeout)); err != nil {
		return nil, err
	}
	if b.admin, err = sarama.NewClusterAdminFromClient(b.client); err != nil {
		_ = b.client.Close()
		return nil, err
	}
	return b, nil
}

func (b *bench) close() { _ = b.admin.Close() }

func lagOf(b *bench, group string, in ...string) (int64, error) {
	return consumerlag.Of(b.client, b.admin, group, in...)
}

func run(n, perSite int) error {
	b, err := newBench("spine")
	if err != nil {
		return err
	}
	defer b.close()
	cfg := b.cfg
	admin, err := connect.KafkaAdmin(cfg, "spinebench")
	if err != nil {
		return err
	}
	defer admin.Close()

	raw, clean, err := b.prepare(n, perSite)
	if err != nil {
		return err
	}
	fmt.Printf("| records | %d submissions (%d clean) of %d subjects, %d partitions |\n", len(raw), len(clean), 20*perSite, cfg.Partitions)

	if err := b.produce(b.names.Clean, clean); err != nil {
		return err
	}
	pass, err := b.passThrough(len(clean))
	if err != nil {
		return err
	}
	fmt.Printf("| anchor: sarama consume→produce pass-through (acks=all, first record consumed → last copy acknowledged) | %.0f records/s |\n", pass)
	sub, err := b.timeGroups(len(clean), "subject")
	if err != nil {
		return err
	}
	fmt.Printf("| subject group alone (epro-clean → subject-table + epro-alerts) | %.0f records/s = %.0f%% of the pass-through |\n", sub, 100*sub/pass)

	// The whole path runs on topics of its own, so the subject group does
	// the full work again rather than skipping duplicates.
	w := *b
	w.cfg.TopicPrefix += "whole."
	w.names = topics.NewNames(w.cfg.TopicPrefix)
	if err := topics.Migrate(context.Background(), admin, topics.Catalogue(w.cfg.TopicPrefix, cfg.Partitions, 1), b.log); err != nil {
		return err
	}
	if err := w.produce(w.names.Submissions, raw); err != nil {
		return err
	}
	whole, err := w.timeGroups(len(raw), "intake", "subject")
	if err != nil {
		return err
	}
	fmt.Printf("| whole path (epro-submissions → intake → subject) | %.0f submissions/s |\n", whole)

	rec, size, err := b.recovery()
	if err != nil {
		return err
	}
	fmt.Printf("| subject-table recovery into a new local store | %.0f records/s (%d records) |\n", rec, size)
	return nil
}

// prepare makes n raw submissions and their clean forms.
func (b *bench) prepare(n, perSite int) (raw, clean []kv, err error) {
	gen, err := loadgen.New(loadgen.Config{Seed: 9, SubjectsPerSite: perSite, Days: 30,
		Start: time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -31)})
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	open, _ := catalog.Load("") // every study, the built-in instruments
	for len(raw) < n {
		r, ok := gen.Next()
		if !ok {
			break
		}
		raw = append(raw, kv{r.Key, r.Value})
		if c, err := intake.Clean(open, r.Value, now); err == nil {
			v, _ := json.Marshal(c)
			clean = append(clean, kv{c.SubjectID, v})
		}
	}
	return raw, clean, nil
}

type kv struct {
	key   string
	value []byte
}

func (b *bench) produce(topic string, records []kv) error {
	cfg := kafkaconfig.Sarama("spinebench", b.cfg.DialTimeout)
	p, err := sarama.NewAsyncProducer(b.cfg.KafkaBrokers, cfg)
	if err != nil {
		return err
	}
	go func() {
		for range p.Successes() {
		}
	}()
	errc := make(chan error, 1)
	go func() {
		var first error
		for e := range p.Errors() {
			if first == nil {
				first = e.Err
			}
		}
		errc <- first
	}()
	for _, r := range records {
		p.Input() <- &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(r.key), Value: sarama.ByteEncoder(r.value)}
	}
	p.AsyncClose()
	return <-errc
}

// passThrough consumes epro-clean's n records in a consumer group and
// produces every record to another topic (acks=all), marking a record
// consumed once its copy is acknowledged: the bare Kafka work of a
// consume → produce step. Its rate is timed from the first record consumed
// to the last copy acknowledged, not from a commit poll.
func (b *bench) passThrough(n int) (float64, error) {
	cfg := kafkaconfig.Sarama("spinebench-pass", b.cfg.DialTimeout)
	group, err := sarama.NewConsumerGroup(b.cfg.KafkaBrokers, b.cfg.TopicPrefix+"passthrough", cfg)
	if err != nil {
		return 0, err
	}
	defer group.Close()
	producer, err := sarama.NewAsyncProducer(b.cfg.KafkaBrokers, cfg)
	if err != nil {
		return 0, err
	}
	defer producer.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h := &passHandler{producer: producer, out: b.cfg.TopicPrefix + "passthrough", n: n, done: make(chan struct{})}
	go func() {
		for ctx.Err() == nil {
			_ = group.Consume(ctx, []string{b.names.Clean}, h)
		}
	}()
	select {
	case <-h.done:
	case <-time.After(3 * time.Minute):
		return 0, fmt.Errorf("pass-through: %d of %d copies acknowledged within 3 minutes", h.acked.Load(), n)
	}
	return float64(n) / h.last.Sub(h.first).Seconds(), nil
}

type passHandler struct {
	producer sarama.AsyncProducer
	out      string
	n        int
	mu       sync.Mutex
	session  sarama.ConsumerGroupSession
	once     sync.Once
	started  sync.Once
	first    time.Time // the first record consumed
	last     time.Time // the n-th copy acknowledged; then done is closed
	acked    atomic.Int64
	done     chan struct{}
}

// Setup starts (once) the loop that marks a record consumed when the broker
// has acknowledged its copy.
func (h *passHandler) Setup(s sarama.ConsumerGroupSession) error {
	h.mu.Lock()
	h.session = s
	h.mu.Unlock()
	h.once.Do(func() {
		go func() {
			for ok := range h.producer.Successes() {
				h.mu.Lock()
				h.session.MarkMessage(ok.Metadata.(*sarama.ConsumerMessage), "")
				h.mu.Unlock()
				if h.acked.Add(1) == int64(h.n) {
					h.last = time.Now()
					close(h.done)
				}
			}
		}()
	})
	return nil
}

func (h *passHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (h *passHandler) ConsumeClaim(_ sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for m := range c.Messages() {
		h.started.Do(func() { h.first = time.Now() })
		h.producer.Input() <- &sarama.ProducerMessage{Topic: h.out, Key: sarama.ByteEncoder(m.Key), Value: sarama.ByteEncoder(m.Value), Metadata: m}
	}
	return nil
}

// timeGroups runs the groups in this process and returns records/s until
// they have committed everything.
func (b *bench) timeGroups(n int, groups ...string) (float64, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, len(groups))
	for _, g := range groups {
		opts := kafkaconfig.GokaOptions(b.cfg.Kafka(), "spinebench-"+g, must(os.MkdirTemp("", "spinebench-")), b.log)
		var p *goka.Processor
		var err error
		if g == "intake" {
			p, err = intake.New(intake.Config{Brokers: b.cfg.KafkaBrokers, Names: b.names}, intake.Deps{Log: b.log}, opts...)
		} else {
			p, err = subject.New(subject.Config{Brokers: b.cfg.KafkaBrokers, Names: b.names}, subject.Deps{Log: b.log}, opts...)
		}
		if err != nil {
			return 0, err
		}
		go func() { errc <- p.Run(ctx) }()
	}
	return b.waitLag(n, func() (int64, error) {
		var total int64
		for _, g := range groups {
			in := []string{b.names.Clean, b.names.Commands}
			if g == "intake" {
				in = []string{b.names.Submissions}
			}
			l, err := consumerlag.Of(b.client, b.admin, topics.Group(b.cfg.TopicPrefix, g), in...)
			if err != nil {
				return 0, err
			}
			total += l
		}
		return total, nil
	})
}

// waitLag times from now until lag() reports 0, and returns n per second.
func (b *bench) waitLag(n int, lag func() (int64, error)) (float64, error) {
	start := time.Now()
	for time.Since(start) < 3*time.Minute {
		time.Sleep(100 * time.Millisecond)
		if l, err := lag(); err == nil && l == 0 && time.Since(start) > time.Second {
			return float64(n) / time.Since(start).Seconds(), nil
		}
	}
	return 0, fmt.Errorf("not drained within 3 minutes")
}

// recovery times a view loading subject-table into a new local store.
func (b *bench) recovery() (float64, int64, error) {
	size, err := consumerlag.Written(b.client, b.names.SubjectTable)
	if err != nil {
		return 0, 0, err
	}
	view, err := goka.NewView(b.cfg.KafkaBrokers, goka.Table(b.names.SubjectTable), subject.StateCodec{},
		kafkaconfig.ViewOptions(b.cfg.Kafka(), "spinebench-view", must(os.MkdirTemp("", "spinebench-view-")), b.log)...)
	if err != nil {
		return 0, 0, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	go func() { _ = view.Run(ctx) }()
	for !view.Recovered() {
		time.Sleep(20 * time.Millisecond)
	}
	return float64(size) / time.Since(start).Seconds(), size, nil
}

func must(s string, err error) string {
	if err != nil {
		panic(err)
	}
	return s
}
