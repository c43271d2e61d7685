package kafkaconfig_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/eprostream/eprostream/internal/connect"
	"github.com/eprostream/eprostream/internal/kafka/kafkaconfig"
	"github.com/eprostream/eprostream/internal/testenv"

	"github.com/eprostream/eprostream/internal/kafka/topics"
)

func TestSaramaHasDeliveryGuarantees(t *testing.T) {
	c := kafkaconfig.Sarama("x", time.Second)
	if c.Producer.RequiredAcks != sarama.WaitForAll || !c.Producer.Idempotent ||
		c.Consumer.Offsets.Initial != sarama.OffsetOldest || !c.Version.IsAtLeast(sarama.V2_1_0_0) {
		t.Fatalf("config lacks a guarantee: acks=%v idempotent=%v initial=%v version=%v",
			c.Producer.RequiredAcks, c.Producer.Idempotent, c.Consumer.Offsets.Initial, c.Version)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

// A processor's producer and its leader lookups retry through a long
// outage (TestFaultProcessorOutputsStayInOrderThroughAnOutage shows why).
func TestProcessorSaramaOutlastsAnOutage(t *testing.T) {
	c := kafkaconfig.Conn{DialTimeout: time.Second}.ProcessorSarama("x")
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	var producer, metadata time.Duration
	for i := range c.Producer.Retry.Max {
		producer += c.Producer.Retry.BackoffFunc(i, c.Producer.Retry.Max)
	}
	for i := range c.Metadata.Retry.Max {
		metadata += c.Metadata.Retry.BackoffFunc(i, c.Metadata.Retry.Max)
	}
	if producer < 30*time.Minute || metadata < 30*time.Minute || kafkaconfig.ProcessorOutage < 30*time.Minute {
		t.Fatalf("a processor gives up after %s (producer) / %s (leader lookup), want 30 min or more", producer, metadata)
	}
	if short := kafkaconfig.Sarama("x", time.Second); short.Producer.Retry.Max >= kafkaconfig.ProcessorRetries {
		t.Fatalf("emitters retry %d times: a request would wait out the outage instead of failing", short.Producer.Retry.Max)
	}
}

// Records produced with acks=all through the idempotent producer come back,
// in order per key, from a consumer group that starts at the oldest offset.
func TestProduceConsumeRoundTrip(t *testing.T) {
	cfg := testenv.Kafka(t)
	admin, err := connect.KafkaAdmin(cfg, "kafkaconfig-test")
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	topic := topics.NewNames(cfg.TopicPrefix).Submissions
	if err := topics.Migrate(context.Background(), admin, topics.Catalogue(cfg.TopicPrefix, 3, 1)[:1],
		slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatal(err)
	}

	producer, err := sarama.NewSyncProducer(cfg.KafkaBrokers, kafkaconfig.Sarama("kafkaconfig-test", cfg.DialTimeout))
	if err != nil {
		t.Fatal(err)
	}
	const n = 300
	for i := 0; i < n; i++ {
		_, _, err := producer.SendMessage(&sarama.ProducerMessage{
			Topic: topic, Key: sarama.StringEncoder(fmt.Sprintf("subject-%d", i%7)),
			Value: sarama.StringEncoder(fmt.Sprintf("%d", i)),
		})
		if err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	if err := producer.Close(); err != nil {
		t.Fatal(err)
	}

	group, err := sarama.NewConsumerGroup(cfg.KafkaBrokers, cfg.TopicPrefix+"roundtrip",
		kafkaconfig.Sarama("kafkaconfig-test", cfg.DialTimeout))
	if err != nil {
		t.Fatal(err)
	}
	defer group.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	h := &collector{want: n, cancel: cancel, lastByKey: map[string]int{}}
	for ctx.Err() == nil {
		if err := group.Consume(ctx, []string{topic}, h); err != nil && ctx.Err() == nil {
			t.Fatal(err)
		}
	}
	if h.got != n {
		t.Fatalf("consumed %d records, want %d", h.got, n)
	}
	if h.disorder != "" {
		t.Fatal(h.disorder)
	}
}

type collector struct {
	mu        sync.Mutex // claims of several partitions run at once
	want, got int
	cancel    context.CancelFunc
	lastByKey map[string]int
	disorder  string
}

func (c *collector) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (c *collector) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (c *collector) ConsumeClaim(s sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for msg := range claim.Messages() {
		c.mu.Lock()
		var v int
		fmt.Sscan(string(msg.Value), &v)
		if last, ok := c.lastByKey[string(msg.Key)]; ok && v <= last {
			c.disorder = fmt.Sprintf("key %s: %d after %d", msg.Key, v, last)
		}
		c.lastByKey[string(msg.Key)] = v
		s.MarkMessage(msg, "")
		c.got++
		if c.got == c.want {
			c.cancel()
		}
		c.mu.Unlock()
	}
	return nil
}
