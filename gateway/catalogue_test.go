package gateway_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// badCase is one wrong request and the answer it must get.
type badCase struct {
	name   string
	req    request
	status int
	want   string // in the error or in a field's path/reason
}

func badRequests(f *fixture, revoked string) []badCase {
	sub := func(body []byte) request {
		return request{path: "/v1/submissions", token: f.submit, contentType: "application/json", body: body}
	}
	with := func(over map[string]any) request { return sub(native("bad-1", over)) }
	hour := time.Hour
	items := make([]map[string]any, 501)
	for i := range items {
		items[i] = map[string]any{"code": fmt.Sprintf("Q%d", i), "value": 1}
	}
	fhirPatient := []byte(`{"resourceType":"Patient","id":"p1"}`)
	return []badCase{
		// malformed bodies
		{"malformed JSON", sub([]byte(`{"message_id":`)), 400, "malformed JSON"},
		{"empty body", sub(nil), 400, "JSON"},
		{"array instead of object", sub([]byte(`[{"message_id":"x"}]`)), 400, "JSON object"},
		{"null body", sub([]byte(`null`)), 400, "JSON"},
		{"invalid UTF-8", sub(append([]byte(`{"message_id":"`), 0xff, 0xfe, '"', '}')), 400, "not valid UTF-8"},
		{"trailing garbage", sub(append(native("bad-2", nil), []byte(`}{`)...)), 400, "JSON"},
		// wrong types
		{"message_id is a number", with(map[string]any{"message_id": 42}), 400, "message_id must be a string"},
		{"items is a string", with(map[string]any{"items": "PAIN=2"}), 400, "items must be an array"},
		{"value is an object", with(map[string]any{"items": []map[string]any{{"code": "PAIN", "value": map[string]int{"a": 1}}}}), 400, "items[].value must be a finite number, a boolean or a string"},
		{"number out of range", sub(bytes.Replace(native("bad-3", nil), []byte(`"value":2`), []byte(`"value":1e400`), 1)), 400, "finite number"},
		// missing and unknown fields
		{"missing subject_id", with(map[string]any{"subject_id": nil}), 400, "subject_id: is required"},
		{"missing items", with(map[string]any{"items": nil}), 400, "at least one item"},
		{"empty object", sub([]byte(`{}`)), 400, "message_id: is required"},
		{"unknown field", with(map[string]any{"patient_name": "x"}), 400, `"patient_name": is not a field of the envelope`},
		{"field differing only in case", with(map[string]any{"Subject_ID": "x"}), 400, "only in case"},
		{"item without value", with(map[string]any{"items": []map[string]any{{"code": "PAIN"}}}), 400, "items[0].value: is required"},
		{"duplicate item code", with(map[string]any{"items": []map[string]any{{"code": "PAIN", "value": 1}, {"code": "PAIN", "value": 2}}}), 400, "appears more than once"},
		{"too many items", with(map[string]any{"items": items}), 400, "at most 500"},
		{"free text over 4000 bytes", with(map[string]any{"items": []map[string]any{{"code": "NOTE", "value": strings.Repeat("a", 4001)}}}), 400, "at most 4000"},
		// sizes and content types
		{"oversize body", sub(bytes.Repeat([]byte(" "), 300<<10)), 413, "over the limit"},
		{"text/plain", request{path: "/v1/submissions", token: f.submit, contentType: "text/plain", body: native("bad-4", nil)}, 415, "Content-Type must be application/json"},
		{"no content type", request{path: "/v1/submissions", token: f.submit, body: native("bad-5", nil)}, 415, "Content-Type"},
		// time
		{"far-future timestamp", with(map[string]any{"submitted_at": time.Now().Add(48 * hour).UTC().Format(time.RFC3339)}), 400, "in the future"},
		{"ancient timestamp", with(map[string]any{"submitted_at": "2019-01-01T00:00:00Z"}), 400, "more than 400 days old"},
		{"timestamp without offset", with(map[string]any{"submitted_at": "2026-11-20T08:15:00"}), 400, "RFC 3339"},
		// studies, sites and keys
		{"unknown study", request{path: "/v1/submissions", token: f.all, contentType: "application/json", body: native("bad-6", map[string]any{"study_id": "XYZ-999"})}, 400, "study_id: is not a study in the catalogue"},
		{"unknown site", with(map[string]any{"site_id": "SITE-777"}), 400, "is not a site of study ONC-301"},
		{"wrong key scope", request{path: "/v1/submissions", token: f.other, contentType: "application/json", body: native("bad-7", nil)}, 403, `may not act for study "ONC-301"`},
		{"no API key", request{path: "/v1/submissions", contentType: "application/json", body: native("bad-8", nil)}, 401, "missing API key"},
		{"malformed API key", request{path: "/v1/submissions", token: "letmein", contentType: "application/json", body: native("bad-9", nil)}, 401, "malformed API key"},
		{"unknown API key", request{path: "/v1/submissions", token: "epk_000000000000_" + strings.Repeat("A", 43), contentType: "application/json", body: native("bad-10", nil)}, 401, "unknown API key"},
		{"revoked API key", request{path: "/v1/submissions", token: revoked, contentType: "application/json", body: native("bad-11", nil)}, 401, "revoked"},
		{"operate key submitting", request{path: "/v1/submissions", token: f.operate, contentType: "application/json", body: native("bad-12", nil)}, 403, "lacks the submit role"},
		// injection strings
		{"SQL injection in subject_id", with(map[string]any{"subject_id": "x'; DROP TABLE submissions;--"}), 400, "subject_id: may hold only letters"},
		{"script in item code", with(map[string]any{"items": []map[string]any{{"code": "<script>alert(1)</script>", "value": 1}}}), 400, "items[0].code"},
		{"CRLF in message_id", with(map[string]any{"message_id": "m1\r\nX-Injected: 1"}), 400, "message_id: may hold only"},
		// FHIR
		{"FHIR resource of the wrong type", request{path: "/v1/submissions", token: f.submit, contentType: "application/fhir+json", body: fhirPatient}, 400, "resourceType: is \"Patient\"; eprostream accepts QuestionnaireResponse and Observation"},
		{"native envelope sent as FHIR", request{path: "/v1/submissions", token: f.submit, contentType: "application/fhir+json", body: native("bad-13", nil)}, 400, "resourceType: is required"},
		// headers
		{"Idempotency-Key with spaces", request{path: "/v1/submissions", token: f.submit, contentType: "application/json", body: native("bad-14", nil), header: map[string]string{"Idempotency-Key": "a b"}}, 400, "Idempotency-Key must be"},
		// batch
		{"batch is an array", request{path: "/v1/submissions:batch", token: f.submit, contentType: "application/json", body: []byte(`[]`)}, 400, `{"submissions": [...]}`},
		{"batch is empty", request{path: "/v1/submissions:batch", token: f.submit, contentType: "application/json", body: []byte(`{"submissions":[]}`)}, 400, "submissions is empty"},
		{"batch over the count", request{path: "/v1/submissions:batch", token: f.submit, contentType: "application/json", body: []byte(`{"submissions":[` + strings.Repeat(`{},`, 50) + `{}]}`)}, 413, "at most 50"},
		{"batch with an unknown field", request{path: "/v1/submissions:batch", token: f.submit, contentType: "application/json", body: []byte(`{"items":[]}`)}, 400, `unknown field "items"`},
		{"batch with Idempotency-Key", request{path: "/v1/submissions:batch", token: f.submit, contentType: "application/json", body: []byte(`{"submissions":[{}]}`), header: map[string]string{"Idempotency-Key": "k"}}, 400, "each item's message_id"},
		// operator commands
		{"plan that is not an object", request{path: "/v1/subjects/ONC-301-012-0042/plan", token: f.operate, contentType: "application/json", body: []byte(`{"study_id":"ONC-301","plan":[1]}`)}, 400, "plan: must be a JSON object"},
		{"plan with an unknown field", request{path: "/v1/subjects/ONC-301-012-0042/plan", token: f.operate, contentType: "application/json", body: []byte(`{"study_id":"ONC-301","plan":{},"dose":5}`)}, 400, "does not match the request schema"},
		{"plan with a submit key", request{path: "/v1/subjects/ONC-301-012-0042/plan", token: f.submit, contentType: "application/json", body: []byte(`{"study_id":"ONC-301","plan":{}}`)}, 403, "lacks the operate role"},
		{"plan for a malformed subject id", request{path: "/v1/subjects/bad%20id!/plan", token: f.operate, contentType: "application/json", body: []byte(`{"study_id":"ONC-301","plan":{}}`)}, 400, "subject_id (path)"},
		{"ack without subject_id", request{path: "/v1/alerts/a-1/ack", token: f.operate, contentType: "application/json", body: []byte(`{"study_id":"ONC-301"}`)}, 400, "subject_id: is required"},
		{"ack for another study", request{path: "/v1/alerts/a-1/ack", token: f.operate, contentType: "application/json", body: []byte(`{"study_id":"CAR-200","subject_id":"CAR-200-001-0001"}`)}, 403, "may not act for study"},
		{"unknown endpoint", request{path: "/v1/submission", token: f.submit, contentType: "application/json", body: native("bad-15", nil)}, 404, "no such endpoint"},
	}
}

func TestBadRequestCatalogue(t *testing.T) {
	f := newFixture(t)
	revoked := f.key("ONC-301", "submit")
	keys, _ := f.keys.List(context.Background())
	for _, k := range keys {
		if k.Name == "test submit" && strings.Contains(revoked, k.ID) {
			if _, err := f.keys.Revoke(context.Background(), k.ID); err != nil {
				t.Fatal(err)
			}
		}
	}
	cases := badRequests(f, revoked)
	if len(cases) < 30 {
		t.Fatalf("catalogue has %d cases", len(cases))
	}
	before := f.records(f.names.Submissions)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f.t = t
			r := f.do(c.req)
			p := r.problem()
			text := p.Error
			for _, fp := range p.Fields {
				text += " | " + fp.Path + ": " + fp.Reason
			}
			if r.status != c.status || !strings.Contains(text, c.want) {
				t.Errorf("got %d %s\nwant %d with %q", r.status, r.body, c.status, c.want)
			}
			if r.status == http.StatusUnauthorized && r.header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
	f.t = t
	if after := f.records(f.names.Submissions); after != before {
		t.Fatalf("bad requests wrote %d records to Kafka", after-before)
	}
}
