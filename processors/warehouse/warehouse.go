package warehouse

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/internal/clickhouse/chsink"
	"github.com/eprostream/eprostream/internal/kafka/topics"
	"github.com/eprostream/eprostream/internal/logging"
	"github.com/eprostream/eprostream/processors/internal/dlq"
	"github.com/eprostream/eprostream/processors/internal/group"
)

// Group is the group name before the topic prefix.
const Group = "warehouse"

// Deps are what the group needs besides Kafka.
type Deps struct {
	Sink     *chsink.Sink
	Log      *slog.Logger
	Registry prometheus.Registerer // may be nil
	// TopicIDs gives the inputs' Kafka topic IDs, stored with every row for
	// the sink's offset guard; nil stores "" (the guard then cannot tell a
	// topic recreated under its old name from the old one).
	TopicIDs *topics.Identities
}

type processor struct {
	names   topics.Names
	deps    Deps
	dropped *prometheus.CounterVec
}

// graph returns the group graph for names and the metrics New registers.
func graph(names topics.Names, deps Deps) (*goka.GroupGraph, []prometheus.Collector) {
	p := &processor{names: names, deps: deps, dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "eprostream", Subsystem: "warehouse", Name: "dlq_total",
		Help: "Records sent to epro-dlq instead of ClickHouse, by input and class.",
	}, []string{"input", "class"})}
	collectors := []prometheus.Collector{p.dropped}
	return goka.DefineGroup(goka.Group(topics.Group(names.Prefix, Group)),
		goka.Input(goka.Stream(names.Clean), new(codec.Bytes), p.onClean),
		goka.Input(goka.Stream(names.Alerts), new(codec.Bytes), p.onAlert),
		goka.Input(goka.Stream(names.DLQ), new(codec.Bytes), p.onDead),
		goka.Input(goka.Stream(names.Commands), new(codec.Bytes), p.onCommand),
		goka.Input(goka.Stream(names.Enrolments), new(codec.Bytes), p.onEnrolment),
		goka.Input(goka.Stream(names.Audit), new(codec.Bytes), p.onAudit),
		goka.Input(goka.Stream(names.Questionnaires), new(codec.Bytes), p.onQuestionnaire),
		goka.Output(goka.Stream(names.DLQ), new(codec.Bytes)),
	), collectors
}

// Config is where the group runs.
type Config = group.Config

// New returns the warehouse processor; pass goka.WithTester in tests. Its metrics
// are registered with deps.Registry here, once: a second New on the same
// registry is an error.
func New(cfg Config, deps Deps, opts ...goka.ProcessorOption) (*goka.Processor, error) {
	if err := cfg.Validate("warehouse"); err != nil {
		return nil, err
	}
	deps.Log = logging.OrDiscard(deps.Log)
	g, collectors := graph(cfg.Names, deps)
	if err := group.Register("warehouse", deps.Registry, collectors...); err != nil {
		return nil, err
	}
	if deps.Sink != nil {
		// After a rebalance a partition may come back that another instance
		// inserted rows of meanwhile: the sink reads its offset guards again,
		// and drops what it holds of partitions now another instance's.
		// Holding every partition (goka copartitions the inputs, so the
		// clean topic's count is every input's), the instance is the only
		// writer and the sink may trust its id filters.
		opts = append(opts, goka.WithRebalanceCallback(func(a goka.Assignment) {
			held := make([]int32, 0, len(a))
			for p := range a {
				held = append(held, p)
			}
			deps.Sink.Reassigned(held, holdsAll(held, deps.TopicIDs.Partitions(cfg.Names.Clean)))
		}))
	}
	p, err := goka.NewProcessor(cfg.Brokers, g, opts...)
	if err != nil {
		return nil, fmt.Errorf("warehouse: %w", err)
	}
	return p, nil
}

// holdsAll reports whether held is every partition 0..n-1 (false when n,
// the partition count, is unknown).
func holdsAll(held []int32, n int) bool {
	if n <= 0 || len(held) != n {
		return false
	}
	seen := make(map[int32]bool, n)
	for _, p := range held {
		if p < 0 || int(p) >= n || seen[p] {
			return false
		}
		seen[p] = true
	}
	return true
}

// source is where ctx's record was read.
func (p *processor) source(ctx goka.Context) Source {
	topic := string(ctx.Topic())
	return Source{Topic: topic, TopicID: p.deps.TopicIDs.ID(topic), Partition: ctx.Partition(), Offset: ctx.Offset()}
}

func (p *processor) onClean(ctx goka.Context, msg any) {
	raw, _ := msg.([]byte)
	v, err := codecs.JSON[codecs.CleanSubmission]{}.Decode(raw)
	if err != nil {
		p.deadLetter(ctx, "clean", dlq.ClassDecode, raw, err)
		return
	}
	row, err := SubmissionRow(v.(codecs.CleanSubmission), p.source(ctx))
	p.add(ctx, "clean", Submissions, raw, row, err)
}

func (p *processor) onAlert(ctx goka.Context, msg any) {
	raw, _ := msg.([]byte)
	v, err := codecs.JSON[codecs.Alert]{}.Decode(raw)
	if err != nil {
		p.deadLetter(ctx, "alert", dlq.ClassDecode, raw, err)
		return
	}
	row, err := AlertRow(v.(codecs.Alert), p.source(ctx))
	p.add(ctx, "alert", Alerts, raw, row, err)
}

