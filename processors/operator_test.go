package processors_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/internal/redis/apikeys"
	"github.com/eprostream/eprostream/internal/testenv"
)

// The operator actions of the HTTP API — enrol, plan adjustment,
// acknowledgement, transfer, withdrawal, a study's own Questionnaire —
// each appear once in audit_events
// with the key that made them and, where something changed, the record
// before and after; repeating each request adds nothing.
func TestOperatorHTTPActionsAreAudited(t *testing.T) {
	s := newStack(t, 3)
	inserts := s.insertCopies("audit_events", "audit_id, action, actor, subject_id, target, before, after")
	studies := filepath.Join(t.TempDir(), "studies.yaml")
	const study, subject = "AUD-100", "AUD-100-001-0001"
	if err := os.WriteFile(studies, []byte("studies:\n  - id: "+study+"\n    sites: [SITE-001, SITE-002]\n    enrollment: required\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rdb, _ := testenv.Redis(t)
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	env := "audit-" + hex.EncodeToString(b)
	k, token, err := apikeys.NewStore(rdb, "eprostream:"+env+":").Create(context.Background(), apikeys.Spec{Name: "nurse",
		Studies: []string{study}, Roles: []string{apikeys.RoleSubmit, apikeys.RoleOperate}, RatePerSec: 100, Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	addr := freePort(t)
	withStudies := []string{"EPRO_ENV=" + env, "STUDIES_FILE=" + studies}
	ingest := s.startCommand("ingest", withStudies, "ingest", "--listen", addr)
	all := s.startWithEnv("all", withStudies, "--group", "all", "--schedule-interval", "0", "--batch-delay", "100ms", "--state-dir", t.TempDir())

	call := func(path, body string) (int, string) {
		t.Helper()
		method, contentType := http.MethodPost, "application/json"
		if strings.HasPrefix(path, "/fhir/Questionnaire/") {
			method, contentType = http.MethodPut, "application/fhir+json"
		}
		req, _ := http.NewRequest(method, "http://"+addr+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", contentType)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(raw)
	}
	// until calls path until it answers want (the gateway starting, the
	// alert index catching up); twice makes the same call again, as a
	// client that did not hear back would.
	until := func(what, path, body string, want int, says ...string) {
		t.Helper()
		status, reply := 0, ""
		for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			if status, reply = call(path, body); status == want && (len(says) == 0 || strings.Contains(reply, says[0])) {
				return
			}
		}
		t.Fatalf("%s: %d %s, want %d; ingest log:\n%s", what, status, reply, want, tail(ingest.log))
	}
	twice := func(what, path, body string, want int) {
		t.Helper()
		until(what, path, body, want)
		if status, reply := call(path, body); status != want {
			t.Fatalf("%s, again: %d %s, want %d", what, status, reply, want)
		}
	}

	// A batch answers 200 with each subject's own status: 201 enrolled.
	until("enrol", "/v1/subjects", `{"subjects":[{"subject_id":"`+subject+`","study_id":"`+study+`","site_id":"SITE-001"}]}`, http.StatusOK, `"status":201`)
	report := `{"message_id":"aud-1","study_id":"` + study + `","site_id":"SITE-001","subject_id":"` + subject + `","instrument":"VITALS",` +
		`"submitted_at":"` + time.Now().UTC().Add(-time.Minute).Format(time.RFC3339) + `","items":[{"code":"BODY_TEMPERATURE","value":38.6,"unit":"Cel"}]}`
	until("fever report", "/v1/submissions", report, http.StatusAccepted)
	var alertID string
	for deadline := time.Now().Add(60 * time.Second); alertID == "" && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		for _, m := range s.readAll(s.names.Alerts) {
			var a codecs.Alert
			if json.Unmarshal(m.Value, &a) == nil && a.SubjectID == subject && a.RuleID == "fever" {
				alertID = a.AlertID
			}
		}
	}
	if alertID == "" {
		t.Fatalf("no fever alert for %s; process log:\n%s", subject, tail(all.log))
	}
	plan := "/v1/subjects/" + subject + "/plan"
	until("first plan", plan, `{"study_id":"`+study+`","plan":{"drug":"capecitabine","dose_mg":1000}}`, http.StatusAccepted)
	until("second plan", plan, `{"study_id":"`+study+`","plan":{"drug":"capecitabine","dose_mg":750}}`, http.StatusAccepted)
	twice("acknowledgement", "/v1/alerts/"+alertID+"/ack", `{"study_id":"`+study+`","subject_id":"`+subject+`"}`, http.StatusAccepted)
	twice("transfer", "/v1/subjects/"+subject+"/transfer", `{"study_id":"`+study+`","site_id":"SITE-002"}`, http.StatusOK)
	twice("withdrawal", "/v1/subjects/"+subject+"/withdraw", `{"study_id":"`+study+`","status":"withdrawn"}`, http.StatusOK)
	form, err := os.ReadFile(filepath.Join("..", "fhir", "testdata", "questionnaire-phq9-mii.json"))
	if err != nil {
		t.Fatal(err)
	}
	until("questionnaire", "/fhir/Questionnaire/mii-qst-pro-phq-9", string(form), http.StatusCreated)
	s.waitGroups(2*time.Minute, map[string][]string{
		"subject": {s.names.Commands}, "warehouse": {s.names.Commands, s.names.Enrolments, s.names.Audit, s.names.Questionnaires},
	}, all)

	actor := "key:" + k.ID
	want := []struct{ action, subject, target, before, after string }{
		{"enrolment.enrol", subject, subject, ``, `"site_id":"SITE-001"`},
		{"plan.adjust", subject, subject, ``, `"dose_mg":1000`},
		{"plan.adjust", subject, subject, `{"drug":"capecitabine","dose_mg":1000}`, `"dose_mg":750`},
		{"alert.acknowledge", subject, alertID, ``, `"state":"acknowledged"`},
		{"enrolment.transfer", subject, subject, `{"study_id":"` + study + `","site_id":"SITE-001","status":"active","revision":1}`, `"site_id":"SITE-002"`},
		{"enrolment.withdraw", subject, subject, `{"study_id":"` + study + `","site_id":"SITE-002","status":"active","revision":2}`, `"status":"withdrawn"`},
		{"questionnaire.put", "", "mii-qst-pro-phq-9", ``, `"revision":1`},
	}
	if n := s.count("SELECT count() FROM {db}."+inserts+" WHERE actor = ?", actor); n != uint64(len(want)) {
		t.Fatalf("%d rows inserted into audit_events by %s, want %d (one per action); rows:\n%s", n, actor, len(want), s.auditRows())
	}
	for _, w := range want {
		q := "SELECT count() FROM {db}." + inserts + " WHERE action = ? AND actor = ? AND subject_id = ? AND target = ? AND before = ? AND position(after, ?) > 0"
		if n := s.count(q, w.action, actor, w.subject, w.target, w.before, w.after); n != 1 {
			t.Errorf("%s by %s: %d rows with before %q and after holding %s, want 1; rows:\n%s", w.action, actor, n, w.before, w.after, s.auditRows())
		}
	}
	if n := s.count("SELECT count() FROM {db}." + inserts + " WHERE position(before, '38.6') > 0 OR position(after, '38.6') > 0 OR position(after, 'BODY_TEMPERATURE') > 0"); n != 0 {
		t.Errorf("%d audit rows hold the patient's answer", n)
	}
	all.stop(t)
	ingest.stop(t)
}
