package rules

import (
	"strings"
	"testing"
	"time"

	"github.com/eprostream/eprostream/codecs"
)

var t0 = time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)

type report struct {
	day        float64 // days after t0
	instrument string
	values     map[string]float64
}

func clean(i int, r report) codecs.CleanSubmission {
	c := codecs.CleanSubmission{
		V: 1, MessageID: "m" + string(rune('a'+i%26)) + strings.Repeat("x", i/26), StudyID: "S", SiteID: "SITE-1",
		SubjectID: "S-1", Instrument: r.instrument, SubmittedAt: t0.Add(time.Duration(r.day * 24 * float64(time.Hour))),
	}
	for code, v := range r.values {
		if code == "PHQ9_TOTAL" {
			c.Scores = map[string]float64{code: v}
			continue
		}
		c.Items = append(c.Items, codecs.CleanItem{Code: code, Num: &v})
	}
	return c
}

// run applies reports in order and returns, per report, the "rule/severity" of its alerts.
func run(t *testing.T, reports ...report) [][]string {
	t.Helper()
	set := Default()
	var st codecs.SubjectState
	out := make([][]string, len(reports))
	for i, r := range reports {
		for _, a := range set.Apply(&st, clean(i, r), t0) {
			out[i] = append(out[i], a.RuleID+"/"+a.Severity)
		}
	}
	return out
}

func ctcae(day float64, code string, v float64) report {
	return report{day, "PRO-CTCAE", map[string]float64{code: v}}
}

func want(t *testing.T, got [][]string, expect ...string) {
	t.Helper()
	for i, e := range expect {
		g := strings.Join(got[i], ",")
		if g != e {
			t.Errorf("report %d: alerts %q, want %q (all: %v)", i, g, e, got)
		}
	}
}

func TestDefaultSetIsValid(t *testing.T) {
	if s := Default(); s.Version != 1 || len(s.Rules) != 8 {
		t.Fatalf("default set: version %d, %d rules", s.Version, len(s.Rules))
	}
}

func TestSevereSymptom(t *testing.T) {
	got := run(t,
		ctcae(0, "PAIN_SEVERITY", 2),        // below
		ctcae(1, "PAIN_SEVERITY", 3),        // warning
		ctcae(2, "PAIN_SEVERITY", 3),        // persists: no re-alert
		ctcae(3, "PAIN_SEVERITY", 4),        // escalates: urgent
		ctcae(4, "PAIN_SEVERITY", 4),        // persists
		ctcae(5, "PAIN_SEVERITY", 2),        // clears: re-arm
		ctcae(6, "PAIN_SEVERITY", 3),        // warning again
		ctcae(7, "NAUSEA_FREQUENCY", 4),     // frequency is not severity
		ctcae(8, "FATIGUE_INTERFERENCE", 4), // interference counts
	)
	want(t, got, "", "severe-symptom/warning", "", "severe-symptom/urgent", "", "", "severe-symptom/warning", "",
		"severe-symptom/urgent")
}

func TestWorseningNeedsThreeBaselineReports(t *testing.T) {
	got := run(t,
		ctcae(0, "NAUSEA_FREQUENCY", 0),
		ctcae(1, "NAUSEA_FREQUENCY", 3), // only 1 baseline report: no judgement
		ctcae(2, "NAUSEA_FREQUENCY", 0), // baseline = (0+3+0)/3 = 1
		ctcae(3, "NAUSEA_FREQUENCY", 2), // 1 above: no
		ctcae(4, "NAUSEA_FREQUENCY", 3), // 2 above: warning
		ctcae(5, "NAUSEA_FREQUENCY", 3), // persists
		ctcae(6, "NAUSEA_FREQUENCY", 1), // clears
		ctcae(7, "NAUSEA_FREQUENCY", 3), // again
	)
	want(t, got, "", "", "", "", "worsening/warning", "", "", "worsening/warning")
}

func TestWorseningUsesMeanOfFirstThree(t *testing.T) {
	got := run(t,
		ctcae(0, "FATIGUE_SEVERITY", 1), ctcae(1, "FATIGUE_SEVERITY", 1), ctcae(2, "FATIGUE_SEVERITY", 2),
		ctcae(3, "FATIGUE_SEVERITY", 3), // mean 4/3, +2 = 3.33: 3 is below
		ctcae(4, "FATIGUE_SEVERITY", 4), // above; also severe urgent
	)
	want(t, got, "", "", "", "severe-symptom/warning", "severe-symptom/urgent,worsening/warning")
}

