package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/gateway"
	"github.com/eprostream/eprostream/internal/redis/ratelimit"
)

func TestSubmitNativeAndFHIR(t *testing.T) {
	f := newFixture(t)
	first := native("ok-1", map[string]any{"x_device": "ios-17"}) // built once: its submitted_at is the clock's second
	r := f.do(request{path: "/v1/submissions", token: f.submit, contentType: "application/json", body: first})
	if r.status != http.StatusAccepted || !strings.Contains(string(r.body), `"message_id":"ok-1"`) {
		t.Fatalf("native: %d %s", r.status, r.body)
	}
	for _, h := range []string{"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"} {
		if r.header.Get(h) == "" {
			t.Errorf("no %s header", h)
		}
	}
	r = f.do(request{path: "/v1/submissions", token: f.submit, contentType: "application/fhir+json", body: fhirResponse("fhir-1")})
	if r.status != http.StatusAccepted {
		t.Fatalf("FHIR: %d %s", r.status, r.body)
	}
	// A retry is answered from Redis, without a second record.
	again := f.do(request{path: "/v1/submissions", token: f.submit, contentType: "application/json", body: first})
	if again.status != http.StatusAccepted || again.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("retry: %d %v", again.status, again.header)
	}
	if n := f.records(f.names.Submissions); n != 2 {
		t.Fatalf("%d records on the topic, want 2", n)
	}
	got := f.readAll(f.names.Submissions)
	var sawFHIR bool
	for _, v := range got {
		sawFHIR = sawFHIR || strings.Contains(string(v), "QuestionnaireResponse")
	}
	if !sawFHIR {
		t.Fatal("the FHIR resource was not forwarded as sent")
	}
}

func TestFiftyConcurrentRetriesProduceOneRecord(t *testing.T) {
	f := newFixture(t)
	body := native("retry-1", nil)
	var wg sync.WaitGroup
	replies := make([]reply, 50)
	start := make(chan struct{})
	for i := range replies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			replies[i] = f.do(request{path: "/v1/submissions", token: f.submit, contentType: "application/json", body: body})
		}()
	}
	close(start)
	wg.Wait()
	for i, r := range replies {
		if r.status != replies[0].status || string(r.body) != string(replies[0].body) {
			t.Fatalf("answer %d differs: %d %s vs %d %s", i, r.status, r.body, replies[0].status, replies[0].body)
		}
	}
	if replies[0].status != http.StatusAccepted {
		t.Fatalf("answer %d %s", replies[0].status, replies[0].body)
	}
	if n := f.records(f.names.Submissions); n != 1 {
		t.Fatalf("%d Kafka records for 50 retries of one submission", n)
	}
}

func TestSameMessageIDDifferentBodyIsRefused(t *testing.T) {
	f := newFixture(t)
	f.do(request{path: "/v1/submissions", token: f.submit, contentType: "application/json", body: native("dup-1", nil)})
	r := f.do(request{path: "/v1/submissions", token: f.submit, contentType: "application/json",
		body: native("dup-1", map[string]any{"items": []map[string]any{{"code": "PAIN_SEVERITY", "value": 4}}})})
	if r.status != http.StatusUnprocessableEntity || !strings.Contains(r.problem().Error, "different body") {
		t.Fatalf("%d %s", r.status, r.body)
	}
}

// failingProducer refuses the first n records, as Kafka does when it is
// down, then passes records to the real producer.
type failingProducer struct {
	next gateway.Producer
	n    atomic.Int32
}

func (p *failingProducer) EmitRawAsync(key string, value []byte, done func(error)) {
	if p.n.Add(-1) >= 0 {
		done(errors.New("kafka: broker not available"))
		return
	}
	p.next.EmitRawAsync(key, value, done)
}

