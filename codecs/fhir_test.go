package codecs

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// fhirPHQ9 is a PHQ-9 response as an EHR-integrated app sends it: LOINC
// question and answer codes, items inside a group, no ordinalValue.
// Scores: 1+2+0+3+1+1+2+0+0 = 10.
const fhirPHQ9 = `{
  "resourceType": "QuestionnaireResponse",
  "id": "qr-7f3a",
  "meta": {"lastUpdated": "2026-11-20T07:15:03Z"},
  "identifier": {"system": "https://eprostream.org/message-id", "value": "msg-0001"},
  "extension": [
    {"url": "https://eprostream.org/fhir/StructureDefinition/study-id", "valueString": "ONC-301"},
    {"url": "https://eprostream.org/fhir/StructureDefinition/site-id", "valueIdentifier": {"value": "012"}}
  ],
  "questionnaire": "http://loinc.org/Questionnaire/PHQ-9|1.0",
  "status": "completed",
  "subject": {"reference": "Patient/ONC-301-012-0042", "display": "not used"},
  "authored": "2026-11-20T08:15:00+01:00",
  "item": [{
    "linkId": "phq9",
    "text": "Over the last 2 weeks, how often have you been bothered by:",
    "item": [
      {"linkId": "44250-9", "answer": [{"valueCoding": {"system": "http://loinc.org", "code": "LA6569-3", "display": "Several days"}}]},
      {"linkId": "44255-8", "answer": [{"valueCoding": {"system": "http://loinc.org", "code": "LA6570-1", "display": "More than half the days"}}]},
      {"linkId": "44259-0", "answer": [{"valueCoding": {"system": "http://loinc.org", "code": "LA6568-5", "display": "Not at all"}}]},
      {"linkId": "44254-1", "answer": [{"valueCoding": {"system": "http://loinc.org", "code": "LA6571-9", "display": "Nearly every day"}}]},
      {"linkId": "44251-7", "answer": [{"valueCoding": {"system": "http://loinc.org", "code": "LA6569-3"}}]},
      {"linkId": "44258-2", "answer": [{"valueCoding": {"system": "http://loinc.org", "code": "LA6569-3"}}]},
      {"linkId": "44252-5", "answer": [{"valueCoding": {"system": "http://loinc.org", "code": "LA6570-1"}}]},
      {"linkId": "44253-3", "answer": [{"valueCoding": {"system": "http://loinc.org", "code": "LA6568-5"}}]},
      {"linkId": "44260-8", "answer": [{"valueCoding": {"system": "http://loinc.org", "code": "LA6568-5"}}]}
    ]
  }]
}`

// fhirNow is a receipt time shortly after fhirPHQ9's authored.
var fhirNow = time.Date(2026, 11, 20, 7, 15, 4, 0, time.UTC)

// fhirItems returns fhirPHQ9 with its item array replaced.
func fhirItems(t testing.TB, items string) []byte {
	t.Helper()
	return jsonWith(t, fhirPHQ9, map[string]string{"item": items})
}

// nestedItems returns levels items, each the only child of the one above,
// the innermost answered with 1.
func nestedItems(levels int) string {
	s := `[{"linkId":"q","answer":[{"valueInteger":1}]}]`
	for i := 1; i < levels; i++ {
		s = fmt.Sprintf(`[{"linkId":"g%d","item":%s}]`, i, s)
	}
	return s
}

