package gateway_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/gateway"
)

// fhirFixture reads a published-shape resource of package fhir's testdata
// with its subject replaced.
func fhirFixture(t *testing.T, name, subject string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "fhir", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	out := bytes.ReplaceAll(b, []byte("Patient/example"), []byte("Patient/"+subject))
	if bytes.Equal(out, b) {
		t.Fatalf("%s has no Patient/example to replace", name)
	}
	return out
}

// operationOutcome decodes an OperationOutcome and checks it against R4's
// structure: resourceType, at least one issue, severity and code from
// their value sets, expressions as strings.
type outcome struct {
	ResourceType string `json:"resourceType"`
	Issue        []struct {
		Severity    string   `json:"severity"`
		Code        string   `json:"code"`
		Diagnostics string   `json:"diagnostics"`
		Expression  []string `json:"expression"`
	} `json:"issue"`
}

var issueTypes = strings.Fields(`invalid structure required value invariant security login unknown expired forbidden suppressed
	processing not-supported duplicate multiple-matches not-found deleted too-long code-invalid extension too-costly
	business-rule conflict transient lock-error no-store exception timeout incomplete throttled informational`)

func readOutcome(t *testing.T, r reply) outcome {
	t.Helper()
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/fhir+json") {
		t.Errorf("Content-Type %q, want application/fhir+json", ct)
	}
	var o outcome
	if err := json.Unmarshal(r.body, &o); err != nil || o.ResourceType != "OperationOutcome" || len(o.Issue) == 0 {
		t.Fatalf("not an OperationOutcome (%v): %s", err, r.body)
	}
	for _, is := range o.Issue {
		if !slices.Contains([]string{"fatal", "error", "warning", "information"}, is.Severity) || !slices.Contains(issueTypes, is.Code) {
			t.Errorf("issue %+v: severity or code outside R4's value sets", is)
		}
	}
	return o
}

func (o outcome) has(expr, reason string) bool {
	for _, is := range o.Issue {
		if (expr == "" || slices.Contains(is.Expression, expr)) && strings.Contains(is.Diagnostics, reason) {
			return true
		}
	}
	return false
}

// onTopic decodes the submissions on the fixture's submissions topic.
func (f *fixture) onTopic() []codecs.Submission {
	var out []codecs.Submission
	for _, v := range f.readAll(f.names.Submissions) {
		s, err := codecs.ParseSubmission(v)
		if err != nil {
			f.t.Fatalf("a record on the topic does not decode: %v\n%s", err, v)
		}
		out = append(out, s)
	}
	return out
}

func TestFHIRResourcesAreMappedAndAnsweredAsFHIR(t *testing.T) {
	f := newFixture(t)
	const subject = "ONC-301-001-0777"
	f.enrol(subject, "ONC-301", "SITE-001")
	post := func(path, name string, header map[string]string) reply {
		return f.do(request{path: path, token: f.submit, contentType: "application/fhir+json", body: fhirFixture(t, name, subject), header: header})
	}

	r := post("/fhir/QuestionnaireResponse", "qr-phq9-lhcforms.json", nil)
	if r.status != http.StatusCreated || r.header.Get("Location") != "QuestionnaireResponse/phq9-lhc/_history/1" {
		t.Fatalf("PHQ-9: %d, Location %q: %s", r.status, r.header.Get("Location"), r.body)
	}
	var echoed map[string]any
	if err := json.Unmarshal(r.body, &echoed); err != nil || echoed["id"] != "phq9-lhc" || echoed["resourceType"] != "QuestionnaireResponse" {
		t.Errorf("the answer is not the resource with its id: %s", r.body)
	}
	if again := post("/fhir/QuestionnaireResponse", "qr-phq9-lhcforms.json", nil); again.status != http.StatusOK ||
		again.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("a retry answered %d (replayed %q), want 200 replayed", again.status, again.header.Get("Idempotent-Replayed"))
	}
	if r := post("/fhir/Observation", "observation-body-temperature-degf.json", map[string]string{"Prefer": "return=OperationOutcome"}); r.status != http.StatusCreated ||
		!bytes.Contains(r.body, []byte(`"informational"`)) || r.header.Get("Location") != "Observation/body-temperature-f/_history/1" {
		t.Errorf("Observation with return=OperationOutcome: %d %q %s", r.status, r.header.Get("Location"), r.body)
	}
	if r := post("/v1/submissions", "observation-blood-pressure.json", nil); r.status != http.StatusAccepted {
		t.Errorf("an Observation at /v1/submissions: %d %s", r.status, r.body)
	}

	subs := f.onTopic()
	if len(subs) != 3 {
		t.Fatalf("%d records on the topic, want 3 (the retry is not sent again)", len(subs))
	}
	byInstrument := map[string]codecs.Submission{}
	for _, s := range subs {
		if s.StudyID != "ONC-301" || s.SiteID != "SITE-001" || s.SubjectID != subject || s.Origin() != codecs.FormatFHIR {
			t.Errorf("record placed at %s/%s for %s, origin %s", s.StudyID, s.SiteID, s.SubjectID, s.Origin())
		}
		if s.Instrument == "VITALS" && len(s.Items) == 2 {
			byInstrument["BP"] = s
			continue
		}
		byInstrument[s.Instrument] = s
	}
	phq := byInstrument["PHQ-9"]
	if len(phq.Items) != 10 || phq.Items[8].Code != "PHQ9_9" || phq.Items[8].Value.Num != 1 || phq.Items[9].Code != "PHQ9_TOTAL" || phq.Items[9].Value.Num != 20 {
		t.Errorf("PHQ-9 items on the topic: %+v", phq.Items)
	}
	if temp := byInstrument["VITALS"]; len(temp.Items) != 1 || temp.Items[0].Code != "BODY_TEMPERATURE" || temp.Items[0].Value.Num != 100.6 || temp.Items[0].Unit != "[degF]" {
		t.Errorf("temperature on the topic: %+v", temp.Items)
	}
	if bp := byInstrument["BP"]; bp.MessageID != "urn:uuid:187e0c12-8dd2-67e2-99b2-bf273c878281" {
		t.Errorf("blood pressure message_id %q, want its identifier", bp.MessageID)
	}

	if r := f.do(request{method: http.MethodGet, path: "/fhir/metadata"}); r.status != http.StatusOK || !bytes.Contains(r.body, []byte(`"CapabilityStatement"`)) {
		t.Errorf("metadata: %d %s", r.status, r.body)
	}
}

