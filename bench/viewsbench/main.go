// Command viewsbench measures the read side on the local stack: GET of a
// subject's view with wrk, the hit ratio of the cached site dashboards,
// and the delay from an alert on Kafka to 1,000 SSE subscribers.
//
//	go run ./bench/viewsbench
//
// The views server runs in this process, on topics and a database of its
// own; redis-benchmark GET runs in the same session as the anchor.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"

	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/internal/clickhouse/schema"
	"github.com/eprostream/eprostream/internal/config"
	"github.com/eprostream/eprostream/internal/connect"
	"github.com/eprostream/eprostream/internal/kafka/kafkaconfig"
	"github.com/eprostream/eprostream/internal/kafka/topics"
	"github.com/eprostream/eprostream/internal/redis/apikeys"
	"github.com/eprostream/eprostream/processors/warehouse"
	"github.com/eprostream/eprostream/views"
)

func main() {
	subjects := flag.Int("subjects", 5000, "subjects in the table")
	duration := flag.Duration("duration", 10*time.Second, "length of the GET run")
	subscribers := flag.Int("subscribers", 1000, "SSE subscribers")
	alerts := flag.Int("alerts", 200, "alerts sent to the subscribers, 20 per second")
	flag.Parse()
	if err := run(*subjects, *duration, *subscribers, *alerts); err != nil {
		fmt.Fprintln(os.Stderr, "viewsbench:", err)
		os.Exit(1)
	}
}

type bench struct {
	sites    *views.Sites
	keys     *apikeys.Store
	token    string // read key of every study
	cfg      config.Config
	names    topics.Names
	producer sarama.SyncProducer
	url      string
	log      *slog.Logger
}

