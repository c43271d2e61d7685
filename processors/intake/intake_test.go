package intake_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/eprostream/eprostream/catalog"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/tester"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/internal/kafka/topics"
	"github.com/eprostream/eprostream/processors/intake"
	"github.com/eprostream/eprostream/processors/internal/dlq"
)

var received = time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)

func envelope(id, items string) string {
	return fmt.Sprintf(`{"message_id":%q,"study_id":"ONC-301","site_id":"SITE-012","subject_id":"ONC-301-012-0042",
	"instrument":"%s","instrument_version":"1.0","submitted_at":"2026-11-20T08:15:00+01:00","source":"app",
	"items":[%s],"x_app_build":"4.2"}`, id, instrumentOf(items), items)
}

func instrumentOf(items string) string {
	switch {
	case strings.Contains(items, "PHQ9"):
		return "PHQ-9"
	case strings.Contains(items, "PAIN_NRS"):
		return "NRS-PAIN"
	case strings.Contains(items, "NOTES"):
		return "DIARY"
	case strings.Contains(items, "BODY_"):
		return "VITALS"
	default:
		return "PRO-CTCAE"
	}
}

type harness struct {
	tt          *tester.Tester
	clean, dead *tester.QueueTracker
	names       topics.Names
}

func newHarness(t *testing.T) *harness {
	tt := tester.New(t)
	names := topics.NewNames("")
	p, err := intake.New(intake.Config{Names: names}, intake.Deps{Log: slog.New(slog.NewTextHandler(io.Discard, nil))}, goka.WithTester(tt))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return &harness{tt: tt, clean: tt.NewQueueTracker(names.Clean), dead: tt.NewQueueTracker(names.DLQ), names: names}
}

func (h *harness) send(key, body string) {
	h.tt.Consume(h.names.Submissions, key, []byte(body), tester.WithTime(received))
}

func TestValidSubmissionIsCleaned(t *testing.T) {
	h := newHarness(t)
	h.send("wrong-key", envelope("m1", `{"code":"pain_severity","value":3},{"code":"nausea_frequency","value":true}`))
	key, v, ok := h.clean.Next()
	if !ok {
		t.Fatal("nothing on epro-clean")
	}
	c := v.(codecs.CleanSubmission)
	if key != "ONC-301-012-0042" {
		t.Errorf("key %q: intake must re-key by subject_id", key)
	}
	if !c.SubmittedAt.Equal(time.Date(2026, 11, 20, 7, 15, 0, 0, time.UTC)) || c.SubmittedAt.Location() != time.UTC || c.OffsetSeconds != 3600 {
		t.Errorf("time %v offset %d", c.SubmittedAt, c.OffsetSeconds)
	}
	if c.Items[0].Code != "PAIN_SEVERITY" || *c.Items[0].Num != 3 || c.Items[1].Code != "NAUSEA_FREQUENCY" || *c.Items[1].Num != 1 {
		t.Errorf("items %+v", c.Items)
	}
	if string(c.Extra["x_app_build"]) != `"4.2"` || c.Format != "native" || !c.ReceivedAt.Equal(received) {
		t.Errorf("extra %v format %s received %v", c.Extra, c.Format, c.ReceivedAt)
	}
	if _, _, ok := h.dead.Next(); ok {
		t.Error("unexpected DLQ record")
	}
	h.send("diary", envelope("m1-diary", `{"code":"NOTES","value":"slept badly"}`))
	if _, v, ok := h.clean.Next(); !ok || v.(codecs.CleanSubmission).Items[0].Text != "slept badly" {
		t.Errorf("a diary's free text is not kept: %v %v", v, ok)
	}
}

func TestUnitsAreConvertedAndScoresAdded(t *testing.T) {
	h := newHarness(t)
	h.send("k", envelope("m2", `{"code":"BODY_TEMPERATURE","value":100.4,"unit":"[degF]"},{"code":"BODY_WEIGHT","value":154,"unit":"[lb_av]"}`))
	_, v, _ := h.clean.Next()
	c := v.(codecs.CleanSubmission)
	if got := c.Values(); got["BODY_TEMPERATURE"] != 38 || got["BODY_WEIGHT"] != 69.853 || c.Items[0].Unit != "Cel" || c.Items[1].Unit != "kg" {
		t.Errorf("converted %v, items %+v", got, c.Items)
	}
	var phq []string
	for i := 1; i <= 9; i++ {
		phq = append(phq, fmt.Sprintf(`{"code":"PHQ9_%d","value":%d}`, i, i%4))
	}
	h.send("k", envelope("m3", strings.Join(phq, ",")))
	_, v, _ = h.clean.Next()
	if total := v.(codecs.CleanSubmission).Scores["PHQ9_TOTAL"]; total != 13 {
		t.Errorf("PHQ-9 total %v, want 13", total)
	}
}

