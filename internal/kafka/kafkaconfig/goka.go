package kafkaconfig

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"

	"github.com/eprostream/eprostream/internal/kafka/orderedcommit"
	"github.com/eprostream/eprostream/internal/kafka/tablestore"
)

// GokaOptions returns the processor options every eprostream group uses:
// sarama configured by Sarama (acks=all, idempotent producer, oldest offset,
// Kafka 4 protocol) instead of goka's global defaults, topics created by
// `eprostream migrate` only (a missing topic is an error, not a surprise
// topic with wrong settings), local table storage under stateDir with
// batched writes (tablestore.Builder), and goka's log lines at debug level
// of log; empty records are passed to callbacks.
func GokaOptions(c Conn, clientID, stateDir string, log *slog.Logger) []goka.ProcessorOption {
	cfg := c.ProcessorSarama(clientID)
	return []goka.ProcessorOption{
		goka.WithClientID(clientID),
		goka.WithProducerBuilder(goka.ProducerBuilderWithConfig(cfg)),
		goka.WithConsumerGroupBuilder(orderedGroups(cfg)),
		goka.WithConsumerSaramaBuilder(goka.SaramaConsumerBuilderWithConfig(cfg)),
		goka.WithTopicManagerBuilder(goka.TopicManagerBuilderWithConfig(cfg, topicManagerConfig(c))),
		goka.WithStorageBuilder(tablestore.Builder(filepath.Join(stateDir, "processor"))),
		goka.WithLogger(gokaLogger{log}),
		// An empty record is bad input like any other: it must reach the
		// callback and the DLQ, not be dropped silently (goka's default).
		goka.WithNilHandling(goka.NilProcess),
	}
}

// ProcessorRetries attempts, processorBackoff apart (100 ms doubling to
// processorBackoffMax), are how long a processor's producer keeps retrying
// a record Kafka does not take: ProcessorOutage in all.
const (
	ProcessorRetries    = 1000
	processorBackoffMax = 2 * time.Second
)

// ProcessorOutage is the Kafka outage a processor's outputs wait out in
// order: the sum of processorBackoff over ProcessorRetries (about 33 min).
var ProcessorOutage = func() time.Duration {
	var d time.Duration
	for i := 0; i < ProcessorRetries; i++ {
		d += processorBackoff(i, ProcessorRetries)
	}
	return d
}()

func processorBackoff(retries, _ int) time.Duration {
	return min(100*time.Millisecond<<min(retries, 5), processorBackoffMax)
}

// ProcessorSarama is Sarama for goka processors: their producer retries a
// record until Kafka takes it, through an outage of up to ProcessorOutage.
// sarama keeps a partition's records in order while it retries, but once
// one record has used up its retries it reports that record failed and
// goes on with the later ones, which have retries left: those would land
// before the failed record's second copy, sent after the group restarts,
// and a subject's reports would be folded out of order (a streak or a
// worsening rule firing on another report). With the budget above the
// whole outage, no record fails while a later one succeeds. Emitters and
// the gateway keep the short budget of Sarama: a request is answered 503
// in seconds, and its client retries it.
func (c Conn) ProcessorSarama(clientID string) *sarama.Config {
	cfg := c.Sarama(clientID)
	cfg.Producer.Retry.Max = ProcessorRetries
	cfg.Producer.Retry.BackoffFunc = processorBackoff
	// A record whose partition leader cannot be looked up is failed at
	// once, without its retries: the lookup must outlast the outage too.
	cfg.Metadata.Retry.Max = ProcessorRetries
	cfg.Metadata.Retry.BackoffFunc = processorBackoff
	return cfg
}

// ViewOptions is GokaOptions for goka views.
func ViewOptions(c Conn, clientID, stateDir string, log *slog.Logger) []goka.ViewOption {
	cfg := c.Sarama(clientID)
	return []goka.ViewOption{
		goka.WithViewClientID(clientID),
		goka.WithViewConsumerSaramaBuilder(goka.SaramaConsumerBuilderWithConfig(cfg)),
		goka.WithViewTopicManagerBuilder(goka.TopicManagerBuilderWithConfig(cfg, topicManagerConfig(c))),
		goka.WithViewStorageBuilder(tablestore.Builder(filepath.Join(stateDir, "view"))),
		goka.WithViewLogger(gokaLogger{log}),
		goka.WithViewAutoReconnect(),
	}
}

// EmitterOptions is GokaOptions for goka emitters.
func EmitterOptions(c Conn, clientID string, log *slog.Logger) []goka.EmitterOption {
	cfg := c.Sarama(clientID)
	return []goka.EmitterOption{
		goka.WithEmitterClientID(clientID),
		goka.WithEmitterProducerBuilder(goka.ProducerBuilderWithConfig(cfg)),
		goka.WithEmitterTopicManagerBuilder(goka.TopicManagerBuilderWithConfig(cfg, topicManagerConfig(c))),
		goka.WithEmitterLogger(gokaLogger{log}),
	}
}

func topicManagerConfig(c Conn) *goka.TopicManagerConfig {
	tm := goka.NewTopicManagerConfig()
	// goka checks an existing table's replication against this; it never
	// creates a topic (`eprostream migrate` does).
	tm.Table.Replication = max(c.Replication, 1)
	tm.Stream.Replication = max(c.Replication, 1)
	tm.NoCreate = true
	tm.MismatchBehavior = goka.TMConfigMismatchBehaviorFail
	return tm
}

// gokaLogger sends goka's logs to slog at debug level.
type gokaLogger struct{ log *slog.Logger }

func (l gokaLogger) Print(v ...interface{})   { l.log.Debug(fmt.Sprint(v...), "component", "goka") }
func (l gokaLogger) Println(v ...interface{}) { l.log.Debug(fmt.Sprint(v...), "component", "goka") }
func (l gokaLogger) Printf(f string, v ...interface{}) {
	l.log.Debug(fmt.Sprintf(f, v...), "component", "goka")
}

// orderedGroups builds goka's consumer groups with in-order commits (see
// package orderedcommit for why goka needs them).
func orderedGroups(cfg *sarama.Config) goka.ConsumerGroupBuilder {
	build := goka.ConsumerGroupBuilderWithConfig(cfg)
	return func(brokers []string, group, clientID string) (sarama.ConsumerGroup, error) {
		g, err := build(brokers, group, clientID)
		if err != nil {
			return nil, err
		}
		return orderedcommit.Wrap(g), nil
	}
}
