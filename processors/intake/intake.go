package intake

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/eprostream/eprostream/catalog"
	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/internal/kafka/topics"
	"github.com/eprostream/eprostream/internal/logging"
	"github.com/eprostream/eprostream/processors/internal/dlq"
	"github.com/eprostream/eprostream/processors/internal/group"
)

// Group is the group name before the topic prefix.
const Group = "intake"

// Deps are what the group needs besides Kafka.
type Deps struct {
	// Catalogue is the study catalogue every gateway also checks against;
	// nil: the open catalogue (every study and site, built-in instruments).
	Catalogue *catalog.Catalogue
	Log       *slog.Logger
	Registry  prometheus.Registerer // may be nil
}

type processor struct {
	names   topics.Names
	cat     *catalog.Catalogue
	log     *slog.Logger
	clean   prometheus.Counter
	dropped *prometheus.CounterVec
}

// graph returns the group graph for names and the metrics New registers.
func graph(names topics.Names, deps Deps) (*goka.GroupGraph, []prometheus.Collector) {
	p := &processor{
		names: names,
		cat:   deps.Catalogue,
		log:   deps.Log,
		clean: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "eprostream", Subsystem: "intake", Name: "clean_total",
			Help: "Submissions written to epro-clean.",
		}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "eprostream", Subsystem: "intake", Name: "dlq_total",
			Help: "Submissions sent to epro-dlq, by failure class.",
		}, []string{"class"}),
	}
	collectors := []prometheus.Collector{p.clean, p.dropped}
	return goka.DefineGroup(goka.Group(topics.Group(names.Prefix, Group)),
		goka.Input(goka.Stream(names.Submissions), new(codec.Bytes), p.process),
		goka.Output(goka.Stream(names.Clean), codecs.JSON[codecs.CleanSubmission]{}),
		goka.Output(goka.Stream(names.DLQ), new(codec.Bytes)),
	), collectors
}

// Config is where the group runs.
type Config = group.Config

// New returns the intake processor; pass goka.WithTester in tests. Its metrics
// are registered with deps.Registry here, once: a second New on the same
// registry is an error.
func New(cfg Config, deps Deps, opts ...goka.ProcessorOption) (*goka.Processor, error) {
	if err := cfg.Validate("intake"); err != nil {
		return nil, err
	}
	deps.Log = logging.OrDiscard(deps.Log)
	if deps.Catalogue == nil {
		deps.Catalogue, _ = catalog.Load("")
	}
	g, collectors := graph(cfg.Names, deps)
	if err := group.Register("intake", deps.Registry, collectors...); err != nil {
		return nil, err
	}
	p, err := goka.NewProcessor(cfg.Brokers, g, opts...)
	if err != nil {
		return nil, fmt.Errorf("intake: %w", err)
	}
	return p, nil
}

func (p *processor) process(ctx goka.Context, msg any) {
	raw, _ := msg.([]byte)
	c, err := Clean(p.cat, raw, ctx.Timestamp())
	if err != nil {
		class := dlq.ClassValidate
		var fe codecs.FieldErrors
		if !errors.As(err, &fe) {
			class = dlq.ClassDecode
		}
		p.dropped.WithLabelValues(class).Inc()
		p.log.Debug("submission dead-lettered", "class", class, "reason", err.Error(),
			"partition", ctx.Partition(), "offset", ctx.Offset())
		dlq.Send(ctx, p.names.DLQ, raw, class, err)
		return
	}
	p.clean.Inc()
	ctx.Emit(goka.Stream(p.names.Clean), c.SubjectID, c)
}
