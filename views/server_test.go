package views_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/redis/go-redis/v9"

	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/internal/config"
	"github.com/eprostream/eprostream/internal/kafka/kafkaconfig"
	"github.com/eprostream/eprostream/internal/kafka/topics"
	"github.com/eprostream/eprostream/internal/redis/apikeys"
	"github.com/eprostream/eprostream/internal/testenv"
	"github.com/eprostream/eprostream/views"
)

// readSide is a views server on the real Kafka, in a topic prefix of its own.
type readSide struct {
	t        *testing.T
	keys     *apikeys.Store
	token    string // a read key of every study
	sites    *views.Sites
	hooks    *views.Webhooks
	rdb      *redis.Client
	prefix   string
	cfg      config.Config
	names    topics.Names
	producer sarama.SyncProducer
	url      string
	stop     func()
	ack      http.Handler // the server's Acknowledge
}

func newReadSide(t *testing.T) *readSide {
	t.Helper()
	cfg := testenv.KafkaTopics(t, 3)
	producer, err := sarama.NewSyncProducer(cfg.KafkaBrokers, kafkaconfig.Sarama("views-test", cfg.DialTimeout))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = producer.Close() })
	rdb, prefix := testenv.Redis(t)
	r := &readSide{t: t, cfg: cfg, names: topics.NewNames(cfg.TopicPrefix), producer: producer, keys: apikeys.NewStore(rdb, prefix),
		rdb: rdb, prefix: prefix}
	r.token = r.key(apikeys.AllStudies, apikeys.RoleRead)
	return r
}

func (r *readSide) key(study, role string) string {
	r.t.Helper()
	_, token, err := r.keys.Create(context.Background(), apikeys.Spec{Name: "reader", Studies: []string{study}, Roles: []string{role}, Lifetime: time.Hour})
	if err != nil {
		r.t.Fatal(err)
	}
	return token
}