// The idempotency key is marked only after Kafka acknowledged: a failed
// first attempt leaves it free, and the retry stores the submission once.
func TestFailedSendIsNotMarkedDone(t *testing.T) {
	fp := &failingProducer{}
	fp.n.Store(1)
	f := newFixture(t, func(_ *fixture, _ *gateway.Config, d *gateway.Deps) { fp.next = d.Producer; d.Producer = fp })
	body := native("fail-1", nil)
	first := f.do(request{path: "/v1/submissions", token: f.submit, contentType: "application/json", body: body})
	if first.status != http.StatusServiceUnavailable || first.header.Get("Retry-After") == "" {
		t.Fatalf("first attempt: %d %s", first.status, first.body)
	}
	if n := f.records(f.names.Submissions); n != 0 {
		t.Fatalf("%d records after a refused send", n)
	}
	retry := f.do(request{path: "/v1/submissions", token: f.submit, contentType: "application/json", body: body})
	if retry.status != http.StatusAccepted || retry.header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("retry: %d %s %v", retry.status, retry.body, retry.header)
	}
	if n := f.records(f.names.Submissions); n != 1 {
		t.Fatalf("%d records, want the retry's 1", n)
	}
}

func TestBatchResultsPerItem(t *testing.T) {
	f := newFixture(t)
	b0, b1 := native("b-0", nil), native("b-1", nil) // each built once: submitted_at is the clock's second
	f.do(request{path: "/v1/submissions", token: f.submit, contentType: "application/json", body: b0})
	items := []json.RawMessage{b0, b1, native("b-2", map[string]any{"subject_id": nil}),
		b1, fhirResponse("b-3"), native("b-4", map[string]any{"study_id": "CAR-200", "site_id": "SITE-001"})}
	body, _ := json.Marshal(map[string]any{"submissions": items})
	r := f.do(request{path: "/v1/submissions:batch", token: f.submit, contentType: "application/json", body: body})
	var res gateway.BatchResult
	if err := json.Unmarshal(r.body, &res); err != nil || r.status != http.StatusOK {
		t.Fatalf("%d %s", r.status, r.body)
	}
	want := []int{202, 202, 400, 202, 202, 403}
	for i, w := range want {
		if res.Results[i].Status != w || res.Results[i].Index != i {
			t.Errorf("item %d: %+v, want status %d", i, res.Results[i], w)
		}
	}
	if !res.Results[0].Replayed || res.Accepted != 4 || res.Failed != 2 {
		t.Errorf("result %+v", res)
	}
	if len(res.Results[2].Fields) == 0 || res.Results[2].Fields[0].Path != "subject_id" {
		t.Errorf("item 2 fields %+v", res.Results[2].Fields)
	}
	// b-0 single + b-1 + b-3: the replay and the in-batch duplicate add nothing
	if n := f.records(f.names.Submissions); n != 3 {
		t.Fatalf("%d records, want 3", n)
	}
}

func TestRateLimitAnswers429(t *testing.T) {
	f := newFixture(t, func(f *fixture, _ *gateway.Config, d *gateway.Deps) {
		d.Limiter, _ = ratelimit.New(f.rdb, f.prefix, ratelimit.Config{PerKey: 3})
	})
	var limited reply
	accepted := 0
	start := time.Now()
	for i := range 10 {
		r := f.do(request{path: "/v1/submissions", token: f.submit, contentType: "application/json", body: native(fmt.Sprintf("rl-%d", i), nil)})
		switch r.status {
		case http.StatusAccepted:
			accepted++
		case http.StatusTooManyRequests:
			limited = r
		default:
			t.Fatalf("%d %s", r.status, r.body)
		}
	}
	// the burst of 3, plus what refilled at 3/s meanwhile
	if most := 3 + int(3*time.Since(start).Seconds()) + 1; accepted < 3 || accepted > most || limited.status == 0 {
		t.Fatalf("accepted %d of 10 at 3/s, want 3..%d", accepted, most)
	}
	if limited.header.Get("Retry-After") == "" || limited.header.Get("RateLimit-Remaining") != "0" ||
		!strings.Contains(limited.problem().Error, "rate limit of 3 submissions/s") {
		t.Fatalf("429 %v %s", limited.header, limited.body)
	}
	// Another key has its own budget.
	r := f.do(request{path: "/v1/submissions", token: f.all, contentType: "application/json", body: native("rl-other", nil)})
	if r.status != http.StatusAccepted {
		t.Fatalf("other key: %d %s", r.status, r.body)
	}
}

