package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
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
	invented := make([]map[string]any, 500)
	for i := range invented {
		invented[i] = map[string]any{"code": fmt.Sprintf("X%d_SEVERITY", i), "value": 4}
	}
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
		{"grade as a word", native("v-seven", map[string]any{"items": []map[string]any{{"code": "NAUSEA_SEVERITY", "value": "seven"}}}), false, ""},
		{"grade over range", native("v-nine", map[string]any{"items": []map[string]any{{"code": "NAUSEA_SEVERITY", "value": 9}}}), false, ""},
		{"invented item", native("v-invented", map[string]any{"items": []map[string]any{{"code": "X1_SEVERITY", "value": 4}}}), false, ""},
		{"unknown instrument", native("v-instr", map[string]any{"instrument": "EQ-5D-5L"}), false, ""},
		{"500 invented severity items", native("v-500", map[string]any{"items": invented}), false, ""},
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

			clean, err := intake.Clean(f.catalogue, c.body, time.Now())
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

// TestGatewayRefusesExactlyWhatIntakeDeadLetters generates bad and good
// envelopes (wrong types, out-of-range values, unknown items and
// instruments, mixed) and holds the gateway to intake's verdict on the same
// bytes: 400 exactly when intake would dead-letter them, 202 otherwise.
func TestGatewayRefusesExactlyWhatIntakeDeadLetters(t *testing.T) {
	f := newFixture(t)
	rng := rand.New(rand.NewPCG(7, 11))
	items := []struct {
		instrument string
		code       string
		good       []any
		bad        []any
	}{
		{"PRO-CTCAE", "NAUSEA_SEVERITY", []any{0, 4, true}, []any{"seven", 9, -1, 1e308, 2.5, "4"}},
		{"PRO-CTCAE", "PAIN_INTERFERENCE", []any{2}, []any{5, "x", map[string]int{"a": 1}}},
		{"PRO-CTCAE", "X1_SEVERITY", nil, []any{4}},
		{"PRO-CTCAE", "DIARRHEA_SEVERITY", nil, []any{1}}, // PRO-CTCAE asks diarrhoea's frequency only
		{"PHQ-9", "PHQ9_9", []any{0, 3}, []any{4, "several days"}},
		{"NRS-PAIN", "PAIN_NRS", []any{0, 10}, []any{11, -3}},
		{"VITALS", "BODY_TEMPERATURE", []any{37.2, 100.6}, []any{"hot", 80}},
		{"EQ-5D-5L", "MOBILITY", nil, []any{1}},
		{"DIARY", "NOTES", []any{"slept well"}, []any{3}},
	}
	seen := map[bool]int{}
	for n := 0; n < 1000; n++ {
		pick := items[rng.IntN(len(items))]
		var v any
		wantBad := len(pick.good) == 0 || rng.IntN(2) == 0
		if wantBad {
			v = pick.bad[rng.IntN(len(pick.bad))]
		} else {
			v = pick.good[rng.IntN(len(pick.good))]
		}
		it := map[string]any{"code": pick.code, "value": v}
		if pick.code == "BODY_TEMPERATURE" && v == 100.6 {
			it["unit"] = "[degF]"
		}
		list := []map[string]any{it}
		if rng.IntN(4) == 0 { // mixed: a second, good PRO-CTCAE item
			list = append(list, map[string]any{"code": "FATIGUE_SEVERITY", "value": 1})
		}
		body := native(fmt.Sprintf("prop-%d", n), map[string]any{"instrument": pick.instrument, "items": list})
		r := f.do(request{path: "/v1/submissions", token: f.submit, contentType: "application/json", body: body})
		_, err := intake.Clean(f.catalogue, body, time.Now())
		intakeOK := err == nil
		if r.status != http.StatusAccepted && r.status != http.StatusBadRequest {
			t.Fatalf("case %d: gateway answered %d %s", n, r.status, r.body)
		}
		if (r.status == http.StatusAccepted) != intakeOK {
			t.Fatalf("case %d %s: gateway %d %s, intake %v", n, body, r.status, r.body, err)
		}
		seen[intakeOK]++
	}
	if seen[true] == 0 || seen[false] == 0 {
		t.Fatalf("verdicts %v: the generator must produce both accepted and refused envelopes", seen)
	}
	t.Logf("1000 envelopes: %d accepted by both, %d refused by both", seen[true], seen[false])
}
