package webhooks_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/internal/testenv"
	"github.com/eprostream/eprostream/webhooks"
)

// bound is how long a test waits for anything; reaching it is a failure.
const bound = 15 * time.Second

// fastRetries keeps retry tests short.
var fastRetries = webhooks.Config{Attempts: 3, InitialBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond}

// receiver is a subscriber's endpoint: it verifies every request and
// answers what respond says (200 when nil).
type receiver struct {
	t        *testing.T
	srv      *httptest.Server
	respond  func(req *http.Request, alertID string, try int) int
	entered  chan string // alert id of every request, as it arrives
	accepted chan string // alert id of every request answered 2xx
	release  chan struct{}
	once     sync.Once

	mu     sync.Mutex
	secret string
	tries  map[string]int
	got    []string // accepted alert ids, in order
}

func newReceiver(t *testing.T, respond func(req *http.Request, alertID string, try int) int) *receiver {
	rc := &receiver{t: t, respond: respond, entered: make(chan string, 100), accepted: make(chan string, 100),
		release: make(chan struct{}), tries: map[string]int{}}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(func() { rc.unblock(); rc.srv.Close() })
	return rc
}

// blockUntilReleased answers 200 once unblock is called, unless the
// sender gave up first.
func (rc *receiver) blockUntilReleased(req *http.Request) int {
	select {
	case <-rc.release:
		return http.StatusOK
	case <-req.Context().Done():
		return http.StatusServiceUnavailable // the sender gave up; not delivered
	}
}

func (rc *receiver) unblock() { rc.once.Do(func() { close(rc.release) }) }

func (rc *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	rc.mu.Lock()
	secret := rc.secret
	rc.mu.Unlock()
	if err := webhooks.Verify(secret, req.Header, body, time.Now(), time.Minute); err != nil {
		rc.t.Errorf("receiver: %v", err)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var a codecs.Alert
	if err := json.Unmarshal(body, &a); err != nil || a.AlertID != req.Header.Get(webhooks.HeaderAlertID) ||
		req.Header.Get("Content-Type") != "application/json" {
		rc.t.Errorf("receiver: body %s (%v), headers %v", body, err, req.Header)
	}
	select {
	case rc.entered <- a.AlertID:
	default:
	}
	rc.mu.Lock()
	rc.tries[a.AlertID]++
	try := rc.tries[a.AlertID]
	rc.mu.Unlock()
	status := http.StatusOK
	if rc.respond != nil {
		status = rc.respond(req, a.AlertID, try)
	}
	if status/100 == 2 {
		rc.mu.Lock()
		rc.got = append(rc.got, a.AlertID)
		rc.mu.Unlock()
		select {
		case rc.accepted <- a.AlertID:
		default:
		}
	}
	w.WriteHeader(status)
}

func (rc *receiver) received() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.got)
}

func (rc *receiver) triesOf(id string) int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.tries[id]
}

// subscribe creates a subscription to rc (all studies unless spec says).
func subscribe(t *testing.T, store *webhooks.Store, rc *receiver, spec webhooks.Spec) webhooks.Subscription {
	t.Helper()
	spec.Name, spec.URL = t.Name(), rc.srv.URL+"/hook"
	if spec.Studies == nil {
		spec.Studies = []string{webhooks.AllStudies}
	}
	sub, secret, err := store.Create(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	rc.mu.Lock()
	rc.secret = secret
	rc.mu.Unlock()
	return sub
}

// running is a Deliverer whose Run goes on until stop (or the test ends).
type running struct {
	*webhooks.Deliverer
	stop func() error
}

func run(t *testing.T, store *webhooks.Store, cfg webhooks.Config) running {
	t.Helper()
	return runWith(t, store, cfg, nil)
}

// runWith runs a Deliverer that checks subscription owners with owners.
func runWith(t *testing.T, store *webhooks.Store, cfg webhooks.Config, owners webhooks.Owners) running {
	t.Helper()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	d, err := webhooks.New(cfg, webhooks.Deps{Store: store, Owners: owners, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(bound):
				t.Error("Run did not return after its context ended")
			}
		})
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	return running{Deliverer: d, stop: stop}
}

func newStore(t *testing.T) *webhooks.Store {
	rdb, prefix := testenv.Redis(t)
	return webhooks.NewStore(rdb, prefix)
}

func alert(id, study, site, severity string) codecs.Alert {
	return codecs.Alert{V: 1, AlertID: id, RuleID: "pain-nrs", RuleVersion: 1, Severity: severity,
		StudyID: study, SiteID: site, SubjectID: study + "-0042", MessageID: "m-" + id,
		RaisedAt: time.Now().UTC(), Evidence: codecs.Evidence{Item: "PAIN_NRS", Values: []float64{8, 9}, Threshold: 7}}
}

// enqueue queues alerts in order and returns a channel per alert, closed
// when it is settled.
func enqueue(t *testing.T, d running, alerts ...codecs.Alert) []chan struct{} {
	t.Helper()
	settled := make([]chan struct{}, len(alerts))
	for i, a := range alerts {
		ch := make(chan struct{})
		settled[i] = ch
		if err := d.Enqueue(context.Background(), a, func() { close(ch) }); err != nil {
			t.Fatalf("enqueue %s: %v", a.AlertID, err)
		}
	}
	return settled
}

func waitAll(t *testing.T, what string, chans ...chan struct{}) {
	t.Helper()
	deadline := time.After(bound)
	for i, ch := range chans {
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("%s: #%d not done within %s", what, i, bound)
		}
	}
}

// waitFor reads ids from ch (a receiver's entered or accepted) until id.
func waitFor(t *testing.T, ch chan string, id string) {
	t.Helper()
	deadline := time.After(bound)
	for {
		select {
		case got := <-ch:
			if got == id {
				return
			}
		case <-deadline:
			t.Fatalf("alert %s did not reach the receiver within %s", id, bound)
		}
	}
}
