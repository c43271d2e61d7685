package subject_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/tester"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/internal/kafka/topics"
	"github.com/eprostream/eprostream/processors/internal/dlq"
	"github.com/eprostream/eprostream/processors/subject"
)

type boundHarness struct {
	*harness
	reg *prometheus.Registry
}

func newBoundHarness(t *testing.T, maxBytes int) *boundHarness {
	tt := tester.New(t)
	names := topics.NewNames("")
	reg := prometheus.NewRegistry()
	p, err := subject.New(subject.Config{Names: names}, subject.Deps{Log: quietLog(), Registry: reg,
		Now: func() time.Time { return t0 }, MaxStateBytes: maxBytes}, goka.WithTester(tt))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return &boundHarness{&harness{tt: tt, alerts: tt.NewQueueTracker(names.Alerts), dead: tt.NewQueueTracker(names.DLQ), names: names}, reg}
}

// manyItems is a clean record of subject with n invented items at 4.
func manyItems(subject, id string, from, n int) []byte {
	c := codecs.CleanSubmission{V: 1, MessageID: id, StudyID: "ONC-301", SiteID: "SITE-012", SubjectID: subject,
		Instrument: "PRO-CTCAE", Format: "native", SubmittedAt: t0}
	for i := from; i < from+n; i++ {
		v := 4.0
		c.Items = append(c.Items, codecs.CleanItem{Code: fmt.Sprintf("X%d_SEVERITY", i), Num: &v})
	}
	b, _ := json.Marshal(c)
	return b
}

func (h *boundHarness) deadClasses() []string {
	var out []string
	for {
		hdr, _, _, ok := h.dead.NextRawWithHeaders()
		if !ok {
			return out
		}
		out = append(out, string(hdr[dlq.HeaderClass]))
	}
}

func cleanRecordFor(subject, id, code string, v float64) []byte {
	c := codecs.CleanSubmission{V: 1, MessageID: id, StudyID: "ONC-301", SiteID: "SITE-012", SubjectID: subject,
		Instrument: "PRO-CTCAE", Format: "native", SubmittedAt: t0, Items: []codecs.CleanItem{{Code: code, Num: &v}}}
	b, _ := json.Marshal(c)
	return b
}

func commandRecordFor(subject string, c codecs.Command) []byte {
	c.V, c.SubjectID = 1, subject
	b, _ := json.Marshal(c)
	return b
}

func containsAll(ss []string, sub string) bool {
	for _, s := range ss {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return len(ss) > 0
}

// counter finds a registered counter by name; the test fails when it is
// not registered, so a reading of 0 is never a missing metric.
func counter(t *testing.T, reg *prometheus.Registry, name string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return constCounter(mf.GetMetric()[0].GetCounter().GetValue())
		}
	}
	t.Fatalf("metric %s is not registered", name)
	return nil
}

func constCounter(v float64) prometheus.Collector {
	return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "c", Help: "c"}, func() float64 { return v })
}

func tableBytes(t *testing.T, h *harness, key string) int {
	t.Helper()
	v := h.tt.TableValue(goka.Table(h.names.SubjectTable), key)
	if v == nil {
		return 0
	}
	b, err := codecs.StateCodec{}.Encode(v)
	if err != nil {
		t.Fatal(err)
	}
	return len(b)
}

// Four records of 500 invented severity-4 items for one subject: each
// would take the state over its item bound, so each is dead-lettered, the
// state stays as it was, and the next subject's urgent alert is raised.
func TestInventedItemsAreDeadLetteredAndTheGroupGoesOn(t *testing.T) {
	h := newBoundHarness(t, 0)
	h.tt.Consume(h.names.Clean, "W-1", cleanRecordFor("W-1", "w-ok", "PAIN_SEVERITY", 1))
	before := tableBytes(t, h.harness, "W-1")
	if before == 0 {
		t.Fatal("the first, normal record left no state")
	}
	for i := range 4 {
		h.tt.Consume(h.names.Clean, "W-1", manyItems("W-1", fmt.Sprintf("w-%d", i), i*500, 500))
	}
	if got := h.deadClasses(); len(got) != 4 || got[0] != dlq.ClassBound || got[3] != dlq.ClassBound {
		t.Fatalf("dead letters %v, want 4 of class %q", got, dlq.ClassBound)
	}
	if after := tableBytes(t, h.harness, "W-1"); after != before {
		t.Fatalf("the refused records changed the state: %d bytes, was %d", after, before)
	}
	h.drainAlerts()
	h.tt.Consume(h.names.Clean, "W-2", cleanRecordFor("W-2", "w2-1", "PAIN_SEVERITY", 4))
	alerts := h.drainAlerts()
	if len(alerts) == 0 || alerts[0].SubjectID != "W-2" || alerts[0].Severity != codecs.SeverityUrgent {
		t.Fatalf("the next subject's alerts: %+v, want its urgent alert", alerts)
	}
}

// Items under the bound in each record but over it together: the record
// that crosses the bound is refused, the ones before it stand.
func TestItemBoundIsCumulative(t *testing.T) {
	h := newBoundHarness(t, 0)
	h.tt.Consume(h.names.Clean, "W-1", manyItems("W-1", "w-a", 0, 200))
	h.tt.Consume(h.names.Clean, "W-1", manyItems("W-1", "w-b", 200, 100))
	if got := h.deadClasses(); len(got) != 1 || got[0] != dlq.ClassBound {
		t.Fatalf("dead letters %v, want one bound refusal", got)
	}
	st, _ := h.tt.TableValue(goka.Table(h.names.SubjectTable), "W-1").(codecs.SubjectState)
	if len(st.Items) != 200 || st.Reports != 1 {
		t.Fatalf("state tracks %d items over %d reports, want 200 over 1", len(st.Items), st.Reports)
	}
}