func TestFromFHIRPHQ9(t *testing.T) {
	s, err := FromFHIR([]byte(fhirPHQ9))
	if err != nil {
		t.Fatalf("FromFHIR: %v", err)
	}
	want := Submission{
		MessageID: "msg-0001", StudyID: "ONC-301", SiteID: "012", SubjectID: "ONC-301-012-0042",
		Instrument: "PHQ-9", InstrumentVersion: "1.0", SubmittedAt: "2026-11-20T08:15:00+01:00", Source: "fhir",
		Format: FormatFHIR,
	}
	got := s
	got.Items, got.Extra = nil, nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("envelope = %+v\nwant       %+v", got, want)
	}
	if len(s.Items) != 9 || s.Items[0].Code != "44250-9" || s.Items[8].Code != "44260-8" {
		t.Fatalf("items = %+v, want the nine PHQ-9 questions in order", s.Items)
	}
	var total float64
	for _, it := range s.Items {
		if it.Value.Kind != KindNumber {
			t.Fatalf("item %s kind = %d, want a number", it.Code, it.Value.Kind)
		}
		total += it.Value.Num
	}
	if total != 10 {
		t.Errorf("PHQ-9 total = %v, want 10", total)
	}
	if string(s.Extra["x_fhir_status"]) != `"completed"` || len(s.Extra) != 1 {
		t.Errorf("Extra = %v, want only x_fhir_status", s.Extra)
	}
}

func TestFromFHIRAnswers(t *testing.T) {
	const ordinal = `"extension":[{"url":"http://hl7.org/fhir/StructureDefinition/ordinalValue","valueDecimal":%s}]`
	tests := []struct {
		name   string
		answer string // the first answer of item "q"
		want   Item
	}{
		{"ordinalValue", `{"valueCoding":{"system":"http://example.org/cs","code":"often",` + fmt.Sprintf(ordinal, "2.5") + `}}`, Item{Code: "q", Value: Number(2.5)}},
		{"ordinalValue beats LOINC", `{"valueCoding":{"system":"http://loinc.org","code":"LA6571-9",` + fmt.Sprintf(ordinal, "7") + `}}`, Item{Code: "q", Value: Number(7)}},
		{"itemWeight", `{"valueCoding":{"code":"x","extension":[{"url":"http://hl7.org/fhir/StructureDefinition/itemWeight","valueDecimal":4}]}}`, Item{Code: "q", Value: Number(4)}},
		{"quantity UCUM", `{"valueQuantity":{"value":100.4,"unit":"°F","system":"http://unitsofmeasure.org","code":"[degF]"}}`, Item{Code: "q", Value: Number(100.4), Unit: "[degF]"}},
		{"quantity unit only", `{"valueQuantity":{"value":72,"unit":"kg"}}`, Item{Code: "q", Value: Number(72), Unit: "kg"}},
		{"decimal", `{"valueDecimal":-1.25}`, Item{Code: "q", Value: Number(-1.25)}},
		{"integer", `{"valueInteger":7}`, Item{Code: "q", Value: Number(7)}},
		{"boolean false", `{"valueBoolean":false}`, Item{Code: "q", Value: Value{Kind: KindBool}}},
		{"boolean true", `{"valueBoolean":true}`, Item{Code: "q", Value: Value{Kind: KindBool, Bool: true}}},
		{"string", `{"valueString":"headache since Monday"}`, Item{Code: "q", Value: Text("headache since Monday")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := fhirItems(t, `[{"linkId":"q","answer":[`+tt.answer+`,{"valueInteger":99}]}]`)
			s, err := FromFHIR(body)
			if err != nil {
				t.Fatalf("FromFHIR: %v", err)
			}
			if len(s.Items) != 1 || !reflect.DeepEqual(s.Items[0], tt.want) {
				t.Fatalf("items = %+v, want [%+v]", s.Items, tt.want)
			}
		})
	}
}

func TestFromFHIRNesting(t *testing.T) {
	items := `[
	  {"linkId": "intro", "text": "About you"},
	  {"linkId": "vitals", "item": [
	    {"linkId": "temp", "answer": [{"valueDecimal": 38.5}]},
	    {"linkId": "sub", "item": [{"linkId": "pulse", "answer": [{"valueInteger": 88}]}]}
	  ]},
	  {"linkId": "pain", "answer": [{"valueBoolean": true, "item": [
	    {"linkId": "pain-score", "answer": [{"valueInteger": 6}]}
	  ]}]},
	  {"linkId": "meds", "answer": [{"item": [{"linkId": "meds-n", "answer": [{"valueInteger": 2}]}]}]}
	]`
	s, err := FromFHIR(fhirItems(t, items))
	if err != nil {
		t.Fatalf("FromFHIR: %v", err)
	}
	var codes []string
	for _, it := range s.Items {
		codes = append(codes, it.Code)
	}
	want := []string{"temp", "pulse", "pain", "pain-score", "meds-n"}
	if !reflect.DeepEqual(codes, want) {
		t.Fatalf("codes = %v, want %v", codes, want)
	}
	if _, err := FromFHIR(fhirItems(t, nestedItems(fhirMaxDepth))); err != nil {
		t.Fatalf("%d levels: %v", fhirMaxDepth, err)
	}
}

