// Command e2ebench measures eprostream under a steady load through the
// ingest API, with every part running as a process of its own, as in a
// deployment: `eprostream ingest`, `process --group intake`, `subject`,
// `warehouse` and `views`, all from bin/eprostream, on the local stack.
// It sends -rate submissions/s for -duration as single POSTs and reports
//
//   - submit → alert: from a submission's POST to the first time its alert
//     is read from epro-alerts;
//
//   - submit → queryable: from the POST to the first poll (every -poll) of
//     ClickHouse's submissions table that returns the row;
//
//   - each process's resident memory (peak and at the end of the load);
//
//   - the anchor: one Kafka hop (produce with acks=all, then consume) at
//     the same rate, measured in the same run just before.
//
//     go run ./bench/e2ebench -rate 5000 -duration 60s    (make bench-e2e)
//
// Everything it creates (topics, database, Redis keys) carries its own
// stamp and is removed at the end.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/IBM/sarama"
	"golang.org/x/sync/errgroup"
	"golang.org/x/time/rate"

	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/emitters"
	"github.com/eprostream/eprostream/internal/config"
	"github.com/eprostream/eprostream/internal/connect"
	"github.com/eprostream/eprostream/internal/demo"
	"github.com/eprostream/eprostream/internal/kafka/kafkaconfig"
	"github.com/eprostream/eprostream/internal/kafka/topics"
	"github.com/eprostream/eprostream/internal/loadgen"
	"github.com/eprostream/eprostream/internal/redis/apikeys"
)

func main() {
	rateFlag := flag.Int("rate", 5000, "submissions per second")
	duration := flag.Duration("duration", time.Minute, "how long to send")
	conns := flag.Int("conns", 64, "concurrent HTTP connections")
	batch := flag.Int("batch", 1, "submissions per request: 1 POSTs /v1/submissions, more POST /v1/submissions:batch")
	poll := flag.Duration("poll", 100*time.Millisecond, "how often ClickHouse is polled for new rows")
	bin := flag.String("bin", "bin/eprostream", "the eprostream binary")
	profile := flag.String("cpuprofile", "", "write a CPU profile of this process (the load and the readers) to this file")
	flag.Parse()
	if *profile != "" {
		f, err := os.Create(*profile)
		if err == nil && pprof.StartCPUProfile(f) == nil {
			defer pprof.StopCPUProfile()
		}
	}
	if err := run(*bin, *rateFlag, *duration, *conns, max(1, *batch), *poll); err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "e2ebench:", err)
		os.Exit(1)
	}
}

// child is one eprostream process.
type child struct {
	name   string
	cmd    *exec.Cmd
	admin  string
	log    string
	exited chan struct{} // closed once the process has ended
}

const (
	ingestAddr = "127.0.0.1:18190"
	viewsAddr  = "127.0.0.1:18191"
)

