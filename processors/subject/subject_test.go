package subject_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/tester"

	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/internal/kafka/topics"
	"github.com/eprostream/eprostream/processors/internal/dlq"
	"github.com/eprostream/eprostream/processors/subject"
)

var t0 = time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)

const subj = "ONC-301-012-0042"

type harness struct {
	tt           *tester.Tester
	alerts, dead *tester.QueueTracker
	names        topics.Names
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newHarness(t *testing.T) *harness {
	tt := tester.New(t)
	names := topics.NewNames("")
	p, err := subject.New(subject.Config{Names: names}, subject.Deps{
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now: func() time.Time { return t0 },
	}, goka.WithTester(tt))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return &harness{tt: tt, alerts: tt.NewQueueTracker(names.Alerts), dead: tt.NewQueueTracker(names.DLQ), names: names}
}

func cleanRecord(id string, day int, code string, v float64) []byte {
	c := codecs.CleanSubmission{V: 1, MessageID: id, StudyID: "ONC-301", SiteID: "SITE-012", SubjectID: subj,
		Instrument: "PRO-CTCAE", Format: "native", SubmittedAt: t0.AddDate(0, 0, day),
		Items: []codecs.CleanItem{{Code: code, Num: &v}}}
	b, _ := json.Marshal(c)
	return b
}

func commandRecord(c codecs.Command) []byte {
	c.V, c.SubjectID = 1, subj
	b, _ := json.Marshal(c)
	return b
}

func (h *harness) state() codecs.SubjectState {
	v, _ := h.tt.TableValue(goka.Table(h.names.SubjectTable), subj).(codecs.SubjectState)
	return v
}

func (h *harness) drainAlerts() []codecs.Alert {
	var out []codecs.Alert
	for {
		_, v, ok := h.alerts.Next()
		if !ok {
			return out
		}
		out = append(out, v.(codecs.Alert))
	}
}

func TestSubmissionUpdatesStateAndRaisesAlert(t *testing.T) {
	h := newHarness(t)
	h.tt.Consume(h.names.Clean, subj, cleanRecord("m1", 0, "PAIN_SEVERITY", 4))
	alerts := h.drainAlerts()
	if len(alerts) != 1 || alerts[0].RuleID != "severe-symptom" || alerts[0].Severity != "urgent" ||
		alerts[0].MessageID != "m1" || alerts[0].SubjectID != subj || alerts[0].AlertID == "" {
		t.Fatalf("alerts %+v", alerts)
	}
	st := h.state()
	if st.Reports != 1 || st.StudyID != "ONC-301" || !st.HasApplied("m1") || st.Open["severe-symptom/PAIN_SEVERITY"].AlertID != alerts[0].AlertID {
		t.Fatalf("state %+v", st)
	}
}

func TestReplayedSubmissionChangesNothing(t *testing.T) {
	h := newHarness(t)
	rec := cleanRecord("m1", 0, "PAIN_SEVERITY", 4)
	h.tt.Consume(h.names.Clean, subj, rec)
	before := h.state()
	first := h.drainAlerts()
	h.tt.Consume(h.names.Clean, subj, rec)
	// The replay changes no state; it sends the record's alert again, with the
	// same id, in case a crash lost it between the state write and the emit.
	if got := h.drainAlerts(); len(got) != 1 || got[0].AlertID != first[0].AlertID {
		t.Fatalf("replay sent %v, want the same alert %s again", got, first[0].AlertID)
	}
	if after := h.state(); after.Reports != before.Reports {
		t.Fatalf("replay changed the state: %d reports, was %d", after.Reports, before.Reports)
	}
}

func TestPoisonRecordsGoToDLQ(t *testing.T) {
	h := newHarness(t)
	h.tt.Consume(h.names.Clean, subj, []byte("garbage"))
	h.tt.Consume(h.names.Clean, "another-subject", cleanRecord("m2", 0, "PAIN_SEVERITY", 1))
	h.tt.Consume(h.names.Commands, subj, []byte(`{"v":1,"kind":"explode","subject_id":"`+subj+`"}`))
	h.tt.Consume(h.names.Clean, subj, []byte(`{"v":99}`))
	want := []string{"decode", "validate", "validate", "decode"}
	for i, class := range want {
		hdr, _, _, ok := h.dead.NextRawWithHeaders()
		if !ok || string(hdr[dlq.HeaderClass]) != class {
			t.Fatalf("DLQ record %d: %v %q, want class %s", i, ok, hdr[dlq.HeaderReason], class)
		}
	}
	// The group is still alive and applies the next good record.
	h.tt.Consume(h.names.Clean, subj, cleanRecord("m3", 0, "PAIN_SEVERITY", 1))
	if h.state().Reports != 1 {
		t.Fatal("the group stopped applying records after poison")
	}
}

func TestPlanAdjustmentRejectsStaleFence(t *testing.T) {
	h := newHarness(t)
	h.tt.Consume(h.names.Commands, subj, commandRecord(codecs.Command{CommandID: "c1", Kind: codecs.CommandPlanAdjusted,
		At: t0, Fence: 5, Plan: json.RawMessage(`{"dose_mg":50}`)}))
	h.tt.Consume(h.names.Commands, subj, commandRecord(codecs.Command{CommandID: "c2", Kind: codecs.CommandPlanAdjusted,
		At: t0, Fence: 4, Plan: json.RawMessage(`{"dose_mg":75}`)}))
	st := h.state()
	if st.Fence != 5 || string(st.Plan) != `{"dose_mg":50}` {
		t.Fatalf("plan %s fence %d", st.Plan, st.Fence)
	}
	hdr, _, _, ok := h.dead.NextRawWithHeaders()
	if !ok || string(hdr[dlq.HeaderClass]) != dlq.ClassRejected || !strings.Contains(string(hdr[dlq.HeaderReason]), "stale fencing token") {
		t.Fatalf("stale command: %v %q", ok, hdr[dlq.HeaderReason])
	}
}

func TestAcknowledgeAlert(t *testing.T) {
	h := newHarness(t)
	h.tt.Consume(h.names.Commands, subj, commandRecord(codecs.Command{CommandID: "c1", Kind: codecs.CommandAlertAcknowledged, At: t0, AlertID: "a1"}))
	h.tt.Consume(h.names.Commands, subj, commandRecord(codecs.Command{CommandID: "c2", Kind: codecs.CommandAlertAcknowledged, At: t0, AlertID: "a1"}))
	if st := h.state(); len(st.Acked) != 1 || st.Acked[0] != "a1" {
		t.Fatalf("acked %v", st.Acked)
	}
}

func TestMissedDiaryThroughScheduleCommands(t *testing.T) {
	h := newHarness(t)
	h.tt.Consume(h.names.Clean, subj, cleanRecord("m1", 0, "PAIN_SEVERITY", 0))
	check := func(id string, days float64) []codecs.Alert {
		h.tt.Consume(h.names.Commands, subj, commandRecord(codecs.Command{CommandID: id, Kind: codecs.CommandCheckSchedule,
			At: t0.Add(time.Duration(days * 24 * float64(time.Hour)))}))
		return h.drainAlerts()
	}
	if a := check("s1", 2); len(a) != 0 {
		t.Fatalf("alert after 2 days: %v", a)
	}
	if a := check("s2", 3.5); len(a) != 1 || a[0].RuleID != "missed-diary" || a[0].Severity != "info" {
		t.Fatalf("after 3.5 days: %+v", a)
	}
	if a := check("s3", 4.5); len(a) != 0 {
		t.Fatalf("re-alert while silent: %v", a)
	}
	if a := check("s4", 5.5); len(a) != 1 || a[0].Severity != "warning" {
		t.Fatalf("after 5.5 days: %+v", a)
	}
}

// A subject enrolled and never reporting gets the missed-diary info alert
// once its study's schedule is exceeded since enrolment (3 days by
// default), and the warning 2 days later.
func TestNeverReportedSubjectIsAlertedFromEnrolment(t *testing.T) {
	h := newHarness(t)
	enrolled := t0
	check := func(id string, at time.Time) {
		h.tt.Consume(h.names.Commands, subj, commandRecord(codecs.Command{CommandID: id, Kind: codecs.CommandCheckSchedule,
			StudyID: "ONC-301", SiteID: "SITE-012", At: at, EnrolledAt: &enrolled}))
	}
	check("schedule:1", t0.Add(2*24*time.Hour))
	if a := h.drainAlerts(); len(a) != 0 {
		t.Fatalf("alerts within the schedule: %+v", a)
	}
	check("schedule:2", t0.Add(4*24*time.Hour))
	a := h.drainAlerts()
	if len(a) != 1 || a[0].RuleID != "missed-diary" || a[0].Severity != codecs.SeverityInfo || a[0].SiteID != "SITE-012" || a[0].StudyID != "ONC-301" {
		t.Fatalf("4 days after enrolment: %+v, want one missed-diary info alert for SITE-012", a)
	}
	check("schedule:3", t0.Add(6*24*time.Hour+time.Hour))
	a = h.drainAlerts()
	if len(a) != 1 || a[0].RuleID != "missed-diary" || a[0].Severity != codecs.SeverityWarning {
		t.Fatalf("6 days after enrolment: %+v, want the missed-diary warning", a)
	}
}

// A record at or below the last position applied from its topic and
// partition is a replay, however many records came since: the state does
// not rely on the id memory for it. Another topic identity (a recreated
// topic) or another partition (a repartitioned one) is not mistaken for
// one.
func TestAReplayIsRecognisedByPositionHoweverOld(t *testing.T) {
	h := newHarness(t)
	h.tt.Consume(h.names.Clean, subj, cleanRecord("m1", 0, "PAIN_SEVERITY", 1))
	st := h.state()
	pos, ok := st.Pos["clean"]
	if !ok || pos.Topic != h.names.Clean {
		t.Fatalf("position after the first record: %+v (%v), want one on %s", st.Pos, ok, h.names.Clean)
	}
	// Forget every id, and place the last applied position far ahead: the
	// next records lie below it, as a replay after thousands of records would.
	st.Applied = nil
	st.Pos["clean"] = codecs.InputPos{Topic: pos.Topic, Partition: pos.Partition, Offset: pos.Offset + 1000}
	h.tt.SetTableValue(goka.Table(h.names.SubjectTable), subj, st)
	h.tt.Consume(h.names.Clean, subj, cleanRecord("m2", 1, "PAIN_SEVERITY", 2))
	if got := h.state(); got.Reports != 1 || got.HasApplied("m2") {
		t.Fatalf("a record below the applied position was applied: %d reports", got.Reports)
	}
	st.Pos["clean"] = codecs.InputPos{Topic: "id:another-topic", Partition: pos.Partition, Offset: pos.Offset + 1000}
	h.tt.SetTableValue(goka.Table(h.names.SubjectTable), subj, st)
	h.tt.Consume(h.names.Clean, subj, cleanRecord("m3", 2, "PAIN_SEVERITY", 2))
	if got := h.state(); got.Reports != 2 || !got.HasApplied("m3") || got.Pos["clean"].Topic != h.names.Clean {
		t.Fatalf("a record of another topic identity: %d reports, position %+v; want it applied", got.Reports, got.Pos)
	}
	st = h.state()
	st.Pos["clean"] = codecs.InputPos{Topic: pos.Topic, Partition: pos.Partition + 1, Offset: pos.Offset + 1000}
	h.tt.SetTableValue(goka.Table(h.names.SubjectTable), subj, st)
	h.tt.Consume(h.names.Clean, subj, cleanRecord("m4", 3, "PAIN_SEVERITY", 2))
	if got := h.state(); got.Reports != 3 {
		t.Fatalf("a record of another partition: %d reports, want it applied", got.Reports)
	}
}

// The report the issue found applied twice: a subject's first record sent
// again at a new offset after 70 more is a duplicate (the id memory keeps
// the latest codecs.MaxApplied ids).
func TestAnOldDuplicateAtANewOffsetIsNotAppliedTwice(t *testing.T) {
	h := newHarness(t)
	first := cleanRecord("m0", 0, "PAIN_SEVERITY", 1)
	h.tt.Consume(h.names.Clean, subj, first)
	for i := 1; i <= 70; i++ {
		h.tt.Consume(h.names.Clean, subj, cleanRecord(fmt.Sprintf("m%d", i), 0, "PAIN_SEVERITY", 1))
	}
	if got := h.state().Reports; got != 71 {
		t.Fatalf("%d reports after 71 records", got)
	}
	h.tt.Consume(h.names.Clean, subj, first)
	if got := h.state().Reports; got != 71 {
		t.Fatalf("%d reports after the first record came again, want 71", got)
	}
}

// The same message_id with another content is a conflicting duplicate: it
// goes to the DLQ with that reason and changes nothing; the same content
// again is a plain duplicate. A state kept before contents were hashed
// knows no sum for its ids, and treats a repeat as a duplicate.
func TestAConflictingDuplicateIsDeadLettered(t *testing.T) {
	h := newHarness(t)
	h.tt.Consume(h.names.Clean, subj, cleanRecord("m1", 0, "PAIN_SEVERITY", 1))
	before := h.state()
	h.tt.Consume(h.names.Clean, subj, cleanRecord("m1", 0, "PAIN_SEVERITY", 4))
	hdr, _, _, ok := h.dead.NextRawWithHeaders()
	if !ok || string(hdr[dlq.HeaderClass]) != dlq.ClassConflict || !strings.Contains(string(hdr[dlq.HeaderReason]), "conflicting duplicate") {
		t.Fatalf("another content under m1: %v %q %q, want a conflict", ok, hdr[dlq.HeaderClass], hdr[dlq.HeaderReason])
	}
	if got := h.state(); got.Reports != 1 || got.Items["PAIN_SEVERITY"].Recent[0].V != 1 || len(h.drainAlerts()) != 0 {
		t.Fatalf("the conflicting record changed the state or raised an alert: %+v", got.Items["PAIN_SEVERITY"])
	}
	h.tt.Consume(h.names.Clean, subj, cleanRecord("m1", 0, "PAIN_SEVERITY", 1)) // the same content again
	if _, _, _, ok := h.dead.NextRawWithHeaders(); ok {
		t.Fatal("a plain duplicate was dead-lettered")
	}
	if got := h.state(); got.Reports != before.Reports {
		t.Fatalf("a plain duplicate was applied: %d reports", got.Reports)
	}
	old := h.state()
	old.Sums = nil // a state written before sums were kept
	h.tt.SetTableValue(goka.Table(h.names.SubjectTable), subj, old)
	h.tt.Consume(h.names.Clean, subj, cleanRecord("m1", 0, "PAIN_SEVERITY", 3))
	if _, _, _, ok := h.dead.NextRawWithHeaders(); ok {
		t.Fatal("an id without a known sum was dead-lettered as a conflict")
	}
	if got := h.state(); got.Reports != 1 {
		t.Fatalf("%d reports, want 1", got.Reports)
	}
}

// A plan adjustment is recorded in the audit trail as the group applies
// it, with the plan it replaced; a stale one is not; a repeat of the
// command, or its replay after a crash between the state write and the
// event, sends the same event again (same id), so none is lost.
func TestPlanAdjustmentsAreAuditedWithThePlanBefore(t *testing.T) {
	h := newHarness(t)
	events := h.tt.NewQueueTracker(h.names.Audit)
	next := func() []codecs.AuditEvent {
		var out []codecs.AuditEvent
		for {
			_, v, ok := events.Next()
			if !ok {
				return out
			}
			out = append(out, v.(codecs.AuditEvent))
		}
	}
	plan := func(id string, fence int64, p string) []byte {
		return commandRecord(codecs.Command{CommandID: id, Kind: codecs.CommandPlanAdjusted, StudyID: "ONC-301", At: t0, Fence: fence, Plan: json.RawMessage(p), By: "k1"})
	}
	want := func(when string, got []codecs.AuditEvent, id, before, after string) {
		t.Helper()
		if len(got) != 1 {
			t.Fatalf("%s: %d audit events, want 1: %+v", when, len(got), got)
		}
		e := got[0]
		if e.AuditID != "command:"+id || e.Action != codecs.AuditPlanAdjust || e.Actor != "key:k1" || e.SubjectID != subj ||
			e.Target != subj || e.StudyID != "ONC-301" || string(e.Before) != before || string(e.After) != after || !e.At.Equal(t0) {
			t.Fatalf("%s: event %+v (before %s, after %s), want %s with before %q and after %s", when, e, e.Before, e.After, id, before, after)
		}
		if err := e.Validate(); err != nil {
			t.Fatalf("%s: %v", when, err)
		}
	}
	h.tt.Consume(h.names.Commands, subj, plan("c1", 5, `{"dose_mg":50}`))
	want("first plan", next(), "c1", "", `{"dose_mg":50}`)
	h.tt.Consume(h.names.Commands, subj, plan("c2", 6, `{"dose_mg":75}`))
	want("second plan", next(), "c2", `{"dose_mg":50}`, `{"dose_mg":75}`)
	h.tt.Consume(h.names.Commands, subj, plan("c3", 4, `{"dose_mg":99}`))
	if got := next(); len(got) != 0 {
		t.Fatalf("a stale adjustment was audited: %+v", got)
	}
	h.tt.Consume(h.names.Commands, subj, plan("c2", 6, `{"dose_mg":75}`))
	want("the command repeated", next(), "c2", `{"dose_mg":50}`, `{"dose_mg":75}`)
	// A crash after the state write: the record comes again at or below
	// the position the state holds.
	st := h.state()
	pos := st.Pos["commands"]
	st.Pos["commands"] = codecs.InputPos{Topic: pos.Topic, Partition: pos.Partition, Offset: pos.Offset + 1000}
	h.tt.SetTableValue(goka.Table(h.names.SubjectTable), subj, st)
	h.tt.Consume(h.names.Commands, subj, plan("c2", 6, `{"dose_mg":75}`))
	want("the command replayed", next(), "c2", `{"dose_mg":50}`, `{"dose_mg":75}`)
	st.Pos["commands"] = pos
	h.tt.SetTableValue(goka.Table(h.names.SubjectTable), subj, st)
	// Once a later plan replaced it, a replay of the older command says
	// nothing: its event was sent when it was applied.
	h.tt.Consume(h.names.Commands, subj, plan("c4", 7, `{"dose_mg":80}`))
	want("third plan", next(), "c4", `{"dose_mg":75}`, `{"dose_mg":80}`)
	h.tt.Consume(h.names.Commands, subj, plan("c2", 6, `{"dose_mg":75}`))
	if got := next(); len(got) != 0 {
		t.Fatalf("a replaced adjustment was audited again: %+v", got)
	}
}