func TestFromFHIRIDs(t *testing.T) {
	tests := []struct {
		name          string
		set           map[string]string
		message, subj string
	}{
		{"reference", nil, "msg-0001", "ONC-301-012-0042"},
		{"bare reference", map[string]string{"subject": `{"reference":"ONC-301-012-0042"}`}, "msg-0001", "ONC-301-012-0042"},
		{"absolute versioned reference", map[string]string{"subject": `{"reference":"https://fhir.example.org/r4/Patient/P-9/_history/3"}`}, "msg-0001", "P-9"},
		{"subject identifier", map[string]string{"subject": `{"identifier":{"system":"urn:trial","value":"P-7"}}`}, "msg-0001", "P-7"},
		{"identifier array", map[string]string{"identifier": `[{"system":"a"},{"value":"msg-2"},{"value":"msg-3"}]`}, "msg-2", "ONC-301-012-0042"},
		{"identifier without value", map[string]string{"identifier": `{"system":"a"}`}, "qr-7f3a", "ONC-301-012-0042"},
		{"no identifier", map[string]string{"identifier": ""}, "qr-7f3a", "ONC-301-012-0042"},
		{"nothing", map[string]string{"identifier": "", "id": "", "subject": ""}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := FromFHIR(jsonWith(t, fhirPHQ9, tt.set))
			if err != nil {
				t.Fatalf("FromFHIR: %v", err)
			}
			if s.MessageID != tt.message || s.SubjectID != tt.subj {
				t.Fatalf("message_id, subject_id = %q, %q; want %q, %q", s.MessageID, s.SubjectID, tt.message, tt.subj)
			}
		})
	}
}

