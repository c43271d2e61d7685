package loadgen

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/eprostream/eprostream/codecs"
)

// trialConfig gives about 20k records.
func trialConfig() Config {
	return Config{Seed: 42, Studies: 2, SitesPerStudy: 4, SubjectsPerSite: 25, Days: 30, FHIRShare: 0.1}
}

func drain(t testing.TB, cfg Config) ([]Record, *Generator) {
	t.Helper()
	g, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	var recs []Record
	for {
		rec, ok := g.Next()
		if !ok {
			return recs, g
		}
		recs = append(recs, rec)
	}
}

func TestSameConfigSameRecords(t *testing.T) {
	cfg := Config{Seed: 7, Studies: 1, SitesPerStudy: 3, SubjectsPerSite: 10, Days: 10, FHIRShare: 0.3}
	a, _ := drain(t, cfg)
	b, _ := drain(t, cfg)
	if len(a) != len(b) {
		t.Fatalf("lengths differ: %d and %d", len(a), len(b))
	}
	for i := range a {
		if a[i].Key != b[i].Key || !bytes.Equal(a[i].Value, b[i].Value) || a[i].Kind != b[i].Kind ||
			a[i].MessageID != b[i].MessageID || !a[i].SubmittedAt.Equal(b[i].SubmittedAt) || a[i].Abnormal != b[i].Abnormal {
			t.Fatalf("record %d differs:\n%s\n%s", i, a[i].Value, b[i].Value)
		}
	}
	cfg.Seed = 8
	c, _ := drain(t, cfg)
	if len(c) == len(a) && bytes.Equal(c[len(c)/2].Value, a[len(a)/2].Value) {
		t.Error("another seed gave the same records")
	}
}

func TestRatesAndCounts(t *testing.T) {
	recs, g := drain(t, trialConfig())
	if len(recs) != g.Planned() {
		t.Errorf("got %d records, Planned says %d", len(recs), g.Planned())
	}
	if len(recs) < 18_000 || len(recs) > 22_000 {
		t.Errorf("got %d records, want about 20k", len(recs))
	}
	kinds := map[Kind]int{}
	var abnormal, fhir int
	for _, r := range recs {
		kinds[r.Kind]++
		if r.Kind == Valid && r.Abnormal {
			abnormal++
		}
		if r.Kind == Valid && laterReading(r) {
			kinds[Valid]-- // counted per report: a vitals Bundle is one report
		} else if r.Kind == Valid && r.Submission.Source == "fhir" {
			fhir++
		}
	}
	n, valid := float64(len(recs)), float64(kinds[Valid])
	checkShare(t, "duplicates", float64(kinds[Duplicate])/n, 0.02, 0.002)
	checkShare(t, "malformed", float64(kinds[Malformed])/n, 0.01, 0.002)
	checkShare(t, "abnormal", float64(abnormal)/valid, 0.05, 0.012)
	checkShare(t, "FHIR", float64(fhir)/valid, 0.1, 0.01)
}

// laterReading reports whether r is an Observation of a vitals Bundle after
// its first (message ids <report>-2, …).
func laterReading(r Record) bool {
	return r.Submission.Origin() == codecs.FormatFHIR && r.Submission.Instrument == "VITALS" && !strings.HasSuffix(r.MessageID, "-1") &&
		bytes.Contains(r.FHIR, []byte(`"resourceType":"Observation"`))
}

func checkShare(t *testing.T, what string, got, want, tol float64) {
	t.Helper()
	if math.Abs(got-want) > tol {
		t.Errorf("%s: share %.4f, want %.3f ± %.3f", what, got, want, tol)
	} else {
		t.Logf("%s: share %.4f", what, got)
	}
}

