package gateway_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/gateway"
	"github.com/eprostream/eprostream/internal/redis/apikeys"
	"github.com/eprostream/eprostream/internal/testenv"
)

func submission(id, study, site, subject string) []byte {
	return native(id, map[string]any{"study_id": study, "site_id": site, "subject_id": subject})
}

// A key of one study cannot write to, command, enrol or learn about a
// subject of another study, on any endpoint; the refusals name only the
// caller's own study, and nothing reaches Kafka.
func TestCrossStudyIsRefusedOnEveryEndpoint(t *testing.T) {
	f := newFixture(t)
	carSubmit := f.other
	carOperate := f.key("CAR-200", apikeys.RoleOperate)
	const victim = "CAR-200-001-0001"
	if r := f.do(request{path: "/v1/submissions", token: carSubmit, contentType: "application/json",
		body: submission("car-1", "CAR-200", "SITE-001", victim)}); r.status != http.StatusAccepted {
		t.Fatalf("the victim's own report: %d %s", r.status, r.body)
	}
	before := f.records(f.names.Submissions)
	if before == 0 {
		t.Fatal("the victim's report is not in Kafka")
	}
	beforeCmds := f.records(f.names.Commands)
	beforeEnrol := f.records(f.names.Enrolments)

	qr := strings.Replace(string(fhirResponse("onc-fhir")), "Patient/ONC-301-012-0042", "Patient/"+victim, 1)
	qr = strings.Replace(qr, `"valueString":"SITE-012"`, `"valueString":"SITE-001"`, 1)
	cases := []struct {
		name   string
		req    request
		status int
	}{
		{"single submission", request{path: "/v1/submissions", token: f.submit, contentType: "application/json",
			body: submission("onc-1", "ONC-301", "SITE-001", victim)}, 422},
		{"FHIR", request{path: "/v1/submissions", token: f.submit, contentType: "application/fhir+json", body: []byte(qr)}, 422},
		{"plan adjustment", request{path: "/v1/subjects/" + victim + "/plan", token: f.operate, contentType: "application/json",
			body: []byte(`{"study_id":"ONC-301","plan":{"drug":"x","dose_mg":1}}`)}, 404},
		{"acknowledgement", request{path: "/v1/alerts/al-victim/ack", token: f.operate, contentType: "application/json",
			body: []byte(`{"study_id":"ONC-301","subject_id":"` + victim + `"}`)}, 404},
		{"enrolment", request{path: "/v1/subjects", token: f.operate, contentType: "application/json",
			body: []byte(`{"subject_id":"` + victim + `","study_id":"ONC-301","site_id":"SITE-001"}`)}, 409},
		{"transfer", request{path: "/v1/subjects/" + victim + "/transfer", token: f.operate, contentType: "application/json",
			body: []byte(`{"study_id":"ONC-301","site_id":"SITE-012"}`)}, 404},
		{"withdrawal", request{path: "/v1/subjects/" + victim + "/withdraw", token: f.operate, contentType: "application/json",
			body: []byte(`{"study_id":"ONC-301","status":"withdrawn"}`)}, 404},
		{"the body names the victim's study", request{path: "/v1/submissions", token: f.submit, contentType: "application/json",
			body: submission("onc-2", "CAR-200", "SITE-001", victim)}, 403},
	}
	for _, c := range cases {
		r := f.do(c.req)
		if r.status != c.status {
			t.Errorf("%s: %d %s, want %d", c.name, r.status, r.body, c.status)
			continue
		}
		if c.status != 403 && strings.Contains(string(r.body), `\"CAR-200\"`) {
			t.Errorf("%s: the refusal names the other study: %s", c.name, r.body)
		}
	}
	batch, _ := json.Marshal(map[string]any{"submissions": []json.RawMessage{submission("onc-3", "ONC-301", "SITE-001", victim)}})
	r := f.do(request{path: "/v1/submissions:batch", token: f.submit, contentType: "application/json", body: batch})
	var res struct{ Results []struct{ Status int } }
	_ = json.Unmarshal(r.body, &res)
	if r.status != 200 || len(res.Results) != 1 || res.Results[0].Status != 422 {
		t.Errorf("batch item: %d %s, want its item refused with 422", r.status, r.body)
	}
	if after := f.records(f.names.Submissions); after != before {
		t.Errorf("refused submissions reached Kafka: %d records, was %d", after, before)
	}
	if after := f.records(f.names.Commands); after != beforeCmds {
		t.Errorf("refused commands reached Kafka: %d records, was %d", after, beforeCmds)
	}
	if after := f.records(f.names.Enrolments); after != beforeEnrol {
		t.Errorf("refused enrolment changes reached Kafka: %d records, was %d", after, beforeEnrol)
	}
	// The victim's own study still acts for it.
	if r := f.do(request{path: "/v1/subjects/" + victim + "/plan", token: carOperate, contentType: "application/json",
		body: []byte(`{"study_id":"CAR-200","plan":{"drug":"x","dose_mg":1}}`)}); r.status != http.StatusAccepted {
		t.Errorf("the victim's own study's plan adjustment: %d %s", r.status, r.body)
	}
}