func run(bin string, perSec int, duration time.Duration, conns, batch int, poll time.Duration) error {
	ctx := context.Background()
	stamp := strconv.FormatInt(time.Now().Unix(), 10)
	os.Setenv("EPRO_ENV", "bench-e2e-"+stamp)
	os.Setenv("TOPIC_PREFIX", "bench-e2e-"+stamp+".")
	os.Setenv("CLICKHOUSE_DATABASE", "bench_e2e_"+stamp)
	if os.Getenv("LOG_LEVEL") == "" {
		os.Setenv("LOG_LEVEL", "warn")
	}
	os.Setenv("ADMIN_ADDR", "")
	cfg, err := config.FromOSEnv()
	if err != nil {
		return err
	}
	names := topics.NewNames(cfg.TopicPrefix)
	logDir := filepath.Join(envOr("DEVSTACK_DIR", ".devstack"), "bench", "e2e")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return err
	}
	stateDir, err := os.MkdirTemp("", "e2ebench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(stateDir)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	if out, err := exec.Command(bin, "migrate").CombinedOutput(); err != nil {
		return fmt.Errorf("%s migrate: %w\n%s", bin, err, out)
	}
	defer cleanup(cfg)

	total := perSec * int(duration.Seconds())
	how := "single POSTs to /v1/submissions"
	if batch > 1 {
		how = fmt.Sprintf("batches of %d to /v1/submissions:batch", batch)
	}
	fmt.Printf("end-to-end benchmark %s UTC: %d submissions/s for %s as %s (%d connections), every part a process of its own\n\n",
		time.Now().UTC().Format("2006-01-02 15:04"), perSec, duration, how, conns)
	fmt.Println("| measure | figure |")
	fmt.Println("|---|---|")

	p50, p99, err := kafkaHop(cfg, names.Submissions+"-hop", perSec, 10*time.Second)
	if err != nil {
		return err
	}
	fmt.Printf("| anchor: one Kafka hop (sarama produce acks=all → consume) at %d records/s for 10 s | p50 %s, p99 %s |\n", perSec, p50, p99)

	gen, token, err := prepare(ctx, cfg, log, total)
	if err != nil {
		return err
	}

	children := []*child{
		{name: "ingest", admin: "127.0.0.1:19190"},
		{name: "intake", admin: "127.0.0.1:19191"},
		{name: "subject", admin: "127.0.0.1:19192"},
		{name: "warehouse", admin: "127.0.0.1:19193"},
		{name: "views", admin: "127.0.0.1:19194"},
	}
	for _, c := range children {
		var args []string
		switch c.name {
		case "ingest":
			args = []string{"ingest", "--listen", ingestAddr, "--rate-overall", "0"}
		case "views":
			args = []string{"views", "--listen", viewsAddr, "--state-dir", filepath.Join(stateDir, c.name)}
		default:
			// The missed-diary sweep is off: it raises alerts no submission
			// of this run triggered.
			args = []string{"process", "--group", c.name, "--state-dir", filepath.Join(stateDir, c.name), "--schedule-interval", "0"}
		}
		if err := c.start(bin, logDir, args...); err != nil {
			return err
		}
		defer c.stop()
	}
	for _, c := range children {
		if err := c.waitReady(90 * time.Second); err != nil {
			return err
		}
	}

	alerts := newFirstSeen()
	readCtx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	alertErr := make(chan error, 1)
	go func() { alertErr <- readAlerts(readCtx, cfg, names.Alerts, alerts) }()
	conn, err := connect.ClickHouse(cfg, cfg.ClickHouseDatabase)
	if err != nil {
		return err
	}
	defer conn.Close()
	rows := newFirstSeen()
	pollErr := make(chan error, 1)
	go func() { pollErr <- pollRows(readCtx, conn, cfg.ClickHouseDatabase, poll, rows) }()

	sent, answers, sendTime, err := send(ctx, gen, token, perSec, total, conns, batch)
	if err != nil {
		return err
	}
	mem := map[string][2]int{}
	for _, c := range children {
		mem[c.name] = c.memory()
	}
	accepted := answers[http.StatusAccepted]
	if accepted == 0 {
		return fmt.Errorf("no submission was accepted: answers %v", answers)
	}
	// Wait until every accepted submission is queryable, then for the
	// alerts to settle (no new one for 3 s).
	deadline := time.Now().Add(3 * time.Minute)
	for rows.count(sent) < accepted && time.Now().Before(deadline) {
		select {
		case err := <-pollErr:
			return err
		case err := <-alertErr:
			return err
		case <-time.After(200 * time.Millisecond):
		}
	}
	for last := alerts.len(); ; {
		time.Sleep(3 * time.Second)
		if n := alerts.len(); n == last {
			break
		} else {
			last = n
		}
	}
	stopReading()

	fmt.Printf("| submissions | %d sent in %s (%.0f/s), %d accepted (202); other answers: %v |\n",
		sum(answers), sendTime.Round(100*time.Millisecond), float64(sum(answers))/sendTime.Seconds(), accepted, others(answers))
	lat, n := alerts.latencies(sent)
	if n == 0 {
		return errors.New("no alert raised by this run's submissions was read: nothing to measure")
	}
	fmt.Printf("| submit → alert read from epro-alerts (%d distinct alerts) | p50 %s, p99 %s |\n", n, demo.Percentile(lat, 0.5), demo.Percentile(lat, 0.99))
	qlat, qn := rows.latencies(sent)
	fmt.Printf("| submit → queryable in ClickHouse (%d of %d rows, polled every %s) | p50 %s, p99 %s |\n", qn, accepted, poll, demo.Percentile(qlat, 0.5), demo.Percentile(qlat, 0.99))
	var parts []string
	for _, c := range children {
		parts = append(parts, fmt.Sprintf("%s %d MiB (%d)", c.name, mem[c.name][0]>>10, mem[c.name][1]>>10))
	}
	fmt.Printf("| resident memory, peak (at the end of the load) | %s |\n", strings.Join(parts, ", "))
	fmt.Printf("\nprocess logs: %s\n", logDir)
	return nil
}

