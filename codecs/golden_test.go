package codecs

import (
	"bytes"
	"encoding/json"
	"os"
	"reflect"
	"testing"
)

// goldenState is the state testdata/subject_state_v1.json was written
// from, by this build's first wire version.
func goldenState() SubjectState {
	st := SubjectState{V: 1, StudyID: "ONC-301", SiteID: "SITE-012", SubjectID: "ONC-301-012-0042", Reports: 4,
		FirstAt: 1761987600, LastAt: 1762246800,
		Items: map[string]*ItemHistory{
			"PAIN_SEVERITY": {BaseN: 3, BaseSum: 3, Recent: []Point{{T: 1762160400, V: 1}, {T: 1762246800, V: 4}}},
			"BODY_TEMP":     {BaseN: 1, BaseSum: 37.2, Recent: []Point{{T: 1762246800, V: 38.4}}},
		},
		Open: map[string]OpenCondition{"severe_symptom/PAIN_SEVERITY": {Severity: "urgent", Since: 1762246800, AlertID: "al-1"}},
		Plan: json.RawMessage(`{"drug":"x","dose_mg":50}`), Fence: 7,
		Acked: []string{"al-0"},
		Outbox: []OutboxAlert{{From: "m-4", Alert: Alert{V: 1, AlertID: "al-1", RuleID: "severe_symptom", RuleVersion: 1,
			Severity: "urgent", StudyID: "ONC-301", SiteID: "SITE-012", SubjectID: "ONC-301-012-0042", MessageID: "m-4"}}},
	}
	for _, id := range []string{"m-1", "m-2", "m-3", "m-4"} {
		st.MarkApplied(id)
	}
	return st
}

// Every wire version written before still decodes: the file is what v1
// wrote, kept as it was.
func TestGoldenSubjectStateV1Decodes(t *testing.T) {
	b, err := os.ReadFile("testdata/subject_state_v1.json")
	if err != nil {
		t.Fatal(err)
	}
	v, err := StateCodec{}.Decode(bytes.TrimSpace(b))
	if err != nil {
		t.Fatal(err)
	}
	got, ok := v.(SubjectState)
	if !ok {
		t.Fatalf("decoded %T (%v), want a SubjectState", v, v)
	}
	want := goldenState()
	want.Sums = nil // the file was written before content sums were kept
	if !reflect.DeepEqual(normalisedState(t, got), normalisedState(t, want)) {
		t.Fatalf("golden v1 decodes to\n%+v\nwant\n%+v", got, want)
	}
	for _, id := range []string{"m-1", "m-4"} {
		if !got.HasApplied(id) {
			t.Fatalf("golden v1 forgot applied id %s", id)
		}
	}
}

func normalisedState(t *testing.T, s SubjectState) string {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