func TestPlanAdjustmentUnderLock(t *testing.T) {
	f := newFixture(t)
	f.enrol("ONC-301-012-0042", "ONC-301", "SITE-012")
	path := "/v1/subjects/ONC-301-012-0042/plan"
	body := []byte(`{"study_id":"ONC-301","plan":{"drug":"capecitabine","dose_mg":1000}}`)
	// Another gateway is adjusting this subject right now.
	held, err := f.locks.Obtain(context.Background(), "plan:"+f.cfg.TopicPrefix+"ONC-301-012-0042", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	r := f.do(request{path: path, token: f.operate, contentType: "application/json", body: body})
	if r.status != http.StatusConflict || !strings.Contains(r.problem().Error, "operation in progress") {
		t.Fatalf("concurrent adjustment: %d %s", r.status, r.body)
	}
	_ = held.Release(context.Background())
	r = f.do(request{path: path, token: f.operate, contentType: "application/json", body: body})
	var acc gateway.CommandAccepted
	_ = json.Unmarshal(r.body, &acc)
	if r.status != http.StatusAccepted || acc.Fence <= held.Fence {
		t.Fatalf("adjustment: %d %s (fence must be above %d)", r.status, r.body, held.Fence)
	}
	cmds := f.readAll(f.names.Commands)
	if len(cmds) != 1 {
		t.Fatalf("%d commands", len(cmds))
	}
	var c codecs.Command
	_ = json.Unmarshal(cmds[0], &c)
	if c.Kind != codecs.CommandPlanAdjusted || c.Fence != acc.Fence || c.SubjectID != "ONC-301-012-0042" || !strings.Contains(string(c.Plan), "capecitabine") {
		t.Fatalf("command %+v", c)
	}
}

func TestAcknowledgeAlert(t *testing.T) {
	f := newFixture(t)
	f.enrol("ONC-301-012-0042", "ONC-301", "SITE-012")
	f.raised("al-42", "ONC-301", "SITE-012", "ONC-301-012-0042")
	for range 2 { // twice: the same command id, so the subject group applies it once
		r := f.do(request{path: "/v1/alerts/al-42/ack", token: f.operate, contentType: "application/json",
			body: []byte(`{"study_id":"ONC-301","subject_id":"ONC-301-012-0042"}`)})
		if r.status != http.StatusAccepted {
			t.Fatalf("%d %s", r.status, r.body)
		}
	}
	cmds := f.readAll(f.names.Commands)
	if len(cmds) != 2 {
		t.Fatalf("%d commands on epro-commands, want the 2 acknowledgements", len(cmds))
	}
	for _, raw := range cmds {
		var c codecs.Command
		_ = json.Unmarshal(raw, &c)
		if c.Kind != codecs.CommandAlertAcknowledged || c.AlertID != "al-42" || c.CommandID != "ack:al-42" {
			t.Fatalf("command %+v", c)
		}
	}
}

// slowProducer holds each record for a while before sending it.
type slowProducer struct {
	next  gateway.Producer
	delay time.Duration
}

func (p slowProducer) EmitRawAsync(key string, value []byte, done func(error)) {
	time.AfterFunc(p.delay, func() { p.next.EmitRawAsync(key, value, done) })
}

func TestGracefulShutdownFinishesInFlightRequests(t *testing.T) {
	f := newFixture(t, func(_ *fixture, _ *gateway.Config, d *gateway.Deps) {
		d.Producer = slowProducer{next: d.Producer, delay: 500 * time.Millisecond}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- f.gw.Serve(ctx, ln) }()
	url := "http://" + ln.Addr().String() + "/v1/submissions"
	results := make(chan int, 5)
	for i := range 5 {
		go func() {
			req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(string(native(fmt.Sprintf("sd-%d", i), nil))))
			req.Header.Set("Authorization", "Bearer "+f.submit)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				results <- 0
				return
			}
			_ = resp.Body.Close()
			results <- resp.StatusCode
		}()
	}
	time.Sleep(200 * time.Millisecond) // the five are in flight
	stop()
	for range 5 {
		if s := <-results; s != http.StatusAccepted {
			t.Fatalf("in-flight request answered %d during shutdown", s)
		}
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}
	if _, err := http.Post(url, "application/json", strings.NewReader("{}")); err == nil {
		t.Fatal("a stopped gateway still accepts connections")
	}
	if n := f.records(f.names.Submissions); n != 5 {
		t.Fatalf("%d records, want 5", n)
	}
}