// prepare creates a submit key and enrols the synthetic trial, sized so
// that its subjects send about total reports.
func prepare(ctx context.Context, cfg config.Config, log *slog.Logger, total int) (*loadgen.Generator, string, error) {
	rdb := connect.Redis(cfg)
	defer rdb.Close()
	_, token, err := apikeys.NewStore(rdb, cfg.RedisPrefix()).Create(ctx, apikeys.Spec{Name: "e2ebench",
		Studies: []string{apikeys.AllStudies}, Roles: []string{apikeys.RoleSubmit}, RatePerSec: 1_000_000, Lifetime: 2 * time.Hour})
	if err != nil {
		return nil, "", err
	}
	lc := loadgen.Config{Seed: 1, SubjectsPerSite: 100, DuplicateRate: -1, MalformedRate: -1, FHIRShare: -1}
	subjects := loadgen.DefaultStudies * loadgen.DefaultSitesPerStudy * lc.SubjectsPerSite
	lc.Days = max(1, int(float64(total)/(3.3*float64(subjects)))+1)
	lc.Start = time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -(lc.Days + 1))
	gen, err := loadgen.New(lc)
	if err != nil {
		return nil, "", err
	}
	em, err := emitters.NewEnrolmentEmitter(cfg.Emitters(), emitters.Deps{Log: log})
	if err != nil {
		return nil, "", err
	}
	defer em.Close()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(32)
	for _, e := range gen.Roster() {
		g.Go(func() error { return em.Emit(gctx, e) })
	}
	return gen, token, g.Wait()
}