func TestPHQ9(t *testing.T) {
	phq := func(day, item9, total float64) report {
		return report{day, "PHQ-9", map[string]float64{"PHQ9_9": item9, "PHQ9_TOTAL": total}}
	}
	got := run(t, phq(0, 0, 19), phq(7, 1, 20), phq(14, 0, 19), phq(21, 0, 27))
	want(t, got, "", "phq9-self-harm/urgent,phq9-total/warning", "", "phq9-total/warning")
}

func TestPainStreak(t *testing.T) {
	pain := func(day, v float64) report { return report{day, "NRS-PAIN", map[string]float64{"PAIN_NRS": v}} }
	got := run(t, pain(0, 7), pain(1, 6.9), pain(2, 7), pain(3, 7), pain(4, 10), pain(5, 3), pain(6, 8), pain(7, 8))
	want(t, got, "", "", "", "pain-streak/warning", "", "", "", "pain-streak/warning")
}

func TestFeverAtThreshold(t *testing.T) {
	temp := func(day, v float64) report { return report{day, "VITALS", map[string]float64{"BODY_TEMPERATURE": v}} }
	got := run(t, temp(0, 37.99), temp(1, 38.0), temp(2, 39), temp(3, 37), temp(4, 38.5))
	want(t, got, "", "fever/warning", "", "", "fever/warning")
}

func TestWeightGainWithinThreeDays(t *testing.T) {
	w := func(day, v float64) report { return report{day, "VITALS", map[string]float64{"BODY_WEIGHT": v}} }
	got := run(t,
		w(0, 70), w(1, 71), w(2, 71.99), // +1.99 in 2 days: no
		w(3, 72.0),  // 72.0 - 70 (exactly 3 days earlier) = 2.0: warning
		w(4, 72.5),  // persists
		w(5, 71),    // lowest within 3 days is 71.99? no: 71.99 (day 2), 72, 72.5 -> 71 is below: clears
		w(9, 73.5),  // lowest within 3 days: none (day 5 is 4 days ago): no judgement
		w(10, 75.5), // 75.5 - 73.5 = 2: warning
	)
	want(t, got, "", "", "", "weight-gain/warning", "", "", "", "weight-gain/warning")
}

func TestMissedDiary(t *testing.T) {
	set := Default()
	var st codecs.SubjectState
	set.Apply(&st, clean(0, ctcae(0, "PAIN_SEVERITY", 0)), t0)
	check := func(days float64) string {
		var s []string
		for _, a := range set.CheckSchedule(&st, t0.Add(time.Duration(days*24*float64(time.Hour))), t0) {
			s = append(s, a.RuleID+"/"+a.Severity)
		}
		return strings.Join(s, ",")
	}
	steps := []struct {
		days float64
		want string
	}{
		{2.9, ""}, {3.0, ""}, {3.01, "missed-diary/info"}, {4, ""}, {5.01, "missed-diary/warning"}, {6, ""},
	}
	for _, s := range steps {
		if got := check(s.days); got != s.want {
			t.Errorf("after %.2f days: %q, want %q", s.days, got, s.want)
		}
	}
	set.Apply(&st, clean(1, ctcae(7, "PAIN_SEVERITY", 0)), t0) // a report re-arms
	if got := check(10.5); got != "missed-diary/info" {
		t.Errorf("after a new report and 3.5 days: %q", got)
	}
}

func TestMissedDiaryIgnoresSubjectsWithoutReports(t *testing.T) {
	var st codecs.SubjectState
	if a := Default().CheckSchedule(&st, t0, t0); len(a) != 0 {
		t.Fatalf("alerts for a subject that never reported: %v", a)
	}
}

func TestAlertIDsAreDeterministic(t *testing.T) {
	a := run(t, ctcae(0, "PAIN_SEVERITY", 4))
	set := Default()
	var s1, s2 codecs.SubjectState
	x := set.Apply(&s1, clean(0, ctcae(0, "PAIN_SEVERITY", 4)), t0)
	y := set.Apply(&s2, clean(0, ctcae(0, "PAIN_SEVERITY", 4)), t0.Add(time.Hour))
	if len(a[0]) != 1 || x[0].AlertID != y[0].AlertID || x[0].AlertID == "" {
		t.Fatalf("ids differ: %v %v", x, y)
	}
}