func TestFromFHIRInvalid(t *testing.T) {
	deep := jsonWith(t, fhirPHQ9, map[string]string{"item": nestedItems(fhirMaxDepth + 1)})
	tests := []struct {
		name         string
		body         []byte
		path, reason string
	}{
		{"wrong resourceType", jsonWith(t, fhirPHQ9, map[string]string{"resourceType": `"Patient"`}), "resourceType", `is "Patient", want QuestionnaireResponse`},
		{"no resourceType", jsonWith(t, fhirPHQ9, map[string]string{"resourceType": ""}), "resourceType", "is required"},
		{"resourceType a number", jsonWith(t, fhirPHQ9, map[string]string{"resourceType": "1"}), "resourceType", "must be a string, not number"},
		{"coding without score", fhirItems(t, `[{"linkId":"g","item":[{"linkId":"a","answer":[{"valueInteger":1}]},{"linkId":"b"},{"linkId":"c","answer":[{"valueCoding":{"system":"http://snomed.info/sct","code":"373066001"}}]}]}]`), "item[0].item[2].answer[0].valueCoding", "coding has no score"},
		{"unknown LOINC answer", fhirItems(t, `[{"linkId":"q","answer":[{"valueCoding":{"system":"http://loinc.org","code":"LA6572-7"}}]}]`), "item[0].answer[0].valueCoding", "no score"},
		{"too deep", deep, "item[0].item[0].item[0].item[0].item[0].item[0].item[0].item[0].item", "items nested deeper than 8 levels"},
		{"too deep under answers", fhirItems(t, strings.Repeat(`[{"linkId":"q","answer":[{"valueInteger":1,"item":`, 9)+`[]`+strings.Repeat(`}]}]`, 9)), "item[0]" + strings.Repeat(".answer[0].item[0]", 7) + ".answer[0].item", "deeper than 8"},
		{"two values", fhirItems(t, `[{"linkId":"q","answer":[{"valueInteger":1,"valueString":"x"}]}]`), "item[0].answer[0]", "more than one value[x]"},
		{"unsupported type", fhirItems(t, `[{"linkId":"q","answer":[{"valueDate":"2026-11-20"}]}]`), "item[0].answer[0].valueDate", "not a supported answer type"},
		{"empty answer", fhirItems(t, `[{"linkId":"q","answer":[{}]}]`), "item[0].answer[0]", "has no value"},
		{"no linkId", fhirItems(t, `[{"answer":[{"valueInteger":1}]}]`), "item[0].linkId", "is required"},
		{"quantity comparator", fhirItems(t, `[{"linkId":"q","answer":[{"valueQuantity":{"value":5,"comparator":"<"}}]}]`), "item[0].answer[0].valueQuantity", "comparator"},
		{"quantity without value", fhirItems(t, `[{"linkId":"q","answer":[{"valueQuantity":{"unit":"kg"}}]}]`), "item[0].answer[0].valueQuantity", "has no value"},
		{"integer as string", fhirItems(t, `[{"linkId":"q","answer":[{"valueInteger":"3"}]}]`), "item[0].answer[0].valueInteger", "must be a number, not string"},
		{"null decimal", fhirItems(t, `[{"linkId":"q","answer":[{"valueDecimal":null}]}]`), "item[0].answer[0].valueDecimal", "is null"},
		{"huge decimal", fhirItems(t, `[{"linkId":"q","answer":[{"valueDecimal":1e999}]}]`), "item[0].answer[0].valueDecimal", "is out of range"},
		{"item a string", fhirItems(t, `"x"`), "item", "must be an array, not string"},
		{"answer a string", fhirItems(t, `[{"linkId":"q","answer":"x"}]`), "item", "answer must be an array"},
		{"subject a string", jsonWith(t, fhirPHQ9, map[string]string{"subject": `"Patient/1"`}), "subject", "must be an object, not string"},
		{"extension an object", jsonWith(t, fhirPHQ9, map[string]string{"extension": `{}`}), "extension", "must be an array"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := FromFHIR(tt.body)
			wantFieldError(t, err, tt.path, tt.reason)
		})
	}
}

func TestFromFHIRLongResourceType(t *testing.T) {
	long := strings.Repeat("é", 100)
	_, err := FromFHIR(jsonWith(t, fhirPHQ9, map[string]string{"resourceType": `"` + long + `"`}))
	wantFieldError(t, err, "resourceType", "want QuestionnaireResponse")
	if strings.Contains(err.Error(), strings.Repeat("é", 41)) || !strings.Contains(err.Error(), strings.Repeat("é", 40)+`"…`) {
		t.Fatalf("error = %v, want the value cut to 40 characters", err)
	}
}

func TestFromFHIRNotJSON(t *testing.T) {
	for _, body := range []string{``, `{`, `null`, `[]`, `"QuestionnaireResponse"`} {
		if _, err := FromFHIR([]byte(body)); !errors.Is(err, ErrNotJSON) {
			t.Errorf("FromFHIR(%q) err = %v, want ErrNotJSON", body, err)
		}
	}
}

func TestFromFHIRErrorCap(t *testing.T) {
	items := strings.Repeat(`{"linkId":"q","answer":[{}]},`, 2*fhirMaxErrors)
	_, err := FromFHIR(fhirItems(t, "["+strings.TrimSuffix(items, ",")+"]"))
	var fe FieldErrors
	if !errors.As(err, &fe) || len(fe) != fhirMaxErrors+1 || fe[fhirMaxErrors].Path != "$" {
		t.Fatalf("got %d errors, want %d and a note", len(fe), fhirMaxErrors)
	}
}

