// Command gatewaybench measures the ingest gateway on the local stack: single
// POSTs and batches through HTTP on loopback, with and without its Redis
// round trips, and the idempotency claims of a batch pipelined or one by one.
//
//	go run ./bench/gatewaybench -duration 10s -conns 64
//
// The gateway runs in this process (as `eprostream ingest` would, with the
// same emitters and Redis clients); the load comes from -conns keep-alive
// connections. Run bench/anchors.sh (ANCHOR_PARTS="kafka redis") in the same
// session for the Kafka and Redis figures to compare with.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eprostream/eprostream/catalog"
	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/emitters"
	"github.com/eprostream/eprostream/gateway"
	"github.com/eprostream/eprostream/internal/config"
	"github.com/eprostream/eprostream/internal/connect"
	"github.com/eprostream/eprostream/internal/redis/apikeys"
	"github.com/eprostream/eprostream/internal/redis/idempotency"

	"github.com/eprostream/eprostream/internal/kafka/topics"
	"github.com/eprostream/eprostream/internal/redis/fencedlock"
	"github.com/eprostream/eprostream/internal/redis/ratelimit"
)

func main() {
	duration := flag.Duration("duration", 10*time.Second, "length of each HTTP run")
	conns := flag.Int("conns", 64, "concurrent connections for single POSTs")
	batchConns := flag.Int("batch-conns", 4, "concurrent connections for batches")
	batchSize := flag.Int("batch", 500, "submissions per batch")
	profile := flag.String("cpuprofile", "", "write a CPU profile of the whole run here")
	flag.StringVar(&only, "only", "", "run only this: shared, per-request, off or batch")
	flag.Parse()
	if *profile != "" {
		f, err := os.Create(*profile)
		if err == nil {
			_ = pprof.StartCPUProfile(f)
			defer pprof.StopCPUProfile()
		}
	}
	if err := run(*duration, *conns, *batchConns, *batchSize); err != nil {
		fmt.Fprintln(os.Stderr, "gatewaybench:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

type env struct {
	cfg    config.Config
	rdb    *redis.Client
	prefix string
	subs   *emitters.SubmissionEmitter
	cmds   *emitters.CommandEmitter
	enrols *emitters.EnrolmentEmitter
	roster *catalog.Roster
	token  string
	log    *slog.Logger
}

func run(duration time.Duration, conns, batchConns, batchSize int) error {
	cfg, err := config.FromOSEnv()
	if err != nil {
		return err
	}
	stamp := time.Now().Format("150405")
	cfg.TopicPrefix = "bench-gw-" + stamp + "."
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	admin, err := connect.KafkaAdmin(cfg, "gatewaybench")
	if err != nil {
		return err
	}
	defer admin.Close()
	if err := topics.Migrate(context.Background(), admin, topics.Catalogue(cfg.TopicPrefix, 12, 1), log); err != nil {
		return err
	}
	defer func() {
		for _, t := range topics.Catalogue(cfg.TopicPrefix, 12, 1) {
			_ = admin.DeleteTopic(t.Name)
		}
	}()
	e := &env{cfg: cfg, rdb: connect.RedisFailFast(cfg), prefix: "eprostream:bench-gw-" + stamp + ":", log: log}
	defer e.cleanRedis()
	if e.subs, err = emitters.NewSubmissionEmitter(cfg.Emitters(), emitters.Deps{Log: log}); err != nil {
		return err
	}
	defer e.subs.Close()
	if e.cmds, err = emitters.NewCommandEmitter(cfg.Emitters(), emitters.Deps{Log: log}); err != nil {
		return err
	}
	defer e.cmds.Close()
	if e.enrols, err = emitters.NewEnrolmentEmitter(cfg.Emitters(), emitters.Deps{Log: log}); err != nil {
		return err
	}
	defer e.enrols.Close()
	rosterDir, err := os.MkdirTemp("", "gatewaybench-roster-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(rosterDir)
	if e.roster, err = catalog.NewRoster(catalog.RosterConfig{Topic: topics.NewNames(cfg.TopicPrefix).Enrolments, StateDir: rosterDir},
		catalog.RosterDeps{Kafka: cfg.Kafka(), Log: log}); err != nil {
		return err
	}
	rctx, stopRoster := context.WithCancel(context.Background())
	go func() { _ = e.roster.Run(rctx) }()
	defer stopRoster()
	if err := catalog.WaitRecovered(context.Background(), e.roster, time.Minute); err != nil {
		return err
	}
	if _, e.token, err = apikeys.NewStore(e.rdb, e.prefix).Create(context.Background(), apikeys.Spec{Name: "bench",
		Studies: []string{"*"}, Roles: []string{apikeys.RoleSubmit}, RatePerSec: 10_000_000, Lifetime: time.Hour}); err != nil {
		return err
	}
	body := sample("x")
	fmt.Printf("gateway benchmark, %s, %d B per submission, %s per run\n\n", time.Now().UTC().Format("2006-01-02 15:04"), len(body), duration)
	fmt.Println("| run | figure |")
	fmt.Println("|---|---|")
	for _, m := range []mode{redisShared, redisPerRequest, redisOff} {
		if only != "" && only != m.name() {
			continue
		}
		r, err := e.httpRun(m, duration, conns, 1)
		if err != nil {
			return err
		}
		fmt.Printf("| single POST, %d connections, %s | %s |\n", conns, m, r)
	}
	if only != "" && only != "batch" {
		return nil
	}
	r, err := e.httpRun(redisShared, duration, batchConns, batchSize)
	if err != nil {
		return err
	}
	fmt.Printf("| batch of %d, %d connections, Redis on | %s |\n", batchSize, batchConns, r)
	return e.redisCost(batchSize)
}

type mode int

const (
	redisShared     mode = iota // round trips coalesced across requests in flight
	redisPerRequest             // every request its own 4 round trips
	redisOff                    // no limits, no idempotency
)

var only string

func (m mode) name() string { return [...]string{"shared", "per-request", "off"}[m] }

func (m mode) String() string {
	switch m {
	case redisShared:
		return "Redis on, round trips shared by concurrent requests (default)"
	case redisPerRequest:
		return "Redis on, 4 round trips per request (2 GCRA checks, claim, completion)"
	default:
		return "Redis off (no limits, no idempotency)"
	}
}

func (e *env) cleanRedis() {
	ctx := context.Background()
	iter := e.rdb.Scan(ctx, 0, e.prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		e.rdb.Del(ctx, iter.Val())
	}
	_ = e.rdb.Close()
}

func (e *env) gateway(m mode) (*gateway.Gateway, error) {
	deps := gateway.Deps{Keys: apikeys.NewStore(e.rdb, e.prefix), Locks: fencedlock.New(e.rdb, e.prefix),
		Producer: e.subs, Commands: e.cmds, Roster: e.roster, Enrolments: e.enrols, Alerts: noAlerts{}, Log: e.log}
	if m != redisOff {
		lim, err := ratelimit.New(e.rdb, e.prefix, ratelimit.Config{PerKey: 10_000_000, Overall: 10_000_000})
		if err != nil {
			return nil, err
		}
		deps.Limiter, deps.Idempotency = lim, idempotency.New(e.rdb, e.prefix)
	}
	return gateway.New(gateway.Config{Addr: "127.0.0.1:0", MaxBatch: 10_000, NoCoalesce: m == redisPerRequest}, deps)
}

// noAlerts is an empty alert index: the benchmark sends no acknowledgements.
type noAlerts struct{}

func (noAlerts) Get(string) (codecs.AlertOwner, bool, error) { return codecs.AlertOwner{}, false, nil }

var seq atomic.Int64

func sample(id string) []byte {
	return []byte(`{"message_id":"` + id + `","study_id":"ONC-301","site_id":"SITE-012","subject_id":"ONC-301-012-` +
		fmt.Sprintf("%04d", seq.Load()%5000) + `","instrument":"PRO-CTCAE","submitted_at":"` +
		time.Now().UTC().Format(time.RFC3339) + `","source":"app","items":[{"code":"PAIN_SEVERITY","value":2},` +
		`{"code":"NAUSEA_FREQUENCY","value":1},{"code":"FATIGUE_SEVERITY","value":3},{"code":"DIARRHEA_FREQUENCY","value":0},` +
		`{"code":"FATIGUE_INTERFERENCE","value":1},{"code":"NAUSEA_SEVERITY","value":1}]}`)
}

// httpRun drives one gateway for duration over conns connections; each
// request carries batch submissions (1: POST /v1/submissions).
func (e *env) httpRun(m mode, duration time.Duration, conns, batch int) (string, error) {
	gw, err := e.gateway(m)
	if err != nil {
		return "", err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- gw.Serve(ctx, ln) }()
	defer func() { stop(); <-served }()
	url := "http://" + ln.Addr().String() + "/v1/submissions"
	if batch > 1 {
		url += ":batch"
	}
	transport := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}
	client := &http.Client{Transport: transport, Timeout: 30 * time.Second}
	defer transport.CloseIdleConnections()
	var mu sync.Mutex
	var lat []time.Duration
	var ok, bad atomic.Int64
	var firstBad atomic.Value // the first answer that was not an acceptance
	start := time.Now()
	var wg sync.WaitGroup
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for time.Since(start) < duration {
				body := e.requestBody(batch)
				t0 := time.Now()
				req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+e.token)
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					bad.Add(1)
					firstBad.CompareAndSwap(nil, err.Error())
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				mine = append(mine, time.Since(t0))
				switch {
				case batch == 1 && resp.StatusCode == http.StatusAccepted:
					ok.Add(1)
				case batch > 1 && resp.StatusCode == http.StatusOK:
					var res gateway.BatchResult
					_ = json.Unmarshal(b, &res)
					ok.Add(int64(res.Accepted))
					bad.Add(int64(res.Failed))
				default:
					bad.Add(1)
					firstBad.CompareAndSwap(nil, fmt.Sprintf("%d %.300s", resp.StatusCode, b))
				}
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if v := firstBad.Load(); v != nil {
		fmt.Fprintln(os.Stderr, "gatewaybench: first answer other than an acceptance:", v)
	}
	if ok.Load() == 0 {
		// A figure of refused requests measures nothing.
		return "", fmt.Errorf("no submission was accepted (%d failed)", bad.Load())
	}
	slices.Sort(lat)
	pct := func(p float64) time.Duration {
		return lat[min(len(lat)-1, int(p*float64(len(lat))))].Round(10 * time.Microsecond)
	}
	unit := "req/s"
	if batch > 1 {
		unit = "submissions/s"
	}
	return fmt.Sprintf("%.0f %s accepted (%d failed); request p50 %s, p99 %s", float64(ok.Load())/elapsed.Seconds(), unit,
		bad.Load(), pct(0.50), pct(0.99)), nil
}

func (e *env) requestBody(batch int) []byte {
	if batch == 1 {
		return sample(fmt.Sprintf("gw-%d", seq.Add(1)))
	}
	var b strings.Builder
	b.WriteString(`{"submissions":[`)
	for i := range batch {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(sample(fmt.Sprintf("gwb-%d", seq.Add(1))))
	}
	b.WriteString(`]}`)
	return []byte(b.String())
}

// redisCost times the Redis work of one request, and a batch's claims one
// by one against one pipeline.
func (e *env) redisCost(batch int) error {
	ctx := context.Background()
	lim, _ := ratelimit.New(e.rdb, e.prefix, ratelimit.Config{PerKey: 10_000_000, Overall: 10_000_000})
	idem := idempotency.New(e.rdb, e.prefix)
	const n = 5000
	t0 := time.Now()
	for i := range n {
		if _, err := lim.Allow(ctx, "cost", 0, 1); err != nil {
			return err
		}
		c, err := idem.Begin(ctx, fmt.Sprintf("cost-%d", i), "fp")
		if err != nil {
			return err
		}
		if err := idem.Complete(ctx, c, idempotency.Outcome{Status: 202, Body: []byte(`{"message_id":"x"}`)}); err != nil {
			return err
		}
	}
	per := time.Since(t0) / n
	fmt.Printf("| Redis work of one single POST, sequential on one connection (4 round trips) | %s per request |\n", per.Round(time.Microsecond))

	keys, fps := make([]string, batch), make([]string, batch)
	outs := make([]idempotency.Outcome, batch)
	for i := range keys {
		keys[i], fps[i], outs[i] = fmt.Sprintf("one-%d", i), "fp", idempotency.Outcome{Status: 202, Body: []byte("{}")}
	}
	t0 = time.Now()
	for i := range keys {
		c, err := idem.Begin(ctx, keys[i], fps[i])
		if err != nil {
			return err
		}
		_ = idem.Complete(ctx, c, outs[i])
	}
	oneByOne := time.Since(t0)
	for i := range keys {
		keys[i] = fmt.Sprintf("pipe-%d", i)
	}
	t0 = time.Now()
	claims, _, err := idem.BeginMany(ctx, keys, fps)
	if err != nil {
		return err
	}
	if err := idem.CompleteMany(ctx, claims, outs); err != nil {
		return err
	}
	piped := time.Since(t0)
	fmt.Printf("| idempotency of a batch of %d: claim + complete one by one / pipelined | %s / %s (%.0fx) |\n",
		batch, oneByOne.Round(time.Microsecond), piped.Round(time.Microsecond), float64(oneByOne)/float64(piped))
	return nil
}