// first-report: the first accepted report binds the subject to its study
// and site; a later report naming another site of the study is refused.
func TestFirstReportBindsTheSubject(t *testing.T) {
	f := newFixture(t)
	const s = "ONC-301-012-0099"
	if r := f.do(request{path: "/v1/submissions", token: f.submit, contentType: "application/json",
		body: submission("fr-1", "ONC-301", "SITE-012", s)}); r.status != 202 {
		t.Fatalf("first report: %d %s", r.status, r.body)
	}
	e, found, err := f.roster.Enrolment(s)
	if err != nil || !found || e.SiteID != "SITE-012" || e.By != "first-report" || !e.Active() {
		t.Fatalf("enrolment after the first report: %+v %v %v", e, found, err)
	}
	r := f.do(request{path: "/v1/submissions", token: f.submit, contentType: "application/json", body: submission("fr-2", "ONC-301", "SITE-001", s)})
	if r.status != 422 || !strings.Contains(r.problem().Error, `is enrolled at site "SITE-012"`) {
		t.Fatalf("report from another site: %d %s", r.status, r.body)
	}
}

// required: an unknown subject is refused until it is enrolled; withdrawal
// stops acceptance; a transfer changes the site only through its command.
func TestRequiredEnrolmentWithdrawalAndTransfer(t *testing.T) {
	f := newFixture(t)
	submit, operate := f.key("REQ-100", apikeys.RoleSubmit), f.key("REQ-100", apikeys.RoleOperate)
	const s = "REQ-100-001-0001"
	post := func(id, site string) reply {
		return f.do(request{path: "/v1/submissions", token: submit, contentType: "application/json", body: submission(id, "REQ-100", site, s)})
	}
	if r := post("rq-1", "SITE-001"); r.status != 422 || !strings.Contains(r.problem().Error, "is not enrolled in study \"REQ-100\"; enrol it first") {
		t.Fatalf("unknown subject of a required study: %d %s", r.status, r.body)
	}
	r := f.do(request{path: "/v1/subjects", token: operate, contentType: "application/json",
		body: []byte(`{"subjects":[{"subject_id":"` + s + `","study_id":"REQ-100","site_id":"SITE-001"},{"subject_id":"REQ-100-001-0002","study_id":"REQ-100","site_id":"SITE-009"}]}`)})
	var batch struct{ Results []struct{ Status int } }
	_ = json.Unmarshal(r.body, &batch)
	if r.status != 200 || len(batch.Results) != 2 || batch.Results[0].Status != 201 || batch.Results[1].Status != 400 {
		t.Fatalf("batch enrolment: %d %s, want 201 and a 400 for the unknown site", r.status, r.body)
	}
	if r := post("rq-2", "SITE-001"); r.status != 202 {
		t.Fatalf("after enrolment: %d %s", r.status, r.body)
	}
	if r := post("rq-3", "SITE-002"); r.status != 422 {
		t.Fatalf("another site before the transfer: %d %s", r.status, r.body)
	}
	if r := f.do(request{path: "/v1/subjects/" + s + "/transfer", token: operate, contentType: "application/json",
		body: []byte(`{"study_id":"REQ-100","site_id":"SITE-002"}`)}); r.status != 200 {
		t.Fatalf("transfer: %d %s", r.status, r.body)
	}
	if r := post("rq-4", "SITE-002"); r.status != 202 {
		t.Fatalf("the new site after the transfer: %d %s", r.status, r.body)
	}
	if r := post("rq-5", "SITE-001"); r.status != 422 {
		t.Fatalf("the old site after the transfer: %d %s", r.status, r.body)
	}
	if r := f.do(request{path: "/v1/subjects/" + s + "/withdraw", token: operate, contentType: "application/json",
		body: []byte(`{"study_id":"REQ-100","status":"withdrawn"}`)}); r.status != 200 {
		t.Fatalf("withdrawal: %d %s", r.status, r.body)
	}
	if r := post("rq-6", "SITE-002"); r.status != 409 || !strings.Contains(r.problem().Error, "is withdrawn") {
		t.Fatalf("after withdrawal: %d %s", r.status, r.body)
	}
	e, _, _ := f.roster.Enrolment(s)
	if e.Revision != 3 || e.EndedAt == nil || e.By == "" {
		t.Fatalf("the enrolment's history: %+v, want revision 3 (enrolled, transferred, withdrawn) with who and when", e)
	}
}

