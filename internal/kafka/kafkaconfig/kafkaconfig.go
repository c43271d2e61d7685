// Package kafkaconfig builds the sarama configuration every eprostream client
// uses, with the delivery guarantees of docs/architecture.md: acks=all, an idempotent
// producer with retries, consumers that start from the oldest offset, the
// protocol version of the brokers we run against, and the connection's
// security (TLS, SASL) from one Conn.
package kafkaconfig

import (
	"crypto/tls"
	"time"

	"github.com/IBM/sarama"
)

// ProtocolVersion is the Kafka protocol version spoken. Kafka 4.x dropped
// the protocol versions older than 2.1, and sarama speaks what its Version
// names, so it must be at least that and never above the broker's.
func ProtocolVersion() sarama.KafkaVersion { return sarama.V4_0_0_0 }

// Conn is how every Kafka client of a process connects: the one place its
// connection settings live. Every client the project makes (goka
// processors, views and emitters, admin clients, readers) takes its sarama
// configuration from Conn.Sarama.
type Conn struct {
	Brokers     []string
	DialTimeout time.Duration
	// Replication is the replication factor processors expect of their
	// tables (goka refuses a table that differs); 0 means 1.
	Replication int
	// TLS, when set, encrypts every connection to the brokers and verifies
	// them (and presents a client certificate, if it holds one).
	TLS *tls.Config
	// SASL authenticates every connection; its zero value does not.
	SASL SASL
}

// SASL mechanisms a Conn can authenticate with.
const (
	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
)

// SASL is a SASL login; Mechanism "" means none.
type SASL struct {
	Mechanism string // PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512
	Username  string
	Password  string
}

// Sarama returns the sarama configuration of a client named clientID.
func (c Conn) Sarama(clientID string) *sarama.Config {
	s := sarama.NewConfig()
	s.ClientID = clientID
	s.Version = ProtocolVersion()
	s.Net.DialTimeout = c.DialTimeout
	if s.Net.DialTimeout <= 0 {
		s.Net.DialTimeout = 5 * time.Second
	}
	if c.TLS != nil {
		s.Net.TLS.Enable = true
		s.Net.TLS.Config = c.TLS.Clone()
	}
	if c.SASL.Mechanism != "" {
		s.Net.SASL.Enable = true
		s.Net.SASL.Handshake = true
		s.Net.SASL.User = c.SASL.Username
		s.Net.SASL.Password = c.SASL.Password
		switch c.SASL.Mechanism {
		case SASLScramSHA256:
			s.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA256
			s.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return newSCRAM(sha256Hash) }
		case SASLScramSHA512:
			s.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA512
			s.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return newSCRAM(sha512Hash) }
		default:
			s.Net.SASL.Mechanism = sarama.SASLTypePlaintext
		}
	}

	// A record is only acknowledged to our callers once every in-sync replica
	// has it; idempotence keeps retries from writing it twice.
	s.Producer.RequiredAcks = sarama.WaitForAll
	s.Producer.Idempotent = true
	s.Net.MaxOpenRequests = 1 // required by sarama for idempotence
	s.Producer.Retry.Max = 10
	s.Producer.Retry.Backoff = 200 * time.Millisecond
	s.Producer.Return.Successes = true
	s.Producer.Return.Errors = true
	s.Producer.Partitioner = sarama.NewHashPartitioner // key = subject_id keeps a subject ordered
	s.Producer.Compression = sarama.CompressionLZ4

	// New groups read everything, never only what arrives after they start.
	s.Consumer.Offsets.Initial = sarama.OffsetOldest
	s.Consumer.Return.Errors = true
	s.Metadata.Retry.Max = 10
	s.Metadata.Retry.Backoff = 500 * time.Millisecond
	return s
}

// Sarama returns the configuration of a plaintext, unauthenticated client:
// Conn{DialTimeout: dialTimeout}.Sarama(clientID), for the local stack's
// tests and benchmarks. Everything else takes a Conn from the process's
// configuration.
func Sarama(clientID string, dialTimeout time.Duration) *sarama.Config {
	return Conn{DialTimeout: dialTimeout}.Sarama(clientID)
}