func TestFHIRRefusalsAreOperationOutcomes(t *testing.T) {
	var logs bytes.Buffer
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	f := newFixture(t, func(_ *fixture, _ *gateway.Config, d *gateway.Deps) { d.Log = log })
	const subject, stranger = "ONC-301-001-0778", "ONC-301-001-0779"
	f.enrol(subject, "ONC-301", "SITE-001")
	const canary = "CANARY-answer-5521"
	diary := strings.NewReplacer("SUBJECT", subject, "CANARY", canary).Replace(`{"resourceType":"QuestionnaireResponse","id":"diary-1",
	  "status":"completed","questionnaire":"https://eprostream.org/fhir/Questionnaire/DIARY","authored":"2026-11-30T20:00:00+01:00",
	  "subject":{"reference":"Patient/SUBJECT"},"item":[{"linkId":"NOTES","answer":[{"valueString":"CANARY"}]},{"linkId":"MOOD","answer":[{"valueString":"CANARY"}]}]}`)
	heart := string(fhirFixture(t, "observation-heart-rate.json", subject))
	cases := []struct {
		name           string
		path, token    string
		body           string
		status         int
		expr, reason   string
		mustNotMention string
	}{
		{"preliminary", "/fhir/Observation", f.submit, string(fhirFixture(t, "observation-preliminary.json", subject)), 400,
			"Observation.status", "only final readings", ""},
		{"unknown code", "/fhir/Observation", f.submit, strings.Replace(heart, `"8867-4"`, `"2339-0"`, 1), 400,
			"Observation.code", "is not a measurement the study records", ""},
		{"linkId the form lacks", "/fhir/QuestionnaireResponse", f.submit, diary, 400,
			"QuestionnaireResponse.item[1].answer[0]", `linkId "MOOD" is not an item`, ""},
		{"out of range", "/fhir/Observation", f.submit, strings.Replace(heart, `"value": 44`, `"value": 400`, 1), 400,
			"Observation.valueQuantity", "must be a number from 20 to 250", ""},
		{"not enrolled", "/fhir/Observation", f.submit, string(fhirFixture(t, "observation-heart-rate.json", stranger)), 422,
			"", "is not enrolled in a study of this API key", ""},
		{"another study's key", "/fhir/Observation", f.other, heart, 422, "", "is not enrolled in a study of this API key", `\"ONC-301\"`},
		{"no key", "/fhir/Observation", "", heart, 401, "", "", ""},
		{"wrong resource for the endpoint", "/fhir/Observation", f.submit, diary, 400, "", "this endpoint takes a Observation", ""},
		{"native envelope", "/fhir/Observation", f.submit, string(native("n-1", nil)), 400, "", "this endpoint takes a Observation", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := f.do(request{path: c.path, token: c.token, contentType: "application/fhir+json", body: []byte(c.body)})
			if r.status != c.status {
				t.Fatalf("status %d, want %d: %s", r.status, c.status, r.body)
			}
			o := readOutcome(t, r)
			if c.reason != "" && !o.has(c.expr, c.reason) {
				t.Errorf("no issue at %q saying …%s…: %s", c.expr, c.reason, r.body)
			}
			if c.mustNotMention != "" && bytes.Contains(r.body, []byte(c.mustNotMention)) {
				t.Errorf("the refusal names %s: %s", c.mustNotMention, r.body)
			}
		})
	}
	if n := f.records(f.names.Submissions); n != 0 {
		t.Errorf("%d records on the topic after refusals only", n)
	}
	fixed := strings.Replace(diary, `,{"linkId":"MOOD","answer":[{"valueString":"CANARY-answer-5521"}]}`, "", 1)
	if fixed == diary {
		t.Fatal("the diary was not fixed")
	}
	if r := f.do(request{path: "/fhir/QuestionnaireResponse", token: f.submit, contentType: "application/fhir+json", body: []byte(fixed)}); r.status != http.StatusCreated {
		t.Fatalf("the diary: %d %s", r.status, r.body)
	}
	mu.Lock()
	defer mu.Unlock()
	if logs.Len() == 0 {
		t.Fatal("the gateway logged nothing at debug level, so the canary check saw nothing")
	}
	if bytes.Contains(logs.Bytes(), []byte(canary)) {
		t.Errorf("a patient's answer reached the log:\n%s", logs.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func TestFHIRBundles(t *testing.T) {
	f := newFixture(t)
	const subject = "ONC-301-001-0780"
	f.enrol(subject, "ONC-301", "SITE-001")
	post := func(body []byte) reply {
		return f.do(request{path: "/fhir", token: f.submit, contentType: "application/fhir+json", body: body})
	}
	hub := fhirFixture(t, "bundle-device-hub-transaction.json", subject)

	// A transaction with one bad entry is refused whole.
	bad := bytes.Replace(hub, []byte(`"8867-4"`), []byte(`"2339-0"`), 1)
	if bytes.Equal(bad, hub) {
		t.Fatal("the bad entry was not made")
	}
	r := post(bad)
	if r.status != http.StatusBadRequest {
		t.Fatalf("a transaction with a bad entry: %d %s", r.status, r.body)
	}
	if o := readOutcome(t, r); !o.has("Bundle.entry[1].resource.code", "is not a measurement") || !o.has("", "refused as a whole") {
		t.Errorf("the refusal does not name the entry: %s", r.body)
	}
	if n := f.records(f.names.Submissions); n != 0 {
		t.Fatalf("%d records sent of a refused transaction", n)
	}

	r = post(hub)
	var resp struct {
		ResourceType, Type string
		Entry              []struct {
			Response struct {
				Status, Location string
				Outcome          json.RawMessage
			}
		}
	}
	if err := json.Unmarshal(r.body, &resp); err != nil || r.status != http.StatusOK || resp.Type != "transaction-response" || len(resp.Entry) != 3 {
		t.Fatalf("transaction: %d %s", r.status, r.body)
	}
	for i, e := range resp.Entry {
		if e.Response.Status != "201 Created" || !strings.HasPrefix(e.Response.Location, "Observation/") {
			t.Errorf("entry %d: %+v", i, e.Response)
		}
	}
	if n := f.records(f.names.Submissions); n != 3 {
		t.Fatalf("%d records after the transaction, want 3", n)
	}

	r = post(fhirFixture(t, "bundle-batch-mixed.json", subject))
	if err := json.Unmarshal(r.body, &resp); err != nil || r.status != http.StatusOK || resp.Type != "batch-response" || len(resp.Entry) != 3 {
		t.Fatalf("batch: %d %s", r.status, r.body)
	}
	want := []string{"201 Created", "201 Created", "400 Bad Request"}
	for i, e := range resp.Entry {
		if e.Response.Status != want[i] {
			t.Errorf("batch entry %d: %s, want %s", i, e.Response.Status, want[i])
		}
	}
	if !bytes.Contains(resp.Entry[2].Response.Outcome, []byte(`"OperationOutcome"`)) || !bytes.Contains(resp.Entry[2].Response.Outcome, []byte("2339-0")) {
		t.Errorf("the refused entry has no outcome naming its code: %s", resp.Entry[2].Response.Outcome)
	}
	if n := f.records(f.names.Submissions); n != 5 {
		t.Fatalf("%d records after the batch, want 5", n)
	}
	if r := post(hub); r.status != http.StatusOK || !bytes.Contains(r.body, []byte(`"200 OK"`)) {
		t.Errorf("the transaction again: %d %s", r.status, r.body)
	}
	if n := f.records(f.names.Submissions); n != 5 {
		t.Errorf("%d records after a retried transaction, want still 5", n)
	}
}

func TestStudiesAddTheirOwnQuestionnaires(t *testing.T) {
	f := newFixture(t)
	const subject, other = "ONC-301-001-0781", "CAR-200-001-0001"
	f.enrol(subject, "ONC-301", "SITE-001")
	f.enrol(other, "CAR-200", "SITE-001")
	q, err := os.ReadFile(filepath.Join("..", "fhir", "testdata", "questionnaire-phq9-mii.json"))
	if err != nil {
		t.Fatal(err)
	}
	const path = "/fhir/Questionnaire/mii-qst-pro-phq-9"
	put := func(token string, body []byte) reply {
		return f.do(request{method: http.MethodPut, path: path, token: token, contentType: "application/fhir+json", body: body})
	}
	response := func(subject string) reply {
		return f.do(request{path: "/fhir/QuestionnaireResponse", token: f.key("*", "submit"), contentType: "application/fhir+json",
			body: fhirFixture(t, "qr-phq9-mii.json", subject)})
	}

	if r := response(subject); r.status != http.StatusBadRequest || !readOutcome(t, r).has("QuestionnaireResponse.questionnaire", "is not a Questionnaire of this study") {
		t.Fatalf("a response naming an unknown Questionnaire: %d %s", r.status, r.body)
	}
	r := put(f.operate, q)
	if r.status != http.StatusCreated || r.header.Get("Location") != "Questionnaire/mii-qst-pro-phq-9/_history/1" {
		t.Fatalf("PUT: %d %q %s", r.status, r.header.Get("Location"), r.body)
	}
	if !readOutcome(t, r).has("", "PHQ.10") {
		t.Errorf("the answer does not warn that PHQ.10 is not an item of PHQ-9: %s", r.body)
	}
	if r := response(subject); r.status != http.StatusCreated {
		t.Fatalf("a response through the added Questionnaire: %d %s", r.status, r.body)
	}
	subs := f.onTopic()
	if len(subs) != 1 || values(subs[0])["PHQ9_9"] != 2 || subs[0].InstrumentVersion != "2025.0.0" {
		t.Fatalf("on the topic: %+v", subs)
	}
	if r := response(other); r.status != http.StatusBadRequest || !readOutcome(t, r).has("", "is not a Questionnaire of this study") {
		t.Errorf("another study's subject mapped through it: %d %s", r.status, r.body)
	}
	if r := put(f.key("CAR-200", "operate"), q); r.status != http.StatusConflict || !readOutcome(t, r).has("", "belongs to another study") {
		t.Errorf("another study replaced it: %d %s", r.status, r.body)
	}
	if r := f.do(request{method: http.MethodGet, path: path, token: f.other}); r.status != http.StatusNotFound {
		t.Errorf("another study's key read it: %d %s", r.status, r.body)
	}
	if r := f.do(request{method: http.MethodGet, path: path, token: f.submit}); r.status != http.StatusOK || !bytes.Contains(r.body, []byte(`"PHQ.9"`)) {
		t.Errorf("GET: %d %s", r.status, r.body)
	}
	if r := put(f.operate, q); r.status != http.StatusOK || r.header.Get("Location") != "Questionnaire/mii-qst-pro-phq-9/_history/2" {
		t.Errorf("PUT again: %d %q", r.status, r.header.Get("Location"))
	}
	moved := bytes.Replace(q, []byte("modul-pro/Questionnaire"), []byte("modul-pro/Q2"), 1)
	if r := put(f.operate, moved); r.status != http.StatusConflict || !readOutcome(t, r).has("", "a url never changes") {
		t.Errorf("a changed url: %d %s", r.status, r.body)
	}
	// An unknown item is a warning (above); codes of no instrument at all are refused.
	wrong := bytes.ReplaceAll(q, []byte(`"442`), []byte(`"992`))
	if r := put(f.operate, wrong); r.status != http.StatusBadRequest || !readOutcome(t, r).has("", "name an instrument") {
		t.Errorf("a Questionnaire of no instrument: %d %s", r.status, r.body)
	}
}

func values(s codecs.Submission) map[string]float64 {
	out := map[string]float64{}
	for _, it := range s.Items {
		out[it.Code] = it.Value.Num
	}
	return out
}