// A subject enrolled on one gateway is accepted by a second gateway process
// once the second one's roster has read the enrolment; the time it took is
// the staleness bound the README states.
func TestSecondGatewaySeesAnEnrolment(t *testing.T) {
	f := newFixture(t)
	other := startRoster(t, f.cfg, "gateway-test-2")
	const s = "REQ-100-002-0001"
	operate := f.key("REQ-100", apikeys.RoleOperate)
	start := time.Now()
	if r := f.do(request{path: "/v1/subjects", token: operate, contentType: "application/json",
		body: []byte(fmt.Sprintf(`{"subject_id":%q,"study_id":"REQ-100","site_id":"SITE-002"}`, s))}); r.status != 201 {
		t.Fatalf("enrol: %d %s", r.status, r.body)
	}
	for {
		if _, found, err := other.Enrolment(s); err == nil && found {
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatal("the second roster did not see the enrolment within 10 s")
		}
		time.Sleep(time.Millisecond)
	}
	t.Logf("the second gateway's roster saw the enrolment %s after the first gateway's 201", time.Since(start).Round(time.Millisecond))
}

// `eprostream enroll` enrols a site's CSV roster: every line is checked
// against the catalogue, a subject already enrolled so is left alone, and
// the gateway accepts the enrolled subjects of a required study.
func TestEnrollCommandReadsARoster(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	studiesFile := filepath.Join(dir, "studies.yaml")
	if err := os.WriteFile(studiesFile, []byte(studies), 0o644); err != nil {
		t.Fatal(err)
	}
	roster := filepath.Join(dir, "roster.csv")
	write := func(lines ...string) {
		if err := os.WriteFile(roster, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run := func() (string, error) {
		cmd := exec.Command(testenv.Binary(t), "enroll", "--file", roster)
		// The CLI's registry locks live under its own EPRO_ENV; the test's
		// gateway takes none meanwhile.
		cmd.Env = append(os.Environ(), "TOPIC_PREFIX="+f.cfg.TopicPrefix, "STUDIES_FILE="+studiesFile, "ADMIN_ADDR=", "EPRO_ENV=enroll-test")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	write("subject_id,study_id,site_id,enrolled_at",
		"REQ-100-001-0101,REQ-100,SITE-001,2026-11-02T09:00:00Z",
		"REQ-100-002-0102,REQ-100,SITE-002,",
		"REQ-100-009-0103,REQ-100,SITE-009,")
	out, err := run()
	if err == nil || !strings.Contains(out, "2 enrolled, 0 already enrolled so, 1 refused") || !strings.Contains(out, "line 4: REQ-100-009-0103: site_id is not a site of study REQ-100") {
		t.Fatalf("first run: %v\n%s", err, out)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		e, found, _ := f.roster.Enrolment("REQ-100-001-0101")
		if found {
			if !e.EnrolledAt.Equal(time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)) || !strings.HasPrefix(e.By, "cli") {
				t.Fatalf("enrolment %+v: want the roster's enrolment date and the CLI's user", e)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the gateway's roster did not see the CLI's enrolment within 10 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	write("subject_id,study_id,site_id", "REQ-100-001-0101,REQ-100,SITE-001", "REQ-100-002-0102,REQ-100,SITE-002")
	if out, err := run(); err != nil || !strings.Contains(out, "0 enrolled, 2 already enrolled so, 0 refused") {
		t.Fatalf("second run: %v\n%s", err, out)
	}
	submit := f.key("REQ-100", apikeys.RoleSubmit)
	if r := f.do(request{path: "/v1/submissions", token: submit, contentType: "application/json",
		body: submission("cli-1", "REQ-100", "SITE-002", "REQ-100-002-0102")}); r.status != 202 {
		t.Fatalf("an enrolled subject of the roster: %d %s", r.status, r.body)
	}
}

// In a batch, an item repeating an earlier item's message_id with another
// body is refused with 422, as a single POST is; only the first is sent.
func TestBatchItemWithAReusedIDAndAnotherBodyIsRefused(t *testing.T) {
	f := newFixture(t)
	a := native("dup-1", nil)
	b := native("dup-1", map[string]any{"items": []map[string]any{{"code": "PAIN_SEVERITY", "value": 3}}})
	before := f.records(f.names.Submissions)
	body, _ := json.Marshal(map[string]any{"submissions": []json.RawMessage{a, b, a}})
	r := f.do(request{path: "/v1/submissions:batch", token: f.submit, contentType: "application/json", body: body})
	var res struct {
		Results []struct {
			Status int
			Error  string
		}
	}
	if err := json.Unmarshal(r.body, &res); err != nil || r.status != 200 || len(res.Results) != 3 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if res.Results[0].Status != 202 || res.Results[1].Status != 422 || res.Results[2].Status != 202 ||
		!strings.Contains(res.Results[1].Error, "already used for a different body") {
		t.Fatalf("results %+v, want 202, 422 (another body), 202 (the same body again)", res.Results)
	}
	if n := f.records(f.names.Submissions) - before; n != 1 {
		t.Fatalf("%d records sent, want 1", n)
	}
}

// blindRoster is a roster that has not yet read some subjects' enrolments
// (a second gateway whose view lags the first one's write).
type blindRoster struct {
	gateway.Roster
	hide map[string]bool
}

func (b blindRoster) Enrolment(subject string) (codecs.Enrolment, bool, error) {
	if b.hide[subject] {
		return codecs.Enrolment{}, false, nil
	}
	return b.Roster.Enrolment(subject)
}

func (b blindRoster) Remember(codecs.Enrolment) {}

// Two gateways take the first report of one subject from different sites;
// the second one's roster has not read the first one's enrolment. The
// subject is enrolled once, at the first site: the second report is
// refused, single or in a batch, and the binding stays as it was.
func TestFirstReportsOnTwoGatewaysEnrolTheSubjectOnce(t *testing.T) {
	f := newFixture(t)
	const s = "ONC-301-012-0777"
	second := f.twin(func(r gateway.Roster) gateway.Roster { return blindRoster{r, map[string]bool{s: true}} })
	if r := f.do(request{path: "/v1/submissions", token: f.submit, contentType: "application/json",
		body: submission("race-1", "ONC-301", "SITE-012", s)}); r.status != 202 {
		t.Fatalf("first report on the first gateway: %d %s", r.status, r.body)
	}
	if _, found, _ := second.deps.Roster.Enrolment(s); found {
		t.Fatal("the second gateway's roster sees the enrolment: the race is not set up")
	}
	r := second.do(request{path: "/v1/submissions", token: f.submit, contentType: "application/json",
		body: submission("race-2", "ONC-301", "SITE-001", s)})
	if r.status != 409 || !strings.Contains(r.problem().Error, "was enrolled by another request meanwhile") {
		t.Fatalf("first report from another site on the second gateway: %d %s, want 409", r.status, r.body)
	}
	r = second.do(request{path: "/v1/submissions:batch", token: f.submit, contentType: "application/json",
		body: []byte(`{"submissions":[` + string(submission("race-3", "ONC-301", "SITE-001", s)) + `]}`)})
	if !strings.Contains(string(r.body), `"status":409`) {
		t.Fatalf("the same in a batch: %d %s, want the item refused with 409", r.status, r.body)
	}
	// The same site as the binding is accepted by the second gateway too.
	if r := second.do(request{path: "/v1/submissions", token: f.submit, contentType: "application/json",
		body: submission("race-4", "ONC-301", "SITE-012", s)}); r.status != 202 {
		t.Fatalf("a report from the bound site on the second gateway: %d %s", r.status, r.body)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		e, found, err := f.roster.Enrolment(s)
		if err == nil && found && e.Revision == 1 && e.SiteID == "SITE-012" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("enrolment %+v (found %v, err %v), want revision 1 at SITE-012", e, found, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := len(f.readAll(f.names.Enrolments)); n != 1 {
		t.Fatalf("%d enrolment records, want 1", n)
	}
}

// An acknowledgement must name the alert's own subject (and so its study):
// an operator of one study cannot acknowledge another subject's alert, nor
// another study's, by naming a subject of her own.
func TestAcknowledgementNamesTheAlertsOwnSubject(t *testing.T) {
	f := newFixture(t)
	const mine, neighbour, victim = "ONC-301-012-0051", "ONC-301-012-0052", "CAR-200-001-0051"
	f.enrol(mine, "ONC-301", "SITE-012")
	f.enrol(neighbour, "ONC-301", "SITE-012")
	f.enrol(victim, "CAR-200", "SITE-001")
	f.raised("al-neighbour", "ONC-301", "SITE-012", neighbour)
	f.raised("al-victim", "CAR-200", "SITE-001", victim)
	before := f.records(f.names.Commands)
	ack := func(alert, subject string) reply {
		return f.do(request{path: "/v1/alerts/" + alert + "/ack", token: f.operate, contentType: "application/json",
			body: []byte(`{"study_id":"ONC-301","subject_id":"` + subject + `"}`)})
	}
	for _, c := range []struct{ name, alert string }{
		{"another subject's alert", "al-neighbour"},
		{"another study's alert", "al-victim"},
		{"an alert nobody raised", "al-none"},
	} {
		r := ack(c.alert, mine)
		if r.status != http.StatusNotFound || !strings.Contains(r.problem().Error, "is not an alert of subject") {
			t.Errorf("%s: %d %s, want 404", c.name, r.status, r.body)
		}
		if strings.Contains(string(r.body), "CAR-200") {
			t.Errorf("%s: the refusal names the other study: %s", c.name, r.body)
		}
	}
	if after := f.records(f.names.Commands); after != before {
		t.Fatalf("refused acknowledgements reached Kafka: %d commands, was %d", after, before)
	}
	if r := ack("al-neighbour", neighbour); r.status != http.StatusAccepted {
		t.Fatalf("the alert's own subject: %d %s", r.status, r.body)
	}
	if after := f.records(f.names.Commands); after != before+1 {
		t.Fatalf("%d commands after the accepted acknowledgement, want %d", after, before+1)
	}
}

// One id scope: a message_id is unique within its study, whichever API key
// sends it. A second key of the study sending the same submission gets the
// first answer (sent once); with another body it is refused; another
// study's own "1" is its own submission.
func TestMessageIDsAreScopedByStudyNotByKey(t *testing.T) {
	f := newFixture(t)
	secondApp := f.key("ONC-301", apikeys.RoleSubmit)
	const s = "ONC-301-012-0061"
	first := submission("1", "ONC-301", "SITE-012", s)
	if r := f.do(request{path: "/v1/submissions", token: f.submit, contentType: "application/json", body: first}); r.status != 202 {
		t.Fatalf("first: %d %s", r.status, r.body)
	}
	before := f.records(f.names.Submissions)
	if before != 1 {
		t.Fatalf("%d records after the first submission, want 1", before)
	}
	if r := f.do(request{path: "/v1/submissions", token: secondApp, contentType: "application/json", body: first}); r.status != 202 {
		t.Fatalf("the same submission from another key of the study: %d %s, want the first answer", r.status, r.body)
	}
	other := submission("1", "ONC-301", "SITE-012", "ONC-301-012-0062")
	if r := f.do(request{path: "/v1/submissions", token: secondApp, contentType: "application/json", body: other}); r.status != 422 ||
		!strings.Contains(r.problem().Error, "different body") {
		t.Fatalf("the study's message 1 with another body: %d %s, want 422", r.status, r.body)
	}
	if n := f.records(f.names.Submissions); n != before {
		t.Fatalf("%d records, want %d: a duplicate or a conflicting message reached Kafka", n, before)
	}
	if r := f.do(request{path: "/v1/submissions", token: f.other, contentType: "application/json",
		body: submission("1", "CAR-200", "SITE-001", "CAR-200-001-0061")}); r.status != 202 {
		t.Fatalf("another study's own message 1: %d %s", r.status, r.body)
	}
	if n := f.records(f.names.Submissions); n != before+1 {
		t.Fatalf("%d records, want %d", n, before+1)
	}
}