// send POSTs total valid records at perSec, one per request or batch per
// batch request, and returns when each was sent, the count of answers by
// status (a batch whose every entry was accepted counts as that many 202s)
// and how long sending took.
func send(ctx context.Context, gen *loadgen.Generator, token string, perSec, total, conns, batch int) (map[string]time.Time, map[int]int, time.Duration, error) {
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}}
	post := func(path string, body []byte) (int, []byte, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+ingestAddr+path, bytes.NewReader(body))
		if err != nil {
			return 0, nil, err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return 0, nil, err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, b, nil
	}
	recs := make([]loadgen.Record, 0, total)
	for len(recs) < total {
		r, ok := gen.Next()
		if !ok {
			break
		}
		if r.Kind == loadgen.Valid {
			recs = append(recs, r)
		}
	}
	// The gateway answers 503 until it has loaded the study registry.
	for start := time.Now(); ; {
		code, _, err := post("/v1/submissions", recs[0].Value)
		if err == nil && code == http.StatusAccepted {
			break
		}
		if time.Since(start) > time.Minute {
			return nil, nil, 0, fmt.Errorf("the gateway did not accept a submission within a minute (last answer %d, %v)", code, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	recs = recs[1:]
	sent := make(map[string]time.Time, len(recs))
	answers := map[int]int{}
	var mu sync.Mutex
	var firstBad atomic.Value
	work := make(chan []loadgen.Record, conns)
	var wg sync.WaitGroup
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for rs := range work {
				at := time.Now()
				var code int
				var body []byte
				var err error
				if len(rs) == 1 && batch == 1 {
					code, body, err = post("/v1/submissions", rs[0].Value)
				} else {
					var b bytes.Buffer
					b.WriteString(`{"submissions":[`)
					for i, r := range rs {
						if i > 0 {
							b.WriteByte(',')
						}
						b.Write(r.Value)
					}
					b.WriteString("]}")
					code, body, err = post("/v1/submissions:batch", b.Bytes())
					if code == http.StatusOK && bytes.Contains(body, []byte(`"failed":0`)) {
						code = http.StatusAccepted
					}
				}
				mu.Lock()
				for _, r := range rs {
					sent[r.MessageID] = at
					answers[code]++
				}
				mu.Unlock()
				if (err != nil || code != http.StatusAccepted) && firstBad.Load() == nil {
					firstBad.Store(fmt.Sprintf("%d %v %.200s", code, err, body))
				}
			}
		}()
	}
	limit := rate.NewLimiter(rate.Limit(perSec), max(batch, perSec/100))
	start := time.Now()
	for i := 0; i < len(recs); i += batch {
		rs := recs[i:min(len(recs), i+batch)]
		if err := limit.WaitN(ctx, len(rs)); err != nil {
			break
		}
		work <- rs
	}
	close(work)
	wg.Wait()
	if v := firstBad.Load(); v != nil {
		fmt.Fprintln(os.Stderr, "e2ebench: first answer other than 202:", v)
	}
	return sent, answers, time.Since(start), nil
}

// firstSeen records when each id was first seen, and which submission it
// belongs to.
type firstSeen struct {
	mu      sync.Mutex
	at      map[string]time.Time
	trigger map[string]string // id → message_id
}

func newFirstSeen() *firstSeen {
	return &firstSeen{at: map[string]time.Time{}, trigger: map[string]string{}}
}

func (f *firstSeen) see(id, messageID string, at time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.at[id]; !ok {
		f.at[id], f.trigger[id] = at, messageID
	}
}

func (f *firstSeen) len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.at)
}

// count is how many ids belong to a sent submission.
func (f *firstSeen) count(sent map[string]time.Time) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for id := range f.at {
		if _, ok := sent[f.trigger[id]]; ok {
			n++
		}
	}
	return n
}

// latencies returns, sorted, the time from each sent submission to its ids.
func (f *firstSeen) latencies(sent map[string]time.Time) ([]time.Duration, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []time.Duration
	for id, at := range f.at {
		if s, ok := sent[f.trigger[id]]; ok {
			out = append(out, at.Sub(s))
		}
	}
	slices.Sort(out)
	return out, len(out)
}

// readAlerts records when each alert on topic is first read, until ctx ends.
func readAlerts(ctx context.Context, cfg config.Config, topic string, seen *firstSeen) error {
	consumer, err := sarama.NewConsumer(cfg.KafkaBrokers, kafkaconfig.Sarama("e2ebench-alerts", cfg.DialTimeout))
	if err != nil {
		return err
	}
	defer consumer.Close()
	return consume(ctx, consumer, topic, func(m *sarama.ConsumerMessage) {
		now := time.Now()
		var a codecs.Alert
		if json.Unmarshal(m.Value, &a) == nil && a.AlertID != "" {
			seen.see(a.AlertID, a.MessageID, now)
		}
	})
}

