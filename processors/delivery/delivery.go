// Package delivery is the goka group that hands every alert to the webhook
// deliverer (package webhooks), committing an alert's offset only once it
// was delivered or dead-lettered for every subscription that wants it.
//
// Input: epro-alerts (codecs.Alert). No output, no table. Offsets advance
// in order (kafkaconfig's orderedcommit), so after a crash delivery starts
// again at the first alert not settled: at-least-once, and receivers drop
// repeats by alert id.
package delivery

import (
	"fmt"
	"log/slog"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"

	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/internal/kafka/topics"
	"github.com/eprostream/eprostream/internal/logging"
	"github.com/eprostream/eprostream/processors/internal/group"
	"github.com/eprostream/eprostream/webhooks"
)

// Group is the group name before the topic prefix.
const Group = "webhooks"

// Deps are what the group needs besides Kafka.
type Deps struct {
	Deliverer *webhooks.Deliverer
	Log       *slog.Logger
}

// graph returns the group graph for names (the Deliverer has the metrics).
func graph(names topics.Names, deps Deps) *goka.GroupGraph {
	return goka.DefineGroup(goka.Group(topics.Group(names.Prefix, Group)),
		goka.Input(goka.Stream(names.Alerts), new(codec.Bytes), func(ctx goka.Context, msg any) {
			raw, _ := msg.([]byte)
			v, err := codecs.JSON[codecs.Alert]{}.Decode(raw)
			if err != nil {
				// The subject group wrote it; nothing a subscriber could use.
				deps.Log.Warn("undecodable alert skipped", "partition", ctx.Partition(), "offset", ctx.Offset())
				return
			}
			commit := ctx.DeferCommit()
			if err := deps.Deliverer.Enqueue(ctx.Context(), v.(codecs.Alert), func() { commit(nil) }); err != nil {
				commit(err) // stopping, or no subscription list: the alert is read again next time
			}
		}),
	)
}

// Config is where the group runs.
type Config = group.Config

// New returns the delivery processor; pass goka.WithTester in tests.
func New(cfg Config, deps Deps, opts ...goka.ProcessorOption) (*goka.Processor, error) {
	if err := cfg.Validate("delivery"); err != nil {
		return nil, err
	}
	if deps.Deliverer == nil {
		return nil, fmt.Errorf("delivery: Deps.Deliverer is required")
	}
	deps.Log = logging.OrDiscard(deps.Log)
	p, err := goka.NewProcessor(cfg.Brokers, graph(cfg.Names, deps), opts...)
	if err != nil {
		return nil, fmt.Errorf("delivery: %w", err)
	}
	return p, nil
}
