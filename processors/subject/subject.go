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

// StateCodec is the codec of subject-table.
type StateCodec = codecs.JSON[codecs.SubjectState]

// Deps are what the group needs besides Kafka.
type Deps struct {
	Rules    *rules.Registry
	Log      *slog.Logger
	Registry prometheus.Registerer // may be nil
	Now      func() time.Time      // alert raised_at; time.Now when nil
}

type processor struct {
	names   topics.Names
	deps    Deps
	applied *prometheus.CounterVec
	alerts  *prometheus.CounterVec
	dropped *prometheus.CounterVec
}

// graph returns the group graph for names and the metrics New registers.
func graph(names topics.Names, deps Deps) (*goka.GroupGraph, []prometheus.Collector) {
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.Rules == nil {
		deps.Rules = rules.NewRegistry()
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
	}
	collectors := []prometheus.Collector{p.applied, p.alerts, p.dropped}
	return goka.DefineGroup(goka.Group(topics.Group(names.Prefix, Group)),
		goka.Input(goka.Stream(names.Clean), new(codec.Bytes), p.onClean),
		goka.Input(goka.Stream(names.Commands), new(codec.Bytes), p.onCommand),
		goka.Persist(StateCodec{}),
		goka.Output(goka.Stream(names.Alerts), codecs.JSON[codecs.Alert]{}),
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

func (p *processor) state(ctx goka.Context) codecs.SubjectState {
	if v, ok := ctx.Value().(codecs.SubjectState); ok {
		return v
	}
	return codecs.SubjectState{}
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
	next, alerts, applied := ApplySubmission(p.state(ctx), c, p.deps.Rules.For(c.StudyID), p.deps.Now())
	if !applied {
		p.applied.WithLabelValues("clean", "duplicate").Inc()
		p.resend(ctx, alerts)
		return
	}
	p.applied.WithLabelValues("clean", "applied").Inc()
	ctx.SetValue(next)
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
	st := p.state(ctx)
	next, alerts, changed, err := ApplyCommand(st, cmd, p.deps.Rules.For(studyOf(st, cmd)), p.deps.Now())
	if err != nil {
		p.deadLetter(ctx, "command", dlq.ClassRejected, raw, err)
		return
	}
	if !changed {
		p.applied.WithLabelValues("command", "unchanged").Inc()
		p.resend(ctx, alerts)
		return
	}
	p.applied.WithLabelValues("command", "applied").Inc()
	ctx.SetValue(next)
	p.emit(ctx, alerts)
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
	}
}

func (p *processor) emit(ctx goka.Context, alerts []codecs.Alert) {
	for _, a := range alerts {
		p.alerts.WithLabelValues(a.RuleID, a.Severity).Inc()
		ctx.Emit(goka.Stream(p.names.Alerts), a.SubjectID, a)
	}
}