func TestBadSubmissionsGoToDLQWithReason(t *testing.T) {
	cases := []struct {
		name, body, class, reason string
	}{
		{"not JSON", `{"message_id":`, dlq.ClassDecode, "not a JSON object"},
		{"missing subject", strings.Replace(envelope("m4", `{"code":"PAIN_SEVERITY","value":1}`), `"subject_id":"ONC-301-012-0042",`, "", 1), dlq.ClassValidate, "subject_id: is required"},
		{"out of range", envelope("m5", `{"code":"PAIN_SEVERITY","value":9}`), dlq.ClassValidate, "PAIN_SEVERITY must be a whole number from 0 to 4"},
		{"text for a score", envelope("m6", `{"code":"PAIN_NRS","value":"a lot"}`), dlq.ClassValidate, "PAIN_NRS must be a whole number from 0 to 10, not text"},
		{"unknown unit", envelope("m7", `{"code":"BODY_WEIGHT","value":10,"unit":"stone"}`), dlq.ClassValidate, "cannot be converted to kg"},
		{"bad utf-8", "\xff\xfe", dlq.ClassValidate, "UTF-8"},
		{"invented item", envelope("m8", `{"code":"X1_SEVERITY","value":4}`), dlq.ClassValidate, `items[0].code: "X1_SEVERITY" is not an item of PRO-CTCAE`},
		{"unknown instrument", strings.Replace(envelope("m9", `{"code":"PAIN_SEVERITY","value":1}`), `"instrument":"PRO-CTCAE"`, `"instrument":"EQ-5D-5L"`, 1), dlq.ClassValidate, `"EQ-5D-5L" is not an instrument eprostream knows`},
	}
	h := newHarness(t)
	for i, tc := range cases {
		h.send(fmt.Sprintf("key-%d", i), tc.body)
		hdr, key, raw, ok := h.dead.NextRawWithHeaders()
		if !ok {
			t.Fatalf("%s: nothing on the DLQ", tc.name)
		}
		if key != fmt.Sprintf("key-%d", i) || string(raw) != tc.body {
			t.Errorf("%s: DLQ record must keep the original key and bytes", tc.name)
		}
		if string(hdr[dlq.HeaderClass]) != tc.class || !strings.Contains(string(hdr[dlq.HeaderReason]), tc.reason) {
			t.Errorf("%s: class %q reason %q; want %q containing %q", tc.name, hdr[dlq.HeaderClass], hdr[dlq.HeaderReason], tc.class, tc.reason)
		}
		if string(hdr[dlq.HeaderTopic]) != h.names.Submissions || string(hdr[dlq.HeaderGroup]) != "intake" || len(hdr[dlq.HeaderOffset]) == 0 {
			t.Errorf("%s: source headers %v", tc.name, hdr)
		}
		if strings.Contains(string(hdr[dlq.HeaderReason]), "a lot") {
			t.Errorf("%s: reason quotes the patient's answer", tc.name)
		}
	}
	if _, _, ok := h.clean.Next(); ok {
		t.Error("a bad submission reached epro-clean")
	}
}

func TestEmptyRecordGoesToDLQ(t *testing.T) {
	tt := tester.New(t)
	names := topics.NewNames("")
	p, err := intake.New(intake.Config{Names: names}, intake.Deps{Log: slog.New(slog.NewTextHandler(io.Discard, nil))},
		goka.WithTester(tt), goka.WithNilHandling(goka.NilProcess))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() { cancel(); <-done }()
	dead := tt.NewQueueTracker(names.DLQ)
	tt.Consume(names.Submissions, "k", nil)
	if hdr, key, _, ok := dead.NextRawWithHeaders(); !ok || key != "k" || string(hdr[dlq.HeaderClass]) != dlq.ClassDecode {
		t.Fatalf("empty record: %v %q %q", ok, key, hdr[dlq.HeaderReason])
	}
}

func BenchmarkClean(b *testing.B) {
	native := []byte(envelope("m1", `{"code":"PAIN_SEVERITY","value":3},{"code":"PAIN_INTERFERENCE","value":2},{"code":"NAUSEA_FREQUENCY","value":1},{"code":"NAUSEA_SEVERITY","value":1},{"code":"FATIGUE_SEVERITY","value":2},{"code":"FATIGUE_INTERFERENCE","value":1},{"code":"DIARRHEA_FREQUENCY","value":0}`))
	open, _ := catalog.Load("") // every study, the built-in instruments
	b.ReportAllocs()
	for b.Loop() {
		if _, err := intake.Clean(open, native, received); err != nil {
			b.Fatal(err)
		}
	}
}

// Metrics are registered in New: a second group on the same registry is an
// error there, not a panic, and a group without topic names is refused.
func TestNewReportsConstructionErrors(t *testing.T) {
	reg := prometheus.NewRegistry()
	names := topics.NewNames("")
	if _, err := intake.New(intake.Config{Names: names}, intake.Deps{Registry: reg}, goka.WithTester(tester.New(t))); err != nil {
		t.Fatal(err)
	}
	if _, err := intake.New(intake.Config{Names: names}, intake.Deps{Registry: reg}, goka.WithTester(tester.New(t))); err == nil {
		t.Fatal("second New on the same registry succeeded")
	}
	if _, err := intake.New(intake.Config{}, intake.Deps{}, goka.WithTester(tester.New(t))); err == nil {
		t.Fatal("New without topic names succeeded")
	}
}
