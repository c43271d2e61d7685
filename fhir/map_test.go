package fhir

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/instruments"
)

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func questionnaire(t testing.TB, name string) Questionnaire {
	t.Helper()
	var q Questionnaire
	if err := json.Unmarshal(fixture(t, name), &q); err != nil {
		t.Fatal(err)
	}
	return q
}

// testMapper knows the built-in forms and the MII PHQ-9 Questionnaire;
// every subject is enrolled in ONC-301 at SITE-001.
func testMapper(t testing.TB) *Mapper {
	t.Helper()
	lib, err := NewLibrary(instruments.Builtin(), questionnaire(t, "questionnaire-phq9-mii.json"))
	if err != nil {
		t.Fatal(err)
	}
	return &Mapper{Library: lib}
}

func enrolled(subject string, claimed Placement) Placement {
	if claimed.StudyID != "" {
		return claimed
	}
	return Placement{StudyID: "ONC-301", SiteID: "SITE-001"}
}

func values(s codecs.Submission) map[string]float64 {
	out := map[string]float64{}
	for _, it := range s.Items {
		out[it.Code] = it.Value.Num
	}
	return out
}

func TestResponsesMapThroughTheirQuestionnaire(t *testing.T) {
	phq := func(scores ...float64) map[string]float64 {
		out := map[string]float64{}
		for i, s := range scores {
			out["PHQ9_"+string(rune('1'+i))] = s
		}
		return out
	}
	withTotal := func(m map[string]float64, total float64) map[string]float64 {
		m["PHQ9_TOTAL"] = total
		return m
	}
	cases := []struct {
		file, instrument, version string
		want                      map[string]float64
	}{
		{"qr-phq9-lhcforms.json", "PHQ-9", "1.0", withTotal(phq(3, 3, 3, 3, 2, 2, 2, 1, 1), 20)},
		{"qr-phq9-plain-linkids.json", "PHQ-9", "1.0", withTotal(phq(3, 3, 3, 3, 2, 2, 2, 1, 1), 20)},
		{"qr-phq9-nested-nocanonical.json", "PHQ-9", "1.0", phq(0, 0, 1, 0, 0, 1, 0, 0, 0)},
		{"qr-phq9-mii.json", "PHQ-9", "2025.0.0", phq(0, 1, 0, 0, 0, 0, 0, 0, 2)},
		{"qr-gad7-lhcforms.json", "GAD-7", "1.0", map[string]float64{"GAD7_1": 1, "GAD7_2": 1, "GAD7_3": 1, "GAD7_4": 1,
			"GAD7_5": 0, "GAD7_6": 0, "GAD7_7": 0, "GAD7_TOTAL": 4}},
		{"qr-vitals-nocanonical.json", "VITALS", "1.0", map[string]float64{"BODY_TEMPERATURE": 100.6, "BODY_WEIGHT": 172}},
	}
	mp := testMapper(t)
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			m, err := mp.Map(fixture(t, c.file), enrolled)
			if err != nil {
				t.Fatalf("Map: %v", err)
			}
			s := m.Submission
			if s.Instrument != c.instrument || s.InstrumentVersion != c.version {
				t.Errorf("instrument = %s %s, want %s %s", s.Instrument, s.InstrumentVersion, c.instrument, c.version)
			}
			if s.StudyID != "ONC-301" || s.SiteID != "SITE-001" || s.SubjectID != "example" {
				t.Errorf("placed at %s/%s subject %s", s.StudyID, s.SiteID, s.SubjectID)
			}
			if got := values(s); !equal(got, c.want) {
				t.Errorf("items = %v\nwant    %v", got, c.want)
			}
			if s.Origin() != codecs.FormatFHIR {
				t.Errorf("origin = %s", s.Origin())
			}
			if err := s.Validate(fixtureNow); err != nil {
				t.Errorf("the mapped envelope does not validate: %v", err)
			}
		})
	}
}

func equal(a, b map[string]float64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestObservationsMapOntoVitals(t *testing.T) {
	cases := []struct {
		file string
		want map[string]float64
		unit string
		id   string
	}{
		{"observation-body-temperature.json", map[string]float64{"BODY_TEMPERATURE": 36.5}, "Cel", "body-temperature"},
		{"observation-body-temperature-degf.json", map[string]float64{"BODY_TEMPERATURE": 100.6}, "[degF]", "body-temperature-f"},
		{"observation-blood-pressure.json", map[string]float64{"BP_SYSTOLIC": 107, "BP_DIASTOLIC": 60}, "mm[Hg]", "blood-pressure"},
		{"observation-heart-rate.json", map[string]float64{"HEART_RATE": 44}, "/min", "heart-rate"},
		{"observation-body-weight-lb.json", map[string]float64{"BODY_WEIGHT": 185}, "[lb_av]", "body-weight"},
		{"observation-spo2.json", map[string]float64{"SPO2": 95}, "%", "satO2"},
	}
	mp := testMapper(t)
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			m, err := mp.Map(fixture(t, c.file), enrolled)
			if err != nil {
				t.Fatalf("Map: %v", err)
			}
			s := m.Submission
			if s.Instrument != instruments.Vitals || m.Type != TypeObservation || m.ID != c.id {
				t.Errorf("instrument %s type %s id %s", s.Instrument, m.Type, m.ID)
			}
			if got := values(s); !equal(got, c.want) {
				t.Errorf("items = %v, want %v", got, c.want)
			}
			if s.Items[0].Unit != c.unit {
				t.Errorf("unit = %q, want %q", s.Items[0].Unit, c.unit)
			}
			if err := s.Validate(fixtureNow); err != nil {
				t.Errorf("the mapped envelope does not validate: %v", err)
			}
		})
	}
}

