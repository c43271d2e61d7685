package codecs

import (
	"errors"
	"reflect"
	"testing"
	"time"
)

func TestInternalRecordsRoundTrip(t *testing.T) {
	v := 3.0
	at := time.Date(2026, 11, 20, 7, 15, 0, 0, time.UTC)
	records := []struct {
		codec interface {
			Encode(any) ([]byte, error)
			Decode([]byte) (any, error)
		}
		value any
	}{
		{JSON[CleanSubmission]{}, CleanSubmission{V: 1, MessageID: "m", SubjectID: "s", SubmittedAt: at,
			Items: []CleanItem{{Code: "PAIN_SEVERITY", Num: &v}}, Scores: map[string]float64{"X": 1}}},
		{JSON[Alert]{}, Alert{V: 1, AlertID: "a", RuleID: "r", Severity: SeverityUrgent, RaisedAt: at, Evidence: Evidence{Values: []float64{4}}}},
		{JSON[Command]{}, Command{V: 1, CommandID: "c", Kind: CommandCheckSchedule, SubjectID: "s", At: at}},
		{JSON[SubjectState]{}, SubjectState{V: 1, SubjectID: "s", Reports: 2, Applied: AppliedIDs{1, 1 << 63},
			Items: map[string]*ItemHistory{"X": {BaseN: 1, BaseSum: 2, Recent: []Point{{T: 1, V: 2}}}}}},
	}
	for _, r := range records {
		b, err := r.codec.Encode(r.value)
		if err != nil {
			t.Fatal(err)
		}
		got, err := r.codec.Decode(b)
		if err != nil || !reflect.DeepEqual(got, r.value) {
			t.Fatalf("%T: round trip gave %+v, %v", r.value, got, err)
		}
	}
}

func TestInternalRecordsRejectUnknownVersions(t *testing.T) {
	for _, b := range []string{`{"v":2}`, `{}`, `[]`, `nope`} {
		_, err := JSON[SubjectState]{}.Decode([]byte(b))
		if !errors.Is(err, ErrUnknownVersion) && !errors.Is(err, ErrNotJSON) {
			t.Errorf("%s: %v", b, err)
		}
	}
	if _, err := (JSON[Alert]{}).Encode("a string"); err == nil {
		t.Error("encoding a wrong type must fail")
	}
}

func FuzzInternalDecoders(f *testing.F) {
	f.Add([]byte(`{"v":1,"subject":"s","items":{"X":{"bn":1,"r":[{"t":1,"v":2}]}},"applied":[1]}`))
	f.Add([]byte(`{"v":1,"kind":"plan_adjusted","plan":{"a":1}}`))
	f.Add([]byte(`{"v":1,"items":[{"code":"A","num":1e308}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = JSON[SubjectState]{}.Decode(b)
		_, _ = JSON[CleanSubmission]{}.Decode(b)
		_, _ = JSON[Alert]{}.Decode(b)
		if v, err := (JSON[Command]{}).Decode(b); err == nil {
			_ = v.(Command).Validate()
		}
	})
}