func TestParseRejectsBadSets(t *testing.T) {
	cases := map[string]string{
		"unknown field":           "study: X\nversion: 1\nrules:\n  - id: a\n    kind: threshold\n    itemz: [A]\n",
		"unknown kind":            "study: X\nversion: 1\nrules:\n  - id: a\n    kind: magic\n",
		"bad severity":            "study: X\nversion: 1\nrules:\n  - id: a\n    kind: threshold\n    items: [A]\n    levels: [{at_least: 1, severity: loud}]\n",
		"no version":              "study: X\nrules: []\n",
		"duplicate id":            "study: X\nversion: 1\nrules:\n  - {id: a, kind: missed, after: 1h, severity: info}\n  - {id: a, kind: missed, after: 1h, severity: info}\n",
		"both at_least and above": "study: X\nversion: 1\nrules:\n  - id: a\n    kind: threshold\n    items: [A]\n    levels: [{at_least: 1, above: 1, severity: info}]\n",
		"bad duration":            "study: X\nversion: 1\nrules:\n  - {id: a, kind: missed, after: soon, severity: info}\n",
	}
	for name, y := range cases {
		if _, err := Parse([]byte(y)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestRegistryFallsBackToDefault(t *testing.T) {
	s, err := Parse([]byte("study: ONC-301\nversion: 2\nrules:\n  - {id: fever, kind: threshold, items: [BODY_TEMPERATURE], levels: [{at_least: 37.5, severity: warning}]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	r := NewRegistry(s)
	if r.For("ONC-301").Version != 2 || r.For("other").Study != "default" {
		t.Fatal("registry lookup")
	}
}

func BenchmarkApply(b *testing.B) {
	set := Default()
	c := clean(0, report{0, "PRO-CTCAE", map[string]float64{"PAIN_SEVERITY": 1, "PAIN_INTERFERENCE": 1,
		"NAUSEA_FREQUENCY": 0, "NAUSEA_SEVERITY": 0, "FATIGUE_SEVERITY": 2, "FATIGUE_INTERFERENCE": 1}})
	var st codecs.SubjectState
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		c.SubmittedAt = t0.Add(time.Duration(i) * time.Hour)
		set.Apply(&st, c, t0)
	}
}

// The chart's lines are the default set's alert levels: fever at 38.0 °C,
// both severe-symptom levels, and worsening only once a baseline is known.
func TestLinesOfTheDefaultSet(t *testing.T) {
	s := Default()
	fever := s.Lines("BODY_TEMPERATURE", nil)
	if len(fever) != 1 || fever[0].RuleID != "fever" || fever[0].Value != 38.0 || fever[0].Unit != "Cel" || fever[0].Severity != codecs.SeverityWarning {
		t.Fatalf("fever lines %+v", fever)
	}
	if l := s.Lines("PAIN_SEVERITY", nil); len(l) != 2 || l[0].Value != 3 || l[1].Value != 4 || l[1].Severity != codecs.SeverityUrgent {
		t.Fatalf("severe-symptom lines without a baseline %+v", l)
	}
	if l := s.Lines("PAIN_SEVERITY", &codecs.ItemHistory{BaseN: 2, BaseSum: 3}); len(l) != 2 {
		t.Fatalf("worsening drawn before its 3 baseline reports: %+v", l)
	}
	l := s.Lines("PAIN_SEVERITY", &codecs.ItemHistory{BaseN: 3, BaseSum: 4.5})
	if len(l) != 3 || l[2].RuleID != "worsening" || l[2].Value != 3.5 {
		t.Fatalf("lines with a baseline %+v", l)
	}
	if l := s.Lines("PHQ9_9", nil); len(l) != 1 || !l[0].Above || l[0].Value != 0 {
		t.Fatalf("PHQ9_9 lines %+v", l)
	}
	if l := s.Lines("BODY_WEIGHT", nil); len(l) != 0 {
		t.Fatalf("weight gain has no fixed level, got %+v", l)
	}
}