// The byte bound: a state that would encode larger than the limit is not
// written; every record the table holds stays under the limit.
func TestStateByteBound(t *testing.T) {
	const limit = 4 << 10
	h := newBoundHarness(t, limit)
	for i := range 20 {
		h.tt.Consume(h.names.Clean, "W-1", manyItems("W-1", fmt.Sprintf("w-%d", i), i*5, 5))
		if n := tableBytes(t, h.harness, "W-1"); n > limit {
			t.Fatalf("after record %d the table holds %d bytes, limit %d", i, n, limit)
		}
	}
	got := h.deadClasses()
	if len(got) == 0 {
		t.Fatal("no record was refused: the records never reached the byte bound")
	}
	for _, c := range got {
		if c != dlq.ClassBound {
			t.Fatalf("dead letter of class %q, want %q", c, dlq.ClassBound)
		}
	}
}

// A table value that cannot be decoded (corrupt, or a wire version this
// build does not know) dead-letters the subject's input with the reason,
// counts it, and the partition goes on for the other subjects.
func TestUndecodableStateIsDeadLetteredAndCounted(t *testing.T) {
	for name, value := range map[string]codecs.EncodedState{
		"corrupt":         codecs.EncodedState(`{"v":1,"study":`),
		"unknown version": codecs.EncodedState(`{"v":99,"study":"ONC-301"}`),
	} {
		t.Run(name, func(t *testing.T) {
			h := newBoundHarness(t, 0)
			h.tt.SetTableValue(goka.Table(h.names.SubjectTable), "W-1", value)
			h.tt.Consume(h.names.Clean, "W-1", cleanRecordFor("W-1", "w-1", "PAIN_SEVERITY", 4))
			h.tt.Consume(h.names.Commands, "W-1", commandRecordFor("W-1", codecs.Command{CommandID: "c-1", Kind: codecs.CommandAlertAcknowledged,
				StudyID: "ONC-301", AlertID: "a-1", At: t0}))
			var reasons []string
			for {
				hd, _, _, ok := h.dead.NextRawWithHeaders()
				if !ok {
					break
				}
				if string(hd[dlq.HeaderClass]) != dlq.ClassState {
					t.Fatalf("dead letter of class %q, want %q", hd[dlq.HeaderClass], dlq.ClassState)
				}
				reasons = append(reasons, string(hd[dlq.HeaderReason]))
			}
			if len(reasons) != 2 || !containsAll(reasons, "subject state undecodable") {
				t.Fatalf("reasons %q, want two 'subject state undecodable'", reasons)
			}
			if n := testutil.ToFloat64(counter(t, h.reg, "eprostream_subject_state_undecodable_total")); n != 2 {
				t.Fatalf("eprostream_subject_state_undecodable_total = %v, want 2", n)
			}
			h.tt.Consume(h.names.Clean, "W-2", cleanRecordFor("W-2", "w2-1", "PAIN_SEVERITY", 4))
			if alerts := h.drainAlerts(); len(alerts) == 0 || alerts[len(alerts)-1].SubjectID != "W-2" {
				t.Fatalf("the partition did not go on: alerts %+v", alerts)
			}
		})
	}
}

// A subject's study never changes by a record: another study's submission
// or command is dead-lettered and the state is byte-identical afterwards.
func TestAnotherStudysRecordsNeverMoveTheSubject(t *testing.T) {
	h := newBoundHarness(t, 0)
	h.tt.Consume(h.names.Clean, "W-1", cleanRecordFor("W-1", "w-1", "PAIN_SEVERITY", 1))
	before := tableBytes(t, h.harness, "W-1")
	other := codecs.CleanSubmission{V: 1, MessageID: "x-1", StudyID: "CAR-200", SiteID: "SITE-001", SubjectID: "W-1",
		Instrument: "PRO-CTCAE", Format: "native", SubmittedAt: t0, Items: []codecs.CleanItem{{Code: "PAIN_SEVERITY", Num: ptr(4)}}}
	b, _ := json.Marshal(other)
	h.tt.Consume(h.names.Clean, "W-1", b)
	h.tt.Consume(h.names.Commands, "W-1", commandRecordFor("W-1", codecs.Command{CommandID: "c-x", Kind: codecs.CommandPlanAdjusted,
		StudyID: "CAR-200", Fence: 99, Plan: json.RawMessage(`{"drug":"x"}`), At: t0}))
	if got := h.deadClasses(); len(got) != 2 || got[0] != dlq.ClassRejected || got[1] != dlq.ClassRejected {
		t.Fatalf("dead letters %v, want both records rejected", got)
	}
	if after := tableBytes(t, h.harness, "W-1"); after != before {
		t.Fatalf("another study's records changed the state (%d bytes, was %d)", after, before)
	}
	st, _ := h.tt.TableValue(goka.Table(h.names.SubjectTable), "W-1").(codecs.SubjectState)
	if st.StudyID != "ONC-301" || st.Fence != 0 {
		t.Fatalf("state %s fence %d, want ONC-301 and no plan", st.StudyID, st.Fence)
	}
}

func ptr(v float64) *float64 { return &v }