// consume calls f with every record of every partition of topic, from the
// oldest, until ctx ends (f runs on one goroutine per partition).
func consume(ctx context.Context, consumer sarama.Consumer, topic string, f func(*sarama.ConsumerMessage)) error {
	parts, err := consumer.Partitions(topic)
	if err != nil {
		return err
	}
	var pcs []sarama.PartitionConsumer
	for _, p := range parts {
		pc, err := consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			for _, pc := range pcs {
				pc.Close()
			}
			return err
		}
		pcs = append(pcs, pc)
	}
	var wg sync.WaitGroup
	for _, pc := range pcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer pc.Close()
			for {
				select {
				case <-ctx.Done():
					return
				case m := <-pc.Messages():
					f(m)
				}
			}
		}()
	}
	wg.Wait()
	return nil
}

// pollRows reads the submissions inserted in the last 3 s, every interval
// until ctx ends; a row's first poll is when it became queryable. (Polling
// by offset would miss rows: one insert spanning two months becomes two
// parts, visible one after the other.)
func pollRows(ctx context.Context, conn driver.Conn, db string, interval time.Duration, seen *firstSeen) error {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	q := "SELECT message_id FROM `" + db + "`.submissions PREWHERE inserted_at >= now() - 3"
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		rows, err := conn.Query(ctx, q)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("poll ClickHouse: %w", err)
		}
		now := time.Now()
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			seen.see(id, id, now)
		}
		rows.Close()
	}
}

// kafkaHop produces perSec records/s to a topic of its own for d (acks=all,
// idempotent, as the gateway does) and returns p50 and p99 of produce →
// consume.
func kafkaHop(cfg config.Config, topic string, perSec int, d time.Duration) (time.Duration, time.Duration, error) {
	sc := kafkaconfig.Sarama("e2ebench-hop", cfg.DialTimeout)
	admin, err := sarama.NewClusterAdmin(cfg.KafkaBrokers, sc)
	if err != nil {
		return 0, 0, err
	}
	defer admin.Close()
	if err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 12, ReplicationFactor: 1}, false); err != nil {
		return 0, 0, err
	}
	defer admin.DeleteTopic(topic)
	if err := waitLeaders(cfg, sc, topic, 12); err != nil {
		return 0, 0, err
	}
	pc := kafkaconfig.Sarama("e2ebench-hop", cfg.DialTimeout) // acks=all, idempotent, as every producer of the project
	pc.Producer.Flush.Frequency = time.Millisecond
	producer, err := sarama.NewAsyncProducer(cfg.KafkaBrokers, pc)
	if err != nil {
		return 0, 0, err
	}
	consumer, err := sarama.NewConsumer(cfg.KafkaBrokers, sc)
	if err != nil {
		producer.Close()
		return 0, 0, err
	}
	defer consumer.Close()
	var lat []time.Duration
	var mu sync.Mutex
	readCtx, stopReading := context.WithCancel(context.Background())
	read := make(chan error, 1)
	go func() {
		read <- consume(readCtx, consumer, topic, func(m *sarama.ConsumerMessage) {
			ns, _ := strconv.ParseInt(string(m.Value[:19]), 10, 64)
			mu.Lock()
			lat = append(lat, time.Since(time.Unix(0, ns)))
			mu.Unlock()
		})
	}()
	go func() {
		for range producer.Successes() {
		}
	}()
	go func() {
		for range producer.Errors() {
		}
	}()
	pad := strings.Repeat("x", 360) // about a submission's size
	limit := rate.NewLimiter(rate.Limit(perSec), max(1, perSec/100))
	n := perSec * int(d.Seconds())
	for i := range n {
		_ = limit.Wait(context.Background())
		producer.Input() <- &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(strconv.Itoa(i)),
			Value: sarama.StringEncoder(fmt.Sprintf("%019d", time.Now().UnixNano()) + pad)}
	}
	producer.AsyncClose()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		mu.Lock()
		got := len(lat)
		mu.Unlock()
		if got >= n {
			break
		}
	}
	stopReading()
	if err := <-read; err != nil {
		return 0, 0, err
	}
	if len(lat) == 0 {
		return 0, 0, errors.New("kafka hop: no record came back")
	}
	slices.Sort(lat)
	return demo.Percentile(lat, 0.5), demo.Percentile(lat, 0.99), nil
}