func run(subjects int, duration time.Duration, subscribers, alerts int) error {
	cfg, err := config.FromOSEnv()
	if err != nil {
		return err
	}
	cfg.TopicPrefix = "bench-views-" + time.Now().Format("150405") + "."
	b := &bench{cfg: cfg, names: topics.NewNames(cfg.TopicPrefix), log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	admin, err := connect.KafkaAdmin(cfg, "viewsbench")
	if err != nil {
		return err
	}
	defer admin.Close()
	cat := topics.Catalogue(cfg.TopicPrefix, 12, 1)
	if err := topics.Migrate(context.Background(), admin, cat, b.log); err != nil {
		return err
	}
	defer func() {
		for _, t := range cat {
			_ = admin.DeleteTopic(t.Name)
		}
	}()
	if b.producer, err = sarama.NewSyncProducer(cfg.KafkaBrokers, kafkaconfig.Sarama("viewsbench", cfg.DialTimeout)); err != nil {
		return err
	}
	defer b.producer.Close()
	if err := b.fillTable(subjects); err != nil {
		return err
	}
	dropDB, err := b.warehouse()
	if err != nil {
		return err
	}
	defer dropDB()
	stop, err := b.serve()
	if err != nil {
		return err
	}
	defer stop()
	fmt.Printf("read-side benchmark, %s UTC\n\n| measure | figure | command |\n|---|---|---|\n", time.Now().UTC().Format("2006-01-02 15:04"))
	fmt.Println(redisAnchor())
	for _, conns := range []string{"64", "16"} {
		fmt.Println(b.getSubjects(subjects, duration, conns))
	}
	fmt.Println(b.hotViews(duration))
	return b.fanOut(subscribers, alerts)
}

// warehouse makes a database of 3 studies × 40 sites of submissions and
// the cached site dashboards over it.
func (b *bench) warehouse() (func(), error) {
	ctx := context.Background()
	admin, err := connect.ClickHouse(b.cfg, "")
	if err != nil {
		return nil, err
	}
	db := "bench_views_" + time.Now().Format("150405")
	if err := schema.Migrate(ctx, admin, db, b.log); err != nil {
		return nil, err
	}
	batch, err := admin.PrepareBatch(ctx, "INSERT INTO "+db+".submissions ("+strings.Join(warehouse.Submissions.Columns, ", ")+")")
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	for i := range 12000 {
		v := float64(i % 5)
		row, err := warehouse.SubmissionRow(codecs.CleanSubmission{V: 1, MessageID: fmt.Sprintf("m%d", i), StudyID: fmt.Sprintf("STUDY-%d", i%3),
			SiteID: fmt.Sprintf("SITE-%03d", i%40), SubjectID: fmt.Sprintf("S%d", i%3000), Instrument: "PRO-CTCAE", Format: "native",
			SubmittedAt: now.Add(-time.Duration(i%150) * time.Hour), ReceivedAt: now, Items: []codecs.CleanItem{{Code: "PAIN_SEVERITY", Num: &v}}}, warehouse.Source{Topic: "clean", Offset: int64(i)})
		if err != nil {
			return nil, err
		}
		if err := batch.Append(row.Values...); err != nil {
			return nil, err
		}
	}
	if err := batch.Send(); err != nil {
		return nil, err
	}
	rdb := connect.RedisFailFast(b.cfg)
	prefix := "eprostream:" + strings.ReplaceAll(db, "_", "-") + ":"
	if b.sites, err = views.NewSites(views.SitesConfig{Database: db, RedisPrefix: prefix}, views.SitesDeps{ClickHouse: admin, Redis: rdb, Log: b.log}); err != nil {
		return nil, err
	}
	b.keys = apikeys.NewStore(rdb, prefix)
	if _, b.token, err = b.keys.Create(ctx, apikeys.Spec{Name: "bench", Studies: []string{apikeys.AllStudies},
		Roles: []string{apikeys.RoleRead}, Lifetime: time.Hour}); err != nil {
		return nil, err
	}
	return func() {
		_ = admin.Exec(ctx, "DROP DATABASE IF EXISTS "+db)
		iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
		_ = rdb.Close()
		_ = admin.Close()
	}, nil
}

// hotViews asks for site dashboards from 16 clients (one request in ten
// for a study that does not exist) and reports the cache's hit ratio and
// the queries that reached ClickHouse.
func (b *bench) hotViews(d time.Duration) string {
	var wg sync.WaitGroup
	var n, bad int64
	var mu sync.Mutex
	start := time.Now()
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Since(start) < d; i++ {
				study := fmt.Sprintf("STUDY-%d", (w+i)%3)
				if i%10 == 0 {
					study = fmt.Sprintf("NOPE-%d", i%50)
				}
				req, _ := http.NewRequest(http.MethodGet, b.url+"/v1/sites?study="+study, nil)
				req.Header.Set("Authorization", "Bearer "+b.token)
				resp, err := http.DefaultClient.Do(req)
				mu.Lock()
				n++
				if err != nil || (resp.StatusCode != 200 && resp.StatusCode != 404) {
					bad++
				}
				mu.Unlock()
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					_ = resp.Body.Close()
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(start).Seconds()
	st, _ := b.sites.Stats()
	return fmt.Sprintf("| site dashboards through the cache, 16 clients, 1 request in 10 for an unknown study | %.0f req/s (%d failed), hit ratio %.4f (negative hits %d), %d ClickHouse queries = %.2f/s | `go run ./bench/viewsbench` |",
		float64(n)/el, bad, st.HitRatio(), st.NegativeHits, st.Loads, float64(st.Loads)/el)
}

func (b *bench) fillTable(n int) error {
	msgs := make([]*sarama.ProducerMessage, 0, 1000)
	now := time.Now()
	for i := range n {
		id := fmt.Sprintf("BENCH-%d", i)
		st := codecs.SubjectState{V: 1, StudyID: "ONC-301", SiteID: fmt.Sprintf("SITE-%03d", i%40), SubjectID: id, Reports: 30,
			FirstAt: now.Add(-30 * 24 * time.Hour).Unix(), LastAt: now.Unix(), Items: map[string]*codecs.ItemHistory{}}
		for _, code := range []string{"PAIN_SEVERITY", "NAUSEA_FREQUENCY", "FATIGUE_SEVERITY", "BODY_TEMPERATURE"} {
			h := &codecs.ItemHistory{BaseN: 3, BaseSum: 4}
			for d := range 8 {
				h.Recent = append(h.Recent, codecs.Point{T: now.Add(-time.Duration(d) * 24 * time.Hour).Unix(), V: float64(d % 4)})
			}
			st.Items[code] = h
		}
		v, _ := json.Marshal(st)
		msgs = append(msgs, &sarama.ProducerMessage{Topic: b.names.SubjectTable, Key: sarama.StringEncoder(id), Value: sarama.ByteEncoder(v)})
		if len(msgs) == cap(msgs) || i == n-1 {
			if err := b.producer.SendMessages(msgs); err != nil {
				return err
			}
			msgs = msgs[:0]
		}
	}
	return nil
}

func (b *bench) serve() (func(), error) {
	dir, _ := os.MkdirTemp("", "viewsbench-")
	subjects, err := views.NewSubjects(views.SubjectsConfig{Table: b.names.SubjectTable, StateDir: dir}, views.SubjectsDeps{Kafka: b.cfg.Kafka(), Log: b.log})
	if err != nil {
		return nil, err
	}
	client, err := sarama.NewClient(b.cfg.KafkaBrokers, kafkaconfig.Sarama("viewsbench", b.cfg.DialTimeout))
	if err != nil {
		return nil, err
	}
	// A larger subscriber buffer than production's default (1,024), so the
	// fan-out measures delivery rather than slow-subscriber drops.
	hub, err := views.NewHub(views.HubConfig{Topic: b.names.Alerts, Buffer: 4096}, views.HubDeps{Client: client, Log: b.log})
	if err != nil {
		return nil, err
	}
	srv, err := views.NewServer(views.ServerConfig{}, views.ServerDeps{Subjects: subjects, Hub: hub, Client: client, Keys: b.keys, Log: b.log})
	if err != nil {
		return nil, err
	}
	if b.sites != nil {
		srv.Handle(b.sites.Register)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	b.url = "http://" + ln.Addr().String()
	for !subjects.Recovered() {
		time.Sleep(50 * time.Millisecond)
	}
	<-hub.Ready()
	return func() { cancel(); <-done; _ = client.Close(); _ = os.RemoveAll(dir) }, nil
}

func redisAnchor() string {
	out, _ := exec.Command("redis-benchmark", "-t", "get", "-n", "300000", "-d", "2000", "-q").CombinedOutput()
	m := regexp.MustCompile(`GET: ([0-9.]+) requests per second`).FindSubmatch([]byte(strings.ReplaceAll(string(out), "\r", "\n")))
	fig := "?"
	if m != nil {
		fig = string(m[1]) + " req/s"
	}
	return fmt.Sprintf("| anchor: redis-benchmark GET, 2 KB values, 50 clients | %s | `redis-benchmark -t get -n 300000 -d 2000 -q` |", fig)
}

func (b *bench) getSubjects(n int, d time.Duration, conns string) string {
	cmd := exec.Command("wrk", "-t2", "-c"+conns, "-d"+d.String(), "--latency", "-s", "bench/wrk/subject.lua", b.url)
	cmd.Env = append(os.Environ(), fmt.Sprintf("SUBJECTS=%d", n), "TOKEN="+b.token)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Sprintf("| GET /v1/subjects/{id} | wrk failed: %v %s | |", err, out)
	}
	field := func(re string) string {
		if m := regexp.MustCompile(re).FindSubmatch(out); m != nil {
			return string(m[1])
		}
		return "?"
	}
	if m := regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`).FindSubmatch(out); m != nil {
		return fmt.Sprintf("| GET /v1/subjects/{id} | %s answers were not 200: the run is void | |", m[1])
	}
	return fmt.Sprintf("| GET /v1/subjects/{id}, %d subjects (~2 KB each), wrk %s connections | %s req/s, p50 %s, p99 %s | `wrk -t2 -c%s -d%s --latency -s bench/wrk/subject.lua` |",
		n, conns, field(`Requests/sec:\s+([0-9.]+)`), field(`\s50%\s+(\S+)`), field(`\s99%\s+(\S+)`), conns, d)
}

// fanOut connects subscribers to the stream, sends alerts stamped with
// their send time, and reports the delay until each subscriber had each.
func (b *bench) fanOut(subscribers, alerts int) error {
	var mu sync.Mutex
	var delays []time.Duration
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	transport := &http.Transport{MaxIdleConnsPerHost: subscribers, MaxConnsPerHost: subscribers}
	ready := make(chan struct{}, subscribers)
	for range subscribers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, b.url+"/v1/alerts/stream?access_token="+b.token, nil)
			resp, err := (&http.Client{Transport: transport}).Do(req)
			if err != nil {
				ready <- struct{}{}
				return
			}
			defer resp.Body.Close()
			ready <- struct{}{}
			sc := bufio.NewScanner(resp.Body)
			var mine []time.Duration
			for sc.Scan() {
				line := sc.Text()
				if data, ok := strings.CutPrefix(line, "data: "); ok {
					var a codecs.Alert
					_ = json.Unmarshal([]byte(data), &a)
					mine = append(mine, time.Since(a.RaisedAt))
					if len(mine) == alerts {
						break
					}
				}
			}
			mu.Lock()
			delays = append(delays, mine...)
			mu.Unlock()
		}()
	}
	for range subscribers {
		<-ready
	}
	time.Sleep(500 * time.Millisecond)
	tick := time.NewTicker(50 * time.Millisecond)
	for i := range alerts {
		<-tick.C
		a := codecs.Alert{V: 1, AlertID: fmt.Sprintf("fan-%d", i), RuleID: "r", Severity: "urgent", StudyID: "ONC-301",
			SiteID: "SITE-001", SubjectID: "BENCH-1", MessageID: "m", SubmittedAt: time.Now(), RaisedAt: time.Now()}
		v, _ := json.Marshal(a)
		if _, _, err := b.producer.SendMessage(&sarama.ProducerMessage{Topic: b.names.Alerts, Key: sarama.StringEncoder(a.SubjectID), Value: sarama.ByteEncoder(v)}); err != nil {
			return err
		}
	}
	tick.Stop()
	waited := make(chan struct{})
	go func() { wg.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(30 * time.Second):
		cancel()
		<-waited
	}
	slices.Sort(delays)
	if len(delays) == 0 {
		return fmt.Errorf("no alert reached a subscriber")
	}
	pct := func(p float64) time.Duration {
		return delays[min(len(delays)-1, int(p*float64(len(delays))))].Round(time.Millisecond)
	}
	fmt.Printf("| SSE fan-out: %d subscribers × %d alerts (20/s), alert sent to Kafka → event read by a subscriber | %d of %d events; p50 %s, p99 %s, max %s | `go run ./bench/viewsbench` |\n",
		subscribers, alerts, len(delays), subscribers*alerts, pct(0.5), pct(0.99), delays[len(delays)-1].Round(time.Millisecond))
	return nil
}