func (p *processor) onCommand(ctx goka.Context, msg any) {
	raw, _ := msg.([]byte)
	v, err := codecs.JSON[codecs.Command]{}.Decode(raw)
	if err != nil {
		return // the subject group dead-letters commands it cannot decode
	}
	row, ok, err := CommandRow(v.(codecs.Command), p.source(ctx))
	if !ok {
		return // a scheduler's check: not part of the audit trail
	}
	p.add(ctx, "command", Commands, raw, row, err)
	if err == nil {
		audit, _, err := CommandAuditRow(v.(codecs.Command), p.source(ctx))
		p.add(ctx, "command", AuditEvents, raw, audit, err)
	}
}

func (p *processor) onAudit(ctx goka.Context, msg any) {
	raw, _ := msg.([]byte)
	v, err := codecs.JSON[codecs.AuditEvent]{}.Decode(raw)
	if err != nil {
		p.deadLetter(ctx, "audit", dlq.ClassDecode, raw, err)
		return
	}
	e := v.(codecs.AuditEvent)
	if err := e.Validate(); err != nil {
		p.deadLetter(ctx, "audit", dlq.ClassValidate, raw, err)
		return
	}
	row, err := AuditRow(e, p.source(ctx))
	p.add(ctx, "audit", AuditEvents, raw, row, err)
}

func (p *processor) onQuestionnaire(ctx goka.Context, msg any) {
	raw, _ := msg.([]byte)
	if raw == nil || !strings.HasPrefix(ctx.Key(), "id:") {
		// A tombstone, or the copy keyed by url: each put is landed from
		// its id-keyed record, one partition, so the sink's id check
		// (per partition) stores it once.
		return
	}
	v, err := codecs.JSON[codecs.QuestionnaireRecord]{}.Decode(raw)
	if err != nil {
		p.deadLetter(ctx, "questionnaire", dlq.ClassDecode, raw, err)
		return
	}
	q := v.(codecs.QuestionnaireRecord)
	if err := q.Validate(); err != nil {
		p.deadLetter(ctx, "questionnaire", dlq.ClassValidate, raw, err)
		return
	}
	row, err := QuestionnaireAuditRow(q, p.source(ctx))
	p.add(ctx, "questionnaire", AuditEvents, raw, row, err)
}

func (p *processor) onDead(ctx goka.Context, msg any) {
	raw, _ := msg.([]byte)
	p.add(ctx, "dlq", DLQEvents, raw, dlqRow(ctx, p.source(ctx), raw), nil)
}

// add hands a row to the sink; the record's offset is committed when the
// sink has the row in ClickHouse. A row ClickHouse cannot store goes to the DLQ.
func (p *processor) onEnrolment(ctx goka.Context, msg any) {
	raw, _ := msg.([]byte)
	v, err := codecs.JSON[codecs.Enrolment]{}.Decode(raw)
	if err != nil {
		p.deadLetter(ctx, "enrolment", dlq.ClassDecode, raw, err)
		return
	}
	row, err := EnrolmentRow(v.(codecs.Enrolment), p.source(ctx))
	p.add(ctx, "enrolment", Enrolments, raw, row, err)
	if err == nil {
		audit, err := EnrolmentAuditRow(v.(codecs.Enrolment), p.source(ctx))
		p.add(ctx, "enrolment", AuditEvents, raw, audit, err)
	}
}

func (p *processor) add(ctx goka.Context, input string, t *chsink.Table, raw []byte, row chsink.Row, convErr error) {
	if convErr != nil {
		p.deadLetter(ctx, input, dlq.ClassStore, raw, convErr)
		return
	}
	commit := ctx.DeferCommit()
	if err := p.deps.Sink.Add(ctx.Context(), t, row, commit); err != nil {
		commit(err) // stopping: the record is read again next time
	}
}

func (p *processor) deadLetter(ctx goka.Context, input, class string, raw []byte, err error) {
	if input == "dlq" {
		return // never loop a dead letter back
	}
	p.dropped.WithLabelValues(input, class).Inc()
	p.deps.Log.Debug("record dead-lettered", "input", input, "class", class, "reason", err.Error(),
		"partition", ctx.Partition(), "offset", ctx.Offset())
	dlq.Send(ctx, p.names.DLQ, raw, class, err)
}

// Rejecter returns the sink's RejectFunc: it records on epro-dlq, through
// emitter (a goka emitter of names.DLQ), that a row the ClickHouse client
// refused was dropped: the source topic, partition and offset in the headers
// locate the original record, which stays on its topic.
func Rejecter(emitter *goka.Emitter, group string) chsink.RejectFunc {
	return func(ctx context.Context, row chsink.Row, reason error) error {
		hdr := dlq.Headers(dlq.ClassStore, reason.Error(), group, row.Topic, row.Partition, row.Offset, time.Now())
		promise, err := emitter.EmitWithHeaders(row.Key, []byte{}, hdr)
		if err != nil {
			return err
		}
		done := make(chan error, 1)
		promise.Then(func(err error) { done <- err })
		select {
		case err := <-done:
			return err
		case <-ctx.Done():
			return errors.Join(ctx.Err(), errors.New("warehouse: dead-letter not confirmed"))
		}
	}
}
