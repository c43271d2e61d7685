package subject

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/internal/kafka/topics"
	"github.com/eprostream/eprostream/internal/logging"
	"github.com/eprostream/eprostream/processors/internal/dlq"
	"github.com/eprostream/eprostream/processors/internal/group"
	"github.com/eprostream/eprostream/rules"
)

// Group is the group name before the topic prefix; its table is
// topics.Names.SubjectTable.
const Group = topics.SubjectGroup

// StateCodec is the codec of subject-table: it never fails to decode (see
// codecs.StateCodec), so a bad table value cannot stop the group.
type StateCodec = codecs.StateCodec

// Deps are what the group needs besides Kafka.
type Deps struct {
	Rules    *rules.Registry
	Log      *slog.Logger
	Registry prometheus.Registerer // may be nil
	Now      func() time.Time      // alert raised_at; time.Now when nil
	// MaxStateBytes bounds an encoded subject state; 0 means
	// codecs.MaxStateBytes (tests set a smaller one).
	MaxStateBytes int
	// TopicIDs gives the input topics' Kafka IDs for replay detection by
	// position; nil (or a topic it lacks) identifies a topic by its name.
	TopicIDs *topics.Identities
}

// position is the place of ctx's record.
func (p *processor) position(ctx goka.Context) codecs.InputPos {
	return codecs.InputPos{Topic: p.deps.TopicIDs.Identity(string(ctx.Topic())), Partition: ctx.Partition(), Offset: ctx.Offset()}
}

type processor struct {
	names   topics.Names
	deps    Deps
	applied *prometheus.CounterVec
	alerts  *prometheus.CounterVec
	dropped *prometheus.CounterVec
	// unreadable counts inputs of subjects whose table value is undecodable.
	unreadable prometheus.Counter
}

// graph returns the group graph for names and the metrics New registers.
func graph(names topics.Names, deps Deps) (*goka.GroupGraph, []prometheus.Collector) {
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.Rules == nil {
		deps.Rules = rules.NewRegistry()
	}
	if deps.MaxStateBytes <= 0 || deps.MaxStateBytes > codecs.MaxStateBytes {
		deps.MaxStateBytes = codecs.MaxStateBytes
	}
	p := &processor{names: names, deps: deps,
		applied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "eprostream", Subsystem: "subject", Name: "records_total",
			Help: "Clean submissions and commands by outcome (applied, duplicate).",
		}, []string{"input", "outcome"}),
		alerts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "eprostream", Subsystem: "subject", Name: "alerts_total",
			Help: "Alerts raised, by rule and severity.",
		}, []string{"rule", "severity"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "eprostream", Subsystem: "subject", Name: "dlq_total",
			Help: "Records sent to epro-dlq, by input and class.",
		}, []string{"input", "class"}),
		unreadable: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "eprostream", Subsystem: "subject", Name: "state_undecodable_total",
			Help: "Inputs dead-lettered because the subject's table value could not be decoded.",
		}),
	}
	collectors := []prometheus.Collector{p.applied, p.alerts, p.dropped, p.unreadable}
	return goka.DefineGroup(goka.Group(topics.Group(names.Prefix, Group)),
		goka.Input(goka.Stream(names.Clean), new(codec.Bytes), p.onClean),
		goka.Input(goka.Stream(names.Commands), new(codec.Bytes), p.onCommand),
		goka.Persist(StateCodec{}),
		goka.Output(goka.Stream(names.Alerts), codecs.JSON[codecs.Alert]{}),
		goka.Output(goka.Stream(names.AlertIndex), codecs.JSON[codecs.AlertOwner]{}),
		goka.Output(goka.Stream(names.Audit), codecs.JSON[codecs.AuditEvent]{}),
		goka.Output(goka.Stream(names.DLQ), new(codec.Bytes)),
	), collectors
}

// Config is where the group runs.
type Config = group.Config

