package codecs

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"
	"unicode/utf8"
)

// fuzzSeeds are valid and broken bodies of both formats, so each fuzz target
// starts from inputs that reach deep into the decoders.
func fuzzSeeds(f *testing.F) {
	seeds := []string{
		nativeBase,
		fhirPHQ9,
		`{"message_id":"m","study_id":"s","site_id":"1","subject_id":"p","instrument":"i","submitted_at":"2026-01-01T00:00:00Z","items":[{"code":"c","value":"t"}],"x":{"y":[1,2]}}`,
		`{"resourceType":"QuestionnaireResponse","id":"a","questionnaire":"Q|1","subject":{"reference":"P"},"authored":"2026-01-01T00:00:00-05:00","status":"amended","extension":[{"url":"https://eprostream.org/fhir/StructureDefinition/study-id","valueString":"S"},{"url":"https://eprostream.org/fhir/StructureDefinition/site-id","valueString":"1"}],"item":[{"linkId":"g","item":[{"linkId":"t","answer":[{"valueQuantity":{"value":37,"code":"Cel"},"item":[{"linkId":"b","answer":[{"valueBoolean":true}]}]}]}]}]}`,
		`{"resourceType":"QuestionnaireResponse","item":[{"linkId":"c","answer":[{"valueCoding":{"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/ordinalValue","valueDecimal":2}]}}]}]}`,
		`{"resourceType":"Patient"}`,
		`{"resourceType":null,"items":[]}`,
		`{"items":"x"}`,
		`{"items":[{"code":"c","value":{}}]}`,
		`{"MESSAGE_ID":"m"}`,
		`null`, `[]`, `{`, `"x"`, `{"a":1e999}`, "\xff",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
}

// comparable decodings: extra fields are compacted by Marshal.
func sameSubmission(t *testing.T, a, b Submission) bool {
	return reflect.DeepEqual(normalised(t, a), normalised(t, b))
}

// checkError holds every decoder to its contract: a FieldErrors or a
// sentinel, with a message that is valid UTF-8 (it goes into logs and DLQ
// headers).
func checkError(t *testing.T, err error) {
	var fe FieldErrors
	if !errors.As(err, &fe) && !errors.Is(err, ErrNotJSON) && !errors.Is(err, ErrTooLarge) {
		t.Fatalf("error %v is %T, want FieldErrors or a sentinel", err, err)
	}
	if !utf8.ValidString(err.Error()) {
		t.Fatalf("error message is not valid UTF-8: %q", err.Error())
	}
}

// roundTrip checks that what intake forwards decodes back to s. The zero
// time skips the age checks, which depend on when the test runs.
func roundTrip(t *testing.T, s Submission) {
	out, err := json.Marshal(s)
	if err != nil {
		t.Fatalf("marshal a decoded submission: %v", err)
	}
	again, err := DecodeSubmission(out, time.Time{})
	if err != nil {
		t.Fatalf("decode %s again: %v", out, err)
	}
	if !sameSubmission(t, s, again) {
		t.Fatalf("round trip changed the submission:\nfirst  %+v\nsecond %+v\nvia %s", s, again, out)
	}
}

func FuzzDecodeSubmission(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := DecodeSubmission(b, time.Time{})
		if err != nil {
			checkError(t, err)
			return
		}
		roundTrip(t, s)
	})
}

func FuzzFromFHIR(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := FromFHIR(b)
		if err != nil {
			checkError(t, err)
			return
		}
		if s.Source != "fhir" {
			t.Fatalf("source = %q, want fhir", s.Source)
		}
		if _, err := json.Marshal(s); err != nil {
			t.Fatalf("marshal a mapped submission: %v", err)
		}
		if s.Validate(time.Time{}) == nil {
			roundTrip(t, s)
		}
	})
}