func TestValidRecordsDecode(t *testing.T) {
	recs, _ := drain(t, trialConfig())
	ids := map[string]bool{}
	instruments := map[string]int{}
	units := map[string]int{}
	var last time.Time
	for i, r := range recs {
		if r.SubmittedAt.Before(last) {
			t.Fatalf("record %d: SubmittedAt %s before the previous record's %s", i, r.SubmittedAt, last)
		}
		last = r.SubmittedAt
		if r.Kind != Valid {
			continue
		}
		got, err := codecs.DecodeSubmission(r.Value, r.SubmittedAt.Add(time.Minute))
		if err != nil {
			t.Fatalf("record %d does not decode: %v\n%s", i, err, r.Value)
		}
		want := *r.Submission
		if got.Origin() != want.Origin() {
			t.Fatalf("record %d: origin %s, want %s", i, got.Origin(), want.Origin())
		}
		// A FHIR report is sent as its mapped envelope: native, with the
		// resource type and status in Extra.
		got.Extra, want.Extra, want.Format = nil, nil, got.Format
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("record %d decodes to\n%+v\nwant\n%+v", i, got, want)
		}
		if r.Key != got.SubjectID || r.MessageID != got.MessageID || len(r.MessageID) > codecs.MaxIDLen {
			t.Fatalf("record %d: key %q, message id %q, envelope %+v", i, r.Key, r.MessageID, got)
		}
		if ids[r.MessageID] {
			t.Fatalf("record %d: message id %s used twice", i, r.MessageID)
		}
		ids[r.MessageID] = true
		if at, _ := codecs.ParseTime(got.SubmittedAt); !at.Equal(r.SubmittedAt) || at.Format(time.RFC3339) != got.SubmittedAt {
			t.Fatalf("record %d: SubmittedAt %s, envelope %s", i, r.SubmittedAt, got.SubmittedAt)
		}
		instruments[got.Instrument]++
		for _, it := range got.Items {
			units[it.Unit]++
			checkItemInRange(t, i, it)
		}
	}
	for _, name := range instrumentNames {
		if instruments[name] == 0 {
			t.Errorf("no %s report", name)
		}
	}
	for _, u := range []string{unitCelsius, unitFahrenheit, unitKilogram, unitPound} {
		if units[u] == 0 {
			t.Errorf("no item in unit %s", u)
		}
	}
	t.Logf("instruments %v, units %v", instruments, units)
}

// itemRange is the valid range of a known item in the unit loadgen sends.
func itemRange(it codecs.Item) (lo, hi float64, integer bool) {
	switch {
	case it.Code == "PAIN_NRS":
		return 0, 10, true
	case strings.HasPrefix(it.Code, "PHQ9_"):
		return 0, 3, true
	case it.Code == "BODY_TEMPERATURE" && it.Unit == unitFahrenheit:
		return 77, 113, false
	case it.Code == "BODY_TEMPERATURE":
		return 25, 45, false
	case it.Code == "BODY_WEIGHT" && it.Unit == unitPound:
		return 2, 1100, false
	case it.Code == "BODY_WEIGHT":
		return 1, 500, false
	case it.Code == "NOTES":
		return 0, 0, false
	}
	return 0, 4, true // PRO-CTCAE
}

func inRange(it codecs.Item) bool {
	lo, hi, integer := itemRange(it)
	if it.Code == "NOTES" {
		return it.Value.Kind == codecs.KindText
	}
	v := it.Value.Num
	return it.Value.Kind == codecs.KindNumber && v >= lo && v <= hi && (!integer || v == math.Trunc(v))
}

func checkItemInRange(t *testing.T, i int, it codecs.Item) {
	t.Helper()
	if !inRange(it) {
		t.Fatalf("record %d: item %s = %+v (unit %q) is out of range", i, it.Code, it.Value, it.Unit)
	}
}

func TestPerSubjectTimeAndSchedule(t *testing.T) {
	cfg := trialConfig()
	cfg.SetDefaults()
	recs, _ := drain(t, cfg)
	lastAt := map[string]time.Time{}
	days := map[string]map[int]bool{}
	for i, r := range recs {
		if r.Kind != Valid {
			continue
		}
		at, _ := codecs.ParseTime(r.Submission.SubmittedAt)
		if laterReading(r) {
			continue // the second Observation of a vitals Bundle: read with the first
		}
		if prev, ok := lastAt[r.Key]; ok && !at.After(prev) {
			t.Fatalf("record %d: %s at %s, not after its previous report at %s", i, r.Key, at, prev)
		}
		lastAt[r.Key] = at
		if h := at.Hour(); h < 7 || h >= 22 {
			t.Fatalf("record %d: submitted at %s, outside 07:00-22:00 local", i, r.Submission.SubmittedAt)
		}
		if days[r.Key] == nil {
			days[r.Key] = map[int]bool{}
		}
		local := time.Date(at.Year(), at.Month(), at.Day(), 0, 0, 0, 0, time.UTC)
		days[r.Key][int(local.Sub(cfg.Start.UTC())/(24*time.Hour))] = true
	}
	var dropouts, skips int
	for subj, d := range days {
		last := -1
		for day := range cfg.Days {
			if d[day] {
				if day-last > 2 {
					t.Errorf("%s: silent for %d days in a row before day %d", subj, day-last-1, day)
				}
				if day-last == 2 {
					skips++
				}
				last = day
			}
		}
		if last < cfg.Days-4 {
			dropouts++
		}
	}
	t.Logf("%d subjects, %d dropped out, %d single skipped days", len(days), dropouts, skips)
	if dropouts == 0 || dropouts > len(days)/10 || skips == 0 {
		t.Errorf("%d dropouts and %d skipped days among %d subjects", dropouts, skips, len(days))
	}
}