// New returns the subject processor; pass goka.WithTester in tests. Its metrics
// are registered with deps.Registry here, once: a second New on the same
// registry is an error.
func New(cfg Config, deps Deps, opts ...goka.ProcessorOption) (*goka.Processor, error) {
	if err := cfg.Validate("subject"); err != nil {
		return nil, err
	}
	deps.Log = logging.OrDiscard(deps.Log)
	g, collectors := graph(cfg.Names, deps)
	if err := group.Register("subject", deps.Registry, collectors...); err != nil {
		return nil, err
	}
	p, err := goka.NewProcessor(cfg.Brokers, g, opts...)
	if err != nil {
		return nil, fmt.Errorf("subject: %w", err)
	}
	return p, nil
}

// state returns the subject's state, or an error when the table value
// cannot be read.
func (p *processor) state(ctx goka.Context) (codecs.SubjectState, error) {
	switch v := ctx.Value().(type) {
	case codecs.SubjectState:
		return v, nil
	case codecs.UndecodableState:
		return codecs.SubjectState{}, v
	}
	return codecs.SubjectState{}, nil
}

// undecodable dead-letters the input of a subject whose table value cannot
// be read; the value stays as it is (for an operator to inspect or repair)
// and the partition goes on.
func (p *processor) undecodable(ctx goka.Context, input string, raw []byte, err error) {
	p.unreadable.Inc()
	p.deps.Log.Error("subject state undecodable: input dead-lettered, the partition goes on",
		"subject_id", ctx.Key(), "input", input, "partition", ctx.Partition(), "offset", ctx.Offset(), "err", err)
	p.deadLetter(ctx, input, dlq.ClassState, raw, err)
}

// write stores next after checking its bounds; false means the input was
// dead-lettered instead and the state is unchanged.
func (p *processor) write(ctx goka.Context, input string, raw []byte, next codecs.SubjectState) bool {
	if n := len(next.Items); n > codecs.MaxStateItems {
		p.deadLetter(ctx, input, dlq.ClassBound, raw, fmt.Errorf("subject: the state would track %d items, at most %d", n, codecs.MaxStateItems))
		return false
	}
	b, err := codecs.EncodeState(next)
	if err != nil {
		p.deadLetter(ctx, input, dlq.ClassBound, raw, fmt.Errorf("subject: encode state: %w", err))
		return false
	}
	if len(b) > p.deps.MaxStateBytes {
		p.deadLetter(ctx, input, dlq.ClassBound, raw, fmt.Errorf("subject: the state would be %d bytes, at most %d", len(b), p.deps.MaxStateBytes))
		return false
	}
	ctx.SetValue(b)
	return true
}

func (p *processor) deadLetter(ctx goka.Context, input, class string, raw []byte, err error) {
	p.dropped.WithLabelValues(input, class).Inc()
	p.deps.Log.Debug("record dead-lettered", "input", input, "class", class, "reason", err.Error(),
		"partition", ctx.Partition(), "offset", ctx.Offset())
	dlq.Send(ctx, p.names.DLQ, raw, class, err)
}

func (p *processor) onClean(ctx goka.Context, msg any) {
	raw, _ := msg.([]byte)
	v, err := codecs.JSON[codecs.CleanSubmission]{}.Decode(raw)
	if err != nil {
		p.deadLetter(ctx, "clean", dlq.ClassDecode, raw, err)
		return
	}
	c := v.(codecs.CleanSubmission)
	if c.SubjectID != ctx.Key() {
		p.deadLetter(ctx, "clean", dlq.ClassValidate, raw, errors.New("subject: record key is not its subject_id"))
		return
	}
	st, err := p.state(ctx)
	if err != nil {
		p.undecodable(ctx, "clean", raw, err)
		return
	}
	if st.StudyID != "" && st.StudyID != c.StudyID {
		// The registry binds a subject to one study; a record of another
		// study never moves it (the gateway and intake refuse such records
		// first: this holds even for producers that bypass both).
		p.deadLetter(ctx, "clean", dlq.ClassRejected, raw, errors.New("subject: the subject is bound to another study"))
		return
	}
	pos := p.position(ctx)
	if st.Replayed("clean", pos) {
		// At or below the last applied position: a replay, however old.
		p.applied.WithLabelValues("clean", "replay").Inc()
		p.resend(ctx, st.Raised(c.MessageID))
		return
	}
	if st.ConflictsWith(c) {
		// The same message_id with another content: not a duplicate to
		// drop quietly, and not a new report to fold in.
		p.deadLetter(ctx, "clean", dlq.ClassConflict, raw,
			fmt.Errorf("subject: conflicting duplicate: message_id %s was applied with another content", codecs.QuoteID(c.MessageID)))
		return
	}
	next, alerts, applied := ApplySubmission(st, c, p.deps.Rules.For(c.StudyID), p.deps.Now())
	if !applied {
		p.applied.WithLabelValues("clean", "duplicate").Inc()
		p.resend(ctx, alerts)
		return
	}
	next.Advance("clean", pos)
	if !p.write(ctx, "clean", raw, next) {
		return
	}
	p.applied.WithLabelValues("clean", "applied").Inc()
	p.emit(ctx, alerts)
}

