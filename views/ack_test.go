package views_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/internal/redis/apikeys"
	"github.com/eprostream/eprostream/views"
)

func ackCommand(alertID, subject string) codecs.Command {
	return codecs.Command{V: 1, CommandID: "ack:" + alertID, Kind: codecs.CommandAlertAcknowledged, StudyID: "ONC-301",
		SubjectID: subject, AlertID: alertID, At: time.Now().UTC(), By: "k1"}
}

// An acknowledgement on epro-commands reaches every open stream as an
// "ack" event, after the alert in a new page's backlog and live, under the
// stream's own filters; other commands are not shown. The subject view
// lists the subject's alerts with it, and the fever threshold of its rule
// set.
func TestAcknowledgementsReachEveryStream(t *testing.T) {
	r := newReadSide(t)
	subject := "ONC-301-001-0001"
	r.send(r.names.SubjectTable, subject, codecs.SubjectState{V: 1, StudyID: "ONC-301", SiteID: "SITE-001", SubjectID: subject,
		Reports: 1, LastAt: time.Now().Unix(),
		Items: map[string]*codecs.ItemHistory{"BODY_TEMPERATURE": {Recent: []codecs.Point{{T: time.Now().Unix(), V: 38.6}}}}})
	r.send(r.names.Alerts, subject, alert("a-1", "warning", "SITE-001"))
	r.send(r.names.Commands, subject, ackCommand("a-1", subject))
	r.send(r.names.Commands, subject, codecs.Command{V: 1, CommandID: "check:1", Kind: codecs.CommandCheckSchedule, SubjectID: subject, At: time.Now()})
	r.start()

	page, stop := sse(t, r.url+"/v1/alerts/stream?site=SITE-001&recent=10&access_token="+r.token, "")
	defer stop()
	if _, got := next(t, page); got != "a-1" {
		t.Fatalf("backlog began with %s, want a-1", got)
	}
	if _, got := next(t, page); got != "ack:a-1" {
		t.Fatalf("backlog gave %s after a-1, want its acknowledgement", got)
	}
	other := alert("a-2", "urgent", "SITE-002")
	r.send(r.names.Alerts, subject, other)
	r.send(r.names.Commands, subject, ackCommand("a-2", subject)) // SITE-002's: not on this stream
	r.send(r.names.Alerts, subject, alert("a-3", "urgent", "SITE-001"))
	r.send(r.names.Commands, subject, ackCommand("a-3", subject))
	for _, want := range []string{"a-3", "ack:a-3"} {
		if _, got := next(t, page); got != want {
			t.Fatalf("live stream gave %s, want %s (the other site's alert and acknowledgement must not show)", got, want)
		}
	}

	if _, body := r.get("/v1/subjects/"+subject, r.token); strings.Contains(string(body), `"thresholds"`) || strings.Contains(string(body), `"alerts"`) {
		t.Fatalf("without ?with= the answer is the state alone: %s", body)
	}
	if resp, _ := r.get("/v1/subjects/"+subject+"?with=everything", r.token); resp.StatusCode != 400 {
		t.Fatalf("?with=everything: %d, want 400", resp.StatusCode)
	}
	resp, body := r.get("/v1/subjects/"+subject+"?with=thresholds,alerts", r.token)
	var v views.SubjectView
	if err := json.Unmarshal(body, &v); err != nil || resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if len(v.Alerts) != 3 || v.Alerts[0].AlertID != "a-3" || v.Alerts[0].AcknowledgedAt == nil || v.Alerts[2].AlertID != "a-1" || v.Alerts[2].AcknowledgedAt == nil {
		t.Fatalf("subject's alerts %+v", v.Alerts)
	}
	if l := v.Thresholds["BODY_TEMPERATURE"]; len(l) != 1 || l[0].Value != 38.0 || l[0].RuleID != "fever" {
		t.Fatalf("thresholds %+v", v.Thresholds)
	}
}

// The page's acknowledgements are forwarded, with the caller's key and
// body and nothing else, to the ingest API; GET /v1/me tells the page
// whether to offer them.
func TestAcknowledgeIsForwardedToTheIngestAPI(t *testing.T) {
	var mu sync.Mutex
	var got []string
	ingest := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		mu.Lock()
		got = append(got, req.Method+" "+req.URL.String()+" "+req.Header.Get("Authorization")+" "+string(b))
		mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte(`{"status":"accepted"}`))
	}))
	defer ingest.Close()
	proxy, err := views.AckProxy(ingest.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := newReadSide(t)
	r.ack = proxy
	r.start()
	operator := r.key("ONC-301", apikeys.RoleOperate)
	post := func(path, token string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, r.url+path, strings.NewReader(`{"study_id":"ONC-301","subject_id":"S1"}`))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if status, body := post("/v1/alerts/a-1/ack?access_token=x", operator); status != 202 {
		t.Fatalf("forwarded acknowledgement: %d %s", status, body)
	}
	mu.Lock()
	if want := `POST /v1/alerts/a-1/ack Bearer ` + operator + ` {"study_id":"ONC-301","subject_id":"S1"}`; len(got) != 1 || got[0] != want {
		t.Fatalf("ingest API got %q, want %q", got, want)
	}
	mu.Unlock()
	if status, _ := post("/v1/subjects/S1/plan", operator); status != http.StatusMethodNotAllowed && status != 404 {
		t.Fatalf("only acknowledgements are forwarded: a plan adjustment got %d", status)
	}
	for _, c := range []struct {
		token string
		may   bool
	}{{r.token, false}, {operator, true}} {
		resp, body := r.get("/v1/me", c.token)
		var me views.Me
		if err := json.Unmarshal(body, &me); err != nil || resp.StatusCode != 200 || me.MayAcknowledge != c.may {
			t.Fatalf("/v1/me: %d %s, want may_acknowledge %v", resp.StatusCode, body, c.may)
		}
	}
	ingest.Close()
	if status, body := post("/v1/alerts/a-1/ack", operator); status != http.StatusBadGateway || !strings.Contains(body, "retry") {
		t.Fatalf("ingest API down: %d %s", status, body)
	}
}