func TestRefusalsNameTheElement(t *testing.T) {
	mp := testMapper(t)
	mii := string(fixture(t, "qr-phq9-mii.json"))
	lhc := string(fixture(t, "qr-phq9-lhcforms.json"))
	cases := []struct {
		name, body, expr, reason string
	}{
		{"preliminary Observation", string(fixture(t, "observation-preliminary.json")), "Observation.status", "only final readings"},
		{"entered-in-error", strings.Replace(string(fixture(t, "observation-heart-rate.json")), `"final"`, `"entered-in-error"`, 1),
			"Observation.status", "retracting a reading is not supported"},
		{"unknown code", strings.Replace(string(fixture(t, "observation-heart-rate.json")), `"8867-4"`, `"2339-0"`, 1),
			"Observation.code", "is not a measurement the study records"},
		{"in-progress response", strings.Replace(lhc, `"completed"`, `"in-progress"`, 1), "QuestionnaireResponse.status", "only completed and amended"},
		{"unknown questionnaire", strings.Replace(lhc, "http://loinc.org/q/44249-1", "http://example.org/Questionnaire/nope", 1),
			"QuestionnaireResponse.questionnaire", "is not a Questionnaire of this study"},
		{"unknown version", strings.Replace(mii, "|2025.0.0", "|2019", 1), "QuestionnaireResponse.questionnaire", "version \"2019\""},
		{"linkId the definition lacks", strings.Replace(mii, `"PHQ.3"`, `"PHQ.33"`, 1), "QuestionnaireResponse.item[2].answer[0]",
			`linkId "PHQ.33" is not an item of questionnaire`},
		{"answered item the instrument lacks", strings.Replace(mii, `"PHQ.3"`, `"PHQ.10"`, 1), "QuestionnaireResponse.item[2].answer[0]",
			`(http://loinc.org|69722-7) is not an item of PHQ-9`},
		{"answer outside the answer list", strings.Replace(mii, `"LA6569-3"`, `"LA9999-9"`, 1), "QuestionnaireResponse.item[1].answer[0].valueCoding",
			"is not one of the answers"},
		{"no questionnaire, unknown linkIds", strings.Replace(string(fixture(t, "qr-phq9-nested-nocanonical.json")), `"44250-9"`, `"q1"`, 1),
			"QuestionnaireResponse", "names no questionnaire"},
		{"year-only authored", strings.Replace(lhc, `"authored": "2026-11-`, `"authored": "2026", "x": "`, 1),
			"QuestionnaireResponse.authored", "must be a full date"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.body == lhc || c.body == mii {
				t.Fatal("the replacement did not change the fixture")
			}
			_, err := mp.Map([]byte(c.body), enrolled)
			var fe codecs.FieldErrors
			if !errors.As(err, &fe) {
				t.Fatalf("Map = %v, want field errors", err)
			}
			for _, f := range fe {
				if f.Path == c.expr && strings.Contains(f.Reason, c.reason) {
					return
				}
			}
			t.Errorf("errors %v lack %s: …%s…", fe, c.expr, c.reason)
		})
	}
}

func TestAQuestionnaireMustMapOntoAnInstrument(t *testing.T) {
	set := instruments.Builtin()
	q := questionnaire(t, "questionnaire-phq9-mii.json")
	f, warnings, err := Compile(q, set)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	if f.Instrument != "PHQ-9" || len(warnings) != 1 || !strings.Contains(warnings[0], "PHQ.10") {
		t.Errorf("instrument %s, warnings %q; want PHQ-9 and one warning about PHQ.10", f.Instrument, warnings)
	}
	q.Code = nil
	for i := range q.Item {
		q.Item[i].Code = []Coding{{System: loincSystem, Code: "1234-5"}}
	}
	if _, _, err := Compile(q, set); err == nil || !strings.Contains(err.Error(), "name an instrument") {
		t.Errorf("Compile of unknown codes = %v, want a refusal naming the problem", err)
	}
}

// fixtureNow is a receipt time shortly after the fixtures' dates.
var fixtureNow = mustTime("2026-12-01T08:00:00Z")

func mustTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestSubjectsByAStudysIdentifierSystem(t *testing.T) {
	mp := testMapper(t)
	mp.SubjectSystem = func(system string) (string, bool) {
		return "ONC-301", system == "https://onc301.example.org/subject-id"
	}
	body := func(system string) []byte {
		return []byte(strings.Replace(string(fixture(t, "observation-heart-rate.json")), `"reference": "Patient/example"`,
			`"identifier": {"system": "`+system+`", "value": "ONC-301-001-0042"}`, 1))
	}
	if b := body("x"); string(b) == string(fixture(t, "observation-heart-rate.json")) {
		t.Fatal("the reference was not replaced")
	}
	m, err := mp.Map(body("https://onc301.example.org/subject-id"), enrolled)
	if err != nil || m.Submission.SubjectID != "ONC-301-001-0042" {
		t.Fatalf("Map = %+v, %v", m, err)
	}
	_, err = mp.Map(body("urn:oid:1.2.36.146.595.217.0.1"), enrolled)
	if err == nil || !strings.Contains(err.Error(), "is not one a study names for its subject ids") {
		t.Errorf("an MRN system mapped: %v", err)
	}
	other := func(string, Placement) Placement { return Placement{StudyID: "CAR-200", SiteID: "SITE-001"} }
	if _, err := mp.Map(body("https://onc301.example.org/subject-id"), other); err == nil || !strings.Contains(err.Error(), "another study's identifier system") {
		t.Errorf("a subject of ONC-301's system placed in CAR-200 mapped: %v", err)
	}
}