func (p *processor) onCommand(ctx goka.Context, msg any) {
	raw, _ := msg.([]byte)
	v, err := codecs.JSON[codecs.Command]{}.Decode(raw)
	if err != nil {
		p.deadLetter(ctx, "command", dlq.ClassDecode, raw, err)
		return
	}
	cmd := v.(codecs.Command)
	if err := cmd.Validate(); err != nil {
		p.deadLetter(ctx, "command", dlq.ClassValidate, raw, err)
		return
	}
	if cmd.SubjectID != ctx.Key() {
		p.deadLetter(ctx, "command", dlq.ClassValidate, raw, errors.New("subject: record key is not its subject_id"))
		return
	}
	st, err := p.state(ctx)
	if err != nil {
		p.undecodable(ctx, "command", raw, err)
		return
	}
	if st.StudyID != "" && cmd.StudyID != "" && st.StudyID != cmd.StudyID {
		p.deadLetter(ctx, "command", dlq.ClassRejected, raw, errors.New("subject: the command names another study than the subject's"))
		return
	}
	pos := p.position(ctx)
	if st.Replayed("commands", pos) {
		p.applied.WithLabelValues("command", "replay").Inc()
		p.resend(ctx, st.Raised(cmd.CommandID))
		p.audit(ctx, st, cmd)
		return
	}
	next, alerts, changed, err := ApplyCommand(st, cmd, p.deps.Rules.For(studyOf(st, cmd)), p.deps.Now())
	if err != nil {
		p.deadLetter(ctx, "command", dlq.ClassRejected, raw, err)
		return
	}
	if !changed {
		p.applied.WithLabelValues("command", "unchanged").Inc()
		p.resend(ctx, alerts)
		p.audit(ctx, st, cmd)
		return
	}
	next.Advance("commands", pos)
	if !p.write(ctx, "command", raw, next) {
		return
	}
	p.applied.WithLabelValues("command", "applied").Inc()
	p.emit(ctx, alerts)
	p.audit(ctx, next, cmd)
}

// audit records plan adjustment cmd in the audit trail once st holds it;
// a replay or a repeat of the command sends the same event again (same id,
// so it is stored once), in case a crash lost the first.
func (p *processor) audit(ctx goka.Context, st codecs.SubjectState, cmd codecs.Command) {
	if e, ok := PlanAudit(st, cmd); ok {
		ctx.Emit(goka.Stream(p.names.Audit), e.Target, e)
	}
}

func studyOf(st codecs.SubjectState, cmd codecs.Command) string {
	if st.StudyID != "" {
		return st.StudyID
	}
	return cmd.StudyID
}

// resend emits again the alerts of a record that was applied before: after
// a crash between its state write and its alerts, they would be lost
// otherwise. Their ids are unchanged, so subscribers recognise repeats.
func (p *processor) resend(ctx goka.Context, alerts []codecs.Alert) {
	for _, a := range alerts {
		ctx.Emit(goka.Stream(p.names.Alerts), a.SubjectID, a)
		ctx.Emit(goka.Stream(p.names.AlertIndex), a.AlertID, a.Owner())
	}
}

func (p *processor) emit(ctx goka.Context, alerts []codecs.Alert) {
	for _, a := range alerts {
		p.alerts.WithLabelValues(a.RuleID, a.Severity).Inc()
		ctx.Emit(goka.Stream(p.names.Alerts), a.SubjectID, a)
		ctx.Emit(goka.Stream(p.names.AlertIndex), a.AlertID, a.Owner())
	}
}