// get sends an authenticated GET.
func (r *readSide) get(path, token string) (*http.Response, []byte) {
	r.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, r.url+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// start runs a views server (a fresh one each call, like a restart).
func (r *readSide) start() {
	r.t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	subjects, err := views.NewSubjects(views.SubjectsConfig{Table: r.names.SubjectTable, StateDir: r.t.TempDir()}, views.SubjectsDeps{Kafka: r.cfg.Kafka(), Log: log})
	if err != nil {
		r.t.Fatal(err)
	}
	client, err := sarama.NewClient(r.cfg.KafkaBrokers, kafkaconfig.Sarama("views-test", r.cfg.DialTimeout))
	if err != nil {
		r.t.Fatal(err)
	}
	hub, err := views.NewHub(views.HubConfig{Topic: r.names.Alerts, Commands: r.names.Commands}, views.HubDeps{Client: client, Log: log})
	if err != nil {
		r.t.Fatal(err)
	}
	srv, err := views.NewServer(views.ServerConfig{}, views.ServerDeps{Subjects: subjects, Hub: hub, Client: client, Keys: r.keys, Acknowledge: r.ack, Log: log})
	if err != nil {
		r.t.Fatal(err)
	}
	if r.sites != nil {
		srv.Handle(r.sites.Register)
	}
	if r.hooks != nil {
		srv.Handle(r.hooks.Register)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	r.url = "http://" + ln.Addr().String()
	var once sync.Once
	r.stop = func() { once.Do(func() { cancel(); <-done; _ = client.Close() }) }
	r.t.Cleanup(r.stop)
	deadline := time.Now().Add(30 * time.Second)
	for !subjects.Recovered() || !closed(hub.Ready()) {
		if time.Now().After(deadline) {
			r.t.Fatal("views did not load within 30 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (r *readSide) restart() { r.stop(); r.start() }

func closed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func (r *readSide) send(topic, key string, v any) {
	r.t.Helper()
	b, _ := json.Marshal(v)
	if _, _, err := r.producer.SendMessage(&sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(key), Value: sarama.ByteEncoder(b)}); err != nil {
		r.t.Fatal(err)
	}
}

func alert(id, severity, site string) codecs.Alert {
	now := time.Now().UTC()
	return codecs.Alert{V: 1, AlertID: id, RuleID: "severe-symptom", RuleVersion: 1, Severity: severity, StudyID: "ONC-301",
		SiteID: site, SubjectID: "ONC-301-001-0001", MessageID: "m-" + id, SubmittedAt: now, RaisedAt: now}
}

func TestGetSubject(t *testing.T) {
	r := newReadSide(t)
	r.send(r.names.SubjectTable, "ONC-301-001-0001", codecs.SubjectState{V: 1, StudyID: "ONC-301", SiteID: "SITE-001",
		SubjectID: "ONC-301-001-0001", Reports: 4, LastAt: time.Now().Unix(),
		Items: map[string]*codecs.ItemHistory{"PAIN_SEVERITY": {BaseN: 3, BaseSum: 3, Recent: []codecs.Point{{T: 1795000000, V: 4}}}},
		Open:  map[string]codecs.OpenCondition{"severe-symptom/PAIN_SEVERITY": {Severity: "urgent", Since: 1795000000, AlertID: "a-1"}},
		Acked: []string{"a-1"}})
	r.start()
	resp, body := r.get("/v1/subjects/ONC-301-001-0001", r.token)
	var v views.SubjectView
	_ = json.Unmarshal(body, &v)
	if resp.StatusCode != 200 || v.Reports != 4 || len(v.OpenAlerts) != 1 || !v.OpenAlerts[0].Acknowledged ||
		v.Baselines["PAIN_SEVERITY"].Mean != 1 || v.Recent["PAIN_SEVERITY"][0].Value != 4 {
		t.Fatalf("%d %+v", resp.StatusCode, v)
	}
	if resp.Header.Get("X-View-Lag-Records") == "" || resp.Header.Get("X-View-Recovered") != "true" {
		t.Fatalf("staleness headers %v", resp.Header)
	}
	otherStudy := r.key("CAR-200", apikeys.RoleRead)
	submitter := r.key(apikeys.AllStudies, apikeys.RoleSubmit)
	for _, c := range []struct {
		path, token string
		want        int
	}{
		{"/v1/subjects/ONC-301-999-9999", r.token, 404},
		{"/v1/subjects/bad%20id!", r.token, 400},
		{"/v1/subjects/ONC-301-001-0001", "", 401},
		{"/v1/subjects/ONC-301-001-0001", "epk_000000000000_" + strings.Repeat("x", 43), 401},
		{"/v1/subjects/ONC-301-001-0001", submitter, 403},
		{"/v1/subjects/ONC-301-001-0001", otherStudy, 404}, // another study's subject is not shown to exist
		{"/v1/alerts/stream?study=ONC-301", otherStudy, 403},
		{"/", "", 200}, // the page holds no data
	} {
		if resp, body := r.get(c.path, c.token); resp.StatusCode != c.want {
			t.Errorf("%s: %d %s, want %d", c.path, resp.StatusCode, body, c.want)
		}
	}
}

// sse reads one event stream; events arrive as "id alert_id".
func sse(t *testing.T, url, lastID string) (<-chan string, func()) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil) // the key travels as ?access_token=, as from a browser
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	ctx, cancel := context.WithCancel(context.Background())
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream: %d %v", resp.StatusCode, resp.Header)
	}
	out := make(chan string, 100)
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		var id, kind string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "id: "):
				id = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "event: "):
				kind = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				var a codecs.Alert
				_ = json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &a)
				if kind == "ack" { // an acknowledgement comes as "ack:<alert id>"
					a.AlertID = "ack:" + a.AlertID
				}
				out <- id + " " + a.AlertID
			}
		}
	}()
	return out, cancel
}

func next(t *testing.T, events <-chan string) (id, alertID string) {
	t.Helper()
	select {
	case e := <-events:
		id, alertID, _ = strings.Cut(e, " ")
		return id, alertID
	case <-time.After(20 * time.Second):
		t.Fatal("no event within 20 s")
		return "", ""
	}
}