// Free text is PHI: no error, from FromFHIR or from validation, may quote it.
func TestFHIRErrorsKeepTextOut(t *testing.T) {
	const secret = "I think about ending it"
	long := strings.Repeat("x", MaxTextLen) + secret
	bodies := map[string][]byte{
		"beside bad coding": fhirItems(t, `[{"linkId":"a","answer":[{"valueString":"`+secret+`"}]},{"linkId":"b","answer":[{"valueCoding":{"code":"z"}}]}]`),
		"two values":        fhirItems(t, `[{"linkId":"a","answer":[{"valueString":"`+secret+`","valueInteger":1}]}]`),
		"unsupported":       fhirItems(t, `[{"linkId":"a","answer":[{"valueMarkdown":"`+secret+`"}]}]`),
		"in a number":       fhirItems(t, `[{"linkId":"a","answer":[{"valueDecimal":"`+secret+`"}]}]`),
		"in a quantity":     fhirItems(t, `[{"linkId":"a","answer":[{"valueQuantity":{"value":"`+secret+`"}}]}]`),
		"huge number":       fhirItems(t, `[{"linkId":"a","answer":[{"valueDecimal":1e999}]}]`),
		"duplicate code":    fhirItems(t, `[{"linkId":"a","answer":[{"valueString":"`+secret+`"}]},{"linkId":"a","answer":[{"valueString":"`+secret+`"}]}]`),
		"too long":          fhirItems(t, `[{"linkId":"a","answer":[{"valueString":"`+long+`"}]}]`),
		"bad linkId":        fhirItems(t, `[{"linkId":"a b","answer":[{"valueString":"`+secret+`"}]}]`),
	}
	for name, body := range bodies {
		for _, now := range []time.Time{fhirNow, fhirNow.AddDate(3, 0, 0)} {
			_, err := DecodeSubmission(body, now)
			if err == nil {
				t.Errorf("%s: no error", name)
			} else if strings.Contains(err.Error(), secret) {
				t.Errorf("%s: error quotes the free text: %v", name, err)
			}
		}
	}
}

func TestDecodeSubmissionFHIR(t *testing.T) {
	s, err := DecodeSubmission([]byte(fhirPHQ9), fhirNow)
	if err != nil {
		t.Fatalf("DecodeSubmission: %v", err)
	}
	if s.Source != "fhir" || s.SubjectID != "ONC-301-012-0042" || len(s.Items) != 9 {
		t.Fatalf("got %+v", s)
	}
	// What intake forwards must decode as a native envelope to the same thing.
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	again, err := DecodeSubmission(b, fhirNow)
	if err != nil {
		t.Fatalf("decode native: %v", err)
	}
	if !reflect.DeepEqual(normalised(t, s), normalised(t, again)) {
		t.Fatalf("round trip changed the submission:\n%+v\n%+v", s, again)
	}
}

func TestDecodeSubmissionFHIRInvalid(t *testing.T) {
	tests := []struct {
		name         string
		body         []byte
		now          time.Time
		path, reason string
	}{
		{"no study extension", jsonWith(t, fhirPHQ9, map[string]string{"extension": ""}), fhirNow, "study_id", "is required"},
		{"authored without offset", jsonWith(t, fhirPHQ9, map[string]string{"authored": `"2026-11-20T08:15:00"`}), fhirNow, "submitted_at", "with an offset"},
		{"authored a date", jsonWith(t, fhirPHQ9, map[string]string{"authored": `"2026-11-20"`}), fhirNow, "submitted_at", "RFC 3339"},
		{"received long after", []byte(fhirPHQ9), fhirNow.AddDate(2, 0, 0), "submitted_at", "more than 400 days old"},
		{"no answers", fhirItems(t, `[{"linkId":"g","item":[{"linkId":"q"}]}]`), fhirNow, "items", "at least one item"},
		{"wrong resourceType", jsonWith(t, fhirPHQ9, map[string]string{"resourceType": `"Observation"`}), fhirNow, "resourceType", "want QuestionnaireResponse"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeSubmission(tt.body, tt.now)
			wantFieldError(t, err, tt.path, tt.reason)
		})
	}
}
