package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/emitters"
	"github.com/eprostream/eprostream/processors/intake"
)

// TestOneVerdictForTheSameBytes holds the three ways into epro-submissions
// to one envelope validation (codecs.ParseSubmission + Validate): the same
// bytes are accepted by the gateway, by a Go emitter (the bytes decoded into
// a codecs.Submission, as a Go program would build it) and by intake, or
// refused by all three.
func TestOneVerdictForTheSameBytes(t *testing.T) {
	f := newFixture(t)
	em, err := emitters.NewSubmissionEmitter(f.cfg.Emitters(), emitters.Deps{Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = em.Close() })

	fhirAsNative := native("v-fhir-source", map[string]any{"source": "fhir"})
	cases := []struct {
		name   string
		body   []byte
		accept bool
		format codecs.Format // what intake must record when accepted
	}{
		{"plain envelope", native("v-ok", nil), true, codecs.FormatNative},
		{"extension field", native("v-ext", map[string]any{"x_app_build": "4.2"}), true, codecs.FormatNative},
		{"unknown field", native("v-unknown", map[string]any{"patient_name": "x"}), false, ""},
		{"field differing only in case", native("v-case", map[string]any{"Subject_ID": "x"}), false, ""},
		{"native envelope saying source fhir", fhirAsNative, true, codecs.FormatNative},
		{"native envelope with a lowercase resourcetype field", native("v-rt", map[string]any{"resourcetype": "x"}), false, ""},
		{"FHIR QuestionnaireResponse", fhirResponse("v-qr"), true, codecs.FormatFHIR},
		{"FHIR resource of another type", []byte(`{"resourceType":"Patient","id":"p1"}`), false, ""},
		{"missing subject", native("v-nosubject", map[string]any{"subject_id": nil}), false, ""},
		{"bad item code", native("v-code", map[string]any{"items": []map[string]any{{"code": "<b>", "value": 1}}}), false, ""},
	}
	accepted := 0
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := f.do(request{path: "/v1/submissions", token: f.submit, contentType: "application/json", body: c.body})
			gatewayOK := r.status == http.StatusAccepted
			if !gatewayOK && r.status != http.StatusBadRequest {
				t.Fatalf("gateway answered %d %s, want 202 or 400", r.status, r.body)
			}

			emitterOK := false
			var s codecs.Submission
			if err := json.Unmarshal(c.body, &s); err == nil && !bytes.Contains(c.body, []byte(`"resourceType"`)) {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				err := em.Emit(ctx, s)
				cancel()
				emitterOK = err == nil
			} else if err == nil {
				// A FHIR resource reaches a Go program as bytes: the emitter
				// path is ParseSubmission, as for any other producer.
				p, perr := codecs.ParseSubmission(c.body)
				emitterOK = perr == nil && p.Validate(time.Now()) == nil
			}

			clean, err := intake.Clean(c.body, time.Now())
			intakeOK := err == nil

			if gatewayOK != c.accept || emitterOK != c.accept || intakeOK != c.accept {
				t.Fatalf("verdicts differ or are wrong (want accept=%v): gateway %v (%d %s), emitter %v, intake %v (%v)",
					c.accept, gatewayOK, r.status, r.body, emitterOK, intakeOK, err)
			}
			if c.accept {
				accepted++
				if clean.Format != string(c.format) {
					t.Errorf("intake recorded format %q, want %q", clean.Format, c.format)
				}
			}
		})
	}
	if accepted == 0 {
		t.Fatal("no case was accepted: the comparison saw only refusals")
	}
}