func TestAlertStreamFiltersAndResumes(t *testing.T) {
	r := newReadSide(t)
	r.start()
	events, stop := sse(t, r.url+"/v1/alerts/stream?severity=warning&site=SITE-001&access_token="+r.token, "")
	time.Sleep(300 * time.Millisecond) // subscribed
	r.send(r.names.Alerts, "s1", alert("a-info", "info", "SITE-001"))
	r.send(r.names.Alerts, "s1", alert("a-warn", "warning", "SITE-001"))
	r.send(r.names.Alerts, "s1", alert("a-other-site", "urgent", "SITE-002"))
	r.send(r.names.Alerts, "s1", alert("a-urgent", "urgent", "SITE-001"))
	_, first := next(t, events)
	lastID, second := next(t, events)
	if first != "a-warn" || second != "a-urgent" {
		t.Fatalf("stream gave %s, %s; want a-warn, a-urgent", first, second)
	}
	stop()
	// Missed while disconnected, then a restart of the views process.
	for i := range 3 {
		r.send(r.names.Alerts, "s1", alert(fmt.Sprintf("a-missed-%d", i), "urgent", "SITE-001"))
	}
	r.restart()
	events, stop = sse(t, r.url+"/v1/alerts/stream?severity=warning&site=SITE-001&access_token="+r.token, lastID)
	defer stop()
	for i := range 3 {
		if _, got := next(t, events); got != fmt.Sprintf("a-missed-%d", i) {
			t.Fatalf("resumed stream gave %s, want a-missed-%d", got, i)
		}
	}
	// A new page starts with the latest alerts.
	latest, stopLatest := sse(t, r.url+"/v1/alerts/stream?severity=warning&site=SITE-001&recent=2&access_token="+r.token, "")
	defer stopLatest()
	for i := 1; i < 3; i++ {
		if _, got := next(t, latest); got != fmt.Sprintf("a-missed-%d", i) {
			t.Fatalf("recent=2 gave %s, want a-missed-%d", got, i)
		}
	}
	if resp, _ := r.get("/v1/alerts/stream?severity=critical", r.token); resp.StatusCode != 400 {
		t.Fatalf("bad severity: %d", resp.StatusCode)
	}
}

// A read key revoked while its alert stream is open ends the stream within
// the key cache's lifetime (2 s) plus one re-check (1 s); alerts sent
// before the revocation arrived, so the stream was live.
func TestRevokedKeyEndsItsAlertStream(t *testing.T) {
	r := newReadSide(t)
	r.start()
	token := r.key(apikeys.AllStudies, apikeys.RoleRead)
	id, _, _ := strings.Cut(strings.TrimPrefix(token, "epk_"), "_")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.url+"/v1/alerts/stream?access_token="+token, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("stream: %d", resp.StatusCode)
	}
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	time.Sleep(300 * time.Millisecond) // subscribed
	r.send(r.names.Alerts, "s1", alert("a-before", "urgent", "SITE-001"))
	sawAlert := false
	for !sawAlert {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("the stream ended before the revocation")
			}
			sawAlert = strings.HasPrefix(l, "data: ") && strings.Contains(l, "a-before")
		case <-time.After(20 * time.Second):
			t.Fatal("no alert within 20 s: the stream never carried anything")
		}
	}
	if _, err := r.keys.Revoke(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	revoked := time.Now()
	var end string
	timeout := time.After(10 * time.Second)
wait:
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				break wait
			}
			if strings.HasPrefix(l, "data: ") && strings.Contains(l, "revoked") {
				end = l
			}
		case <-timeout:
			break wait
		}
	}
	took := time.Since(revoked)
	if end == "" {
		t.Fatalf("the stream did not end with the revocation (after %s)", took)
	}
	if took > 3*time.Second+500*time.Millisecond {
		t.Fatalf("the stream of a revoked key lasted %s, want at most 3 s", took)
	}
	t.Logf("stream ended %s after the revocation: %s", took.Round(10*time.Millisecond), end)
}
