// Package webhook is the goka group that hands every alert to the webhook
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
	"github.com/eprostream/eprostream/webhooks"
)

// Group is the group name before the topic prefix.
const Group = "webhooks"

// Deps are what the group needs besides Kafka.
type Deps struct {
	Deliverer *webhooks.Deliverer
	Log       *slog.Logger
}

// Graph returns the group graph for names.
func Graph(names topics.Names, deps Deps) *goka.GroupGraph {
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

// New returns the webhook processor.
func New(brokers []string, names topics.Names, deps Deps, opts ...goka.ProcessorOption) (*goka.Processor, error) {
	p, err := goka.NewProcessor(brokers, Graph(names, deps), opts...)
	if err != nil {
		return nil, fmt.Errorf("webhook: %w", err)
	}
	return p, nil
}