// waitLeaders waits (up to 30 s) until every partition of a new topic has
// a leader that answers.
func waitLeaders(cfg config.Config, sc *sarama.Config, topic string, partitions int32) error {
	client, err := sarama.NewClient(cfg.KafkaBrokers, sc)
	if err != nil {
		return err
	}
	defer client.Close()
	for start := time.Now(); time.Since(start) < 30*time.Second; time.Sleep(200 * time.Millisecond) {
		if client.RefreshMetadata(topic) != nil {
			continue
		}
		ready := int32(0)
		for p := range partitions {
			if _, err := client.Leader(topic, p); err == nil {
				if off, err := client.GetOffset(topic, p, sarama.OffsetNewest); err == nil && off >= 0 {
					ready++
				}
			}
		}
		if ready == partitions {
			return nil
		}
	}
	return fmt.Errorf("topic %s: partitions without a leader after 30 s", topic)
}

func (c *child) start(bin, logDir string, args ...string) error {
	c.log = filepath.Join(logDir, c.name+".log")
	f, err := os.Create(c.log)
	if err != nil {
		return err
	}
	c.cmd = exec.Command(bin, args...)
	c.cmd.Env = append(os.Environ(), "ADMIN_ADDR="+c.admin)
	c.cmd.Stdout, c.cmd.Stderr = f, f
	if err := c.cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", c.name, err)
	}
	c.exited = make(chan struct{})
	go func() { _ = c.cmd.Wait(); f.Close(); close(c.exited) }()
	return nil
}

func (c *child) waitReady(timeout time.Duration) error {
	for start := time.Now(); time.Since(start) < timeout; time.Sleep(200 * time.Millisecond) {
		select {
		case <-c.exited:
			return fmt.Errorf("%s exited: see %s", c.name, c.log)
		default:
		}
		resp, err := http.Get("http://" + c.admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
	return fmt.Errorf("%s not ready after %s: see %s", c.name, timeout, c.log)
}

// memory returns the process's peak and current resident set, in KiB.
func (c *child) memory() [2]int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.cmd.Process.Pid))
	if err != nil {
		return [2]int{}
	}
	var out [2]int
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && (f[0] == "VmHWM:" || f[0] == "VmRSS:") {
			v, _ := strconv.Atoi(f[1])
			if f[0] == "VmHWM:" {
				out[0] = v
			} else {
				out[1] = v
			}
		}
	}
	return out
}

func (c *child) stop() {
	if c.exited == nil {
		return // never started
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(30 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.exited
	}
}

// cleanup removes the run's topics, database and Redis keys.
func cleanup(cfg config.Config) {
	ctx := context.Background()
	if admin, err := connect.KafkaAdmin(cfg, "e2ebench-cleanup"); err == nil {
		for _, t := range topics.Catalogue(cfg.TopicPrefix, cfg.Partitions, 1) {
			_ = admin.DeleteTopic(t.Name)
		}
		admin.Close()
	}
	if conn, err := connect.ClickHouse(cfg, ""); err == nil {
		_ = conn.Exec(ctx, "DROP DATABASE IF EXISTS `"+cfg.ClickHouseDatabase+"`")
		conn.Close()
	}
	rdb := connect.Redis(cfg)
	defer rdb.Close()
	iter := rdb.Scan(ctx, 0, cfg.RedisPrefix()+"*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	for len(keys) > 0 {
		n := min(len(keys), 1000)
		_ = rdb.Del(ctx, keys[:n]...).Err()
		keys = keys[n:]
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func sum(m map[int]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func others(m map[int]int) string {
	var parts []string
	for code, n := range m {
		if code != http.StatusAccepted {
			parts = append(parts, fmt.Sprintf("%d×%d", n, code))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}