func TestDuplicatesRepeatEarlierRecords(t *testing.T) {
	recs, _ := drain(t, trialConfig())
	sent := map[string]Record{}
	for i, r := range recs {
		switch r.Kind {
		case Valid:
			sent[r.MessageID] = r
		case Duplicate:
			orig, ok := sent[r.MessageID]
			if !ok || !bytes.Equal(orig.Value, r.Value) || orig.Key != r.Key || r.Abnormal {
				t.Fatalf("record %d: duplicate %s does not repeat an earlier record", i, r.MessageID)
			}
			if r.SubmittedAt.Before(orig.SubmittedAt) {
				t.Fatalf("record %d: duplicate sent before its original", i)
			}
		}
	}
}

func TestMalformedRecordsAreRejected(t *testing.T) {
	recs, g := drain(t, trialConfig())
	subjects := map[string]bool{}
	for _, s := range g.subjects {
		subjects[s.id] = true
	}
	var notJSON, invalid, outOfRange int
	for i, r := range recs {
		if r.Kind != Malformed {
			continue
		}
		if r.MessageID != "" || r.Submission != nil || !subjects[r.Key] || r.Abnormal {
			t.Fatalf("record %d: malformed record with key %q, id %q, submission %v", i, r.Key, r.MessageID, r.Submission)
		}
		sub, err := codecs.DecodeSubmission(r.Value, r.SubmittedAt.Add(time.Minute))
		var fe codecs.FieldErrors
		switch {
		case errors.Is(err, codecs.ErrNotJSON):
			notJSON++
		case errors.As(err, &fe):
			invalid++
		case err != nil:
			t.Fatalf("record %d: unexpected error %v", i, err)
		case !hasOutOfRange(sub):
			t.Fatalf("record %d: malformed record decodes with every item in range:\n%s", i, r.Value)
		default:
			outOfRange++
		}
	}
	t.Logf("malformed: %d not JSON, %d invalid, %d out of range", notJSON, invalid, outOfRange)
	if notJSON == 0 || invalid == 0 || outOfRange == 0 {
		t.Error("want every way of being malformed")
	}
}

func hasOutOfRange(sub codecs.Submission) bool {
	for _, it := range sub.Items {
		if !inRange(it) {
			return true
		}
	}
	return false
}

func BenchmarkNext(b *testing.B) {
	cfg := trialConfig()
	g, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := g.Next(); !ok {
			if g, err = New(cfg); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func TestNativeEncodingMatchesEncodingJSON(t *testing.T) {
	recs, _ := drain(t, trialConfig())
	for i, r := range recs {
		if r.Kind != Valid || r.Submission.Source == "fhir" {
			continue
		}
		want, err := json.Marshal(r.Submission)
		if err != nil || !bytes.Equal(r.Value, want) {
			t.Fatalf("record %d:\n got %s\nwant %s (%v)", i, r.Value, want, err)
		}
	}
	sub := &codecs.Submission{MessageID: "m", SubjectID: "s<&>", Instrument: "DIARY", Items: []codecs.Item{
		{Code: "NOTES", Value: codecs.Text("a \"quote\", a\ttab, a \\, </script>, café, \u2028, \x01")},
		{Code: "X", Value: codecs.Number(1e21)}, {Code: "Y", Value: codecs.Value{Kind: codecs.KindBool, Bool: true}},
		{Code: "Z"}, {Code: "W", Value: codecs.Number(-0.000001), Unit: "kg"},
	}}
	for _, s := range []*codecs.Submission{sub, {MessageID: "empty"}} {
		want, _ := json.Marshal(s)
		if got := marshalNative(s); !bytes.Equal(got, want) {
			t.Errorf("\n got %s\nwant %s", got, want)
		}
	}
}

// A trial cut at End sends nothing dated at or after it, still sends the
// last day up to End, and Planned counts exactly what it sends.
func TestEndCutsTheTrial(t *testing.T) {
	full, _ := drain(t, trialConfig())
	cfg := trialConfig()
	cfg.SetDefaults()
	lastDay := cfg.Start.AddDate(0, 0, cfg.Days-1)
	cfg.End = lastDay.Add(13 * time.Hour)
	cut, g := drain(t, cfg)
	if len(cut) != g.Planned() {
		t.Fatalf("got %d records, Planned says %d", len(cut), g.Planned())
	}
	onLastDay := 0
	for _, r := range cut {
		if !r.SubmittedAt.IsZero() && !r.SubmittedAt.Before(cfg.End) {
			t.Fatalf("record %s dated %s, at or after End %s", r.MessageID, r.SubmittedAt, cfg.End)
		}
		if !r.SubmittedAt.Before(lastDay) {
			onLastDay++
		}
	}
	if onLastDay == 0 || len(cut) >= len(full) {
		t.Fatalf("%d records on the last day, %d records cut vs %d whole: the cut did not happen where it should", onLastDay, len(cut), len(full))
	}
}
