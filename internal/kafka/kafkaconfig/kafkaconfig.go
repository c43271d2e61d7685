// Package kafkaconfig builds the sarama configuration every eprostream client
// uses, with the delivery guarantees of docs/architecture.md: acks=all, an idempotent
// producer with retries, consumers that start from the oldest offset, and the
// protocol version of the brokers we run against.
package kafkaconfig

import (
	"time"

	"github.com/IBM/sarama"
)

// ProtocolVersion is the Kafka protocol version spoken. Kafka 4.x dropped
// the protocol versions older than 2.1, and sarama speaks what its Version
// names, so it must be at least that and never above the broker's.
func ProtocolVersion() sarama.KafkaVersion { return sarama.V4_0_0_0 }

// Sarama returns a fresh configuration for clientID.
// Conn is how every Kafka client of a process connects: the one place its
// connection settings live.
type Conn struct {
	Brokers     []string
	DialTimeout time.Duration
	// Replication is the replication factor processors expect of their
	// tables (goka refuses a table that differs); 0 means 1.
	Replication int
}

// Sarama returns the sarama configuration of a client named clientID.
func (c Conn) Sarama(clientID string) *sarama.Config { return Sarama(clientID, c.DialTimeout) }

func Sarama(clientID string, dialTimeout time.Duration) *sarama.Config {
	c := sarama.NewConfig()
	c.ClientID = clientID
	c.Version = ProtocolVersion()
	c.Net.DialTimeout = dialTimeout

	// A record is only acknowledged to our callers once every in-sync replica
	// has it; idempotence keeps retries from writing it twice.
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Producer.Idempotent = true
	c.Net.MaxOpenRequests = 1 // required by sarama for idempotence
	c.Producer.Retry.Max = 10
	c.Producer.Retry.Backoff = 200 * time.Millisecond
	c.Producer.Return.Successes = true
	c.Producer.Return.Errors = true
	c.Producer.Partitioner = sarama.NewHashPartitioner // key = subject_id keeps a subject ordered
	c.Producer.Compression = sarama.CompressionLZ4

	// New groups read everything, never only what arrives after they start.
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	c.Consumer.Return.Errors = true
	c.Metadata.Retry.Max = 10
	c.Metadata.Retry.Backoff = 500 * time.Millisecond
	return c
}
