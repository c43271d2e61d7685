package emitters

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"

	"github.com/eprostream/eprostream/catalog"
	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/internal/kafka/kafkaconfig"
	"github.com/eprostream/eprostream/internal/kafka/topics"
	"github.com/eprostream/eprostream/internal/logging"
)

// rawEmitter wraps a goka emitter of raw bytes with ctx-aware waiting.
type rawEmitter struct {
	e *goka.Emitter
}

// Config is where an emitter sends. Programs outside eprostream build it
// themselves; every field but Brokers has a default.
type Config struct {
	Brokers     []string      // required
	TopicPrefix string        // the environment's topic prefix, as given to `eprostream migrate`
	DialTimeout time.Duration // each connection attempt; default 5 s
	ClientID    string        // default eprostream-emitter
	// TLS, when set, encrypts and verifies every connection to the brokers.
	TLS *tls.Config
	// SASL authenticates every connection; its zero value does not.
	SASL SASL
	// Catalogue checks each submission's study, site, instrument and items
	// before it is sent, as the gateway and intake do; nil: the open
	// catalogue (every study and site, the built-in instruments).
	Catalogue *catalog.Catalogue
}

// SASL is a Kafka SASL login; Mechanism is PLAIN, SCRAM-SHA-256 or
// SCRAM-SHA-512, or "" for none.
type SASL struct {
	Mechanism string
	Username  string
	Password  string
}

func (c *Config) setDefaults() {
	if c.DialTimeout <= 0 {
		c.DialTimeout = 5 * time.Second
	}
	if c.ClientID == "" {
		c.ClientID = "eprostream-emitter"
	}
	if c.Catalogue == nil {
		c.Catalogue, _ = catalog.Load("")
	}
}

// Validate says what is wrong with c (after defaults).
func (c Config) Validate() error {
	if len(c.Brokers) == 0 {
		return errors.New("emitters: config: Brokers is empty")
	}
	switch c.SASL.Mechanism {
	case "", kafkaconfig.SASLPlain, kafkaconfig.SASLScramSHA256, kafkaconfig.SASLScramSHA512:
	default:
		return fmt.Errorf("emitters: config: SASL mechanism %q is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512", c.SASL.Mechanism)
	}
	if c.SASL.Mechanism != "" && c.SASL.Username == "" {
		return errors.New("emitters: config: SASL needs a Username")
	}
	return nil
}

// Deps are an emitter's collaborators.
type Deps struct {
	Log *slog.Logger // nil discards
}

func (c Config) kafka() kafkaconfig.Conn {
	return kafkaconfig.Conn{Brokers: c.Brokers, DialTimeout: c.DialTimeout, TLS: c.TLS, SASL: kafkaconfig.SASL(c.SASL)}
}

func newRaw(cfg Config, topic string, deps Deps, opts ...goka.EmitterOption) (*rawEmitter, error) {
	cfg.setDefaults()
	tested := len(opts) > 0 // goka's tester never dials
	if err := cfg.Validate(); err != nil && !tested {
		return nil, err
	}
	if !tested { // check the topic exists now, not at the first send
		if err := topicExists(cfg, topic); err != nil {
			return nil, err
		}
	}
	all := append(kafkaconfig.EmitterOptions(cfg.kafka(), cfg.ClientID, logging.OrDiscard(deps.Log)), opts...)
	e, err := goka.NewEmitter(cfg.Brokers, goka.Stream(topic), new(codec.Bytes), all...)
	if err != nil {
		return nil, fmt.Errorf("emitters: %s: %w", topic, err)
	}
	return &rawEmitter{e: e}, nil
}

func topicExists(cfg Config, topic string) error {
	client, err := sarama.NewClient(cfg.Brokers, cfg.kafka().Sarama(cfg.ClientID))
	if err != nil {
		return fmt.Errorf("emitters: kafka at %v: %w", cfg.Brokers, err)
	}
	defer client.Close()
	if _, err := client.Partitions(topic); err != nil {
		return fmt.Errorf("emitters: topic %s: %w (run `eprostream migrate`)", topic, err)
	}
	return nil
}

// send starts producing value under key and returns a channel that yields
// the broker's answer.
func (r *rawEmitter) send(key string, value []byte) <-chan error {
	done := make(chan error, 1)
	p, err := r.e.Emit(key, value)
	if err != nil {
		done <- err
		return done
	}
	p.Then(func(err error) { done <- err })
	return done
}

func wait(ctx context.Context, done <-chan error) error {
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		// The record may still be stored; a retry with the same message_id is
		// deduplicated downstream.
		return ctx.Err()
	}
}

func (r *rawEmitter) close() error {
	if err := r.e.Finish(); err != nil {
		return fmt.Errorf("emitters: flush: %w", err)
	}
	return nil
}

// SubmissionEmitter produces submissions to epro-submissions.
type SubmissionEmitter struct {
	raw *rawEmitter
	cat *catalog.Catalogue
	now func() time.Time
}

// NewSubmissionEmitter returns an emitter for the submissions topic of cfg.
// opts are for tests (goka.WithEmitterTester).
func NewSubmissionEmitter(cfg Config, deps Deps, opts ...goka.EmitterOption) (*SubmissionEmitter, error) {
	cfg.setDefaults()
	r, err := newRaw(cfg, topics.NewNames(cfg.TopicPrefix).Submissions, deps, opts...)
	if err != nil {
		return nil, err
	}
	return &SubmissionEmitter{raw: r, cat: cfg.Catalogue, now: time.Now}, nil
}

// Emit validates s and returns once Kafka has it (acks=all), or ctx ends.
// A *codecs.FieldErrors says what is wrong with s; nothing is sent then.
func (e *SubmissionEmitter) Emit(ctx context.Context, s codecs.Submission) error {
	b, err := e.encode(s)
	if err != nil {
		return err
	}
	return wait(ctx, e.raw.send(s.SubjectID, b))
}

// EmitRawAsync starts sending value under key without validating it and
// returns at once; done receives the broker's answer, on another goroutine.
// For load generators that keep many records in flight.
func (e *SubmissionEmitter) EmitRawAsync(key string, value []byte, done func(error)) {
	p, err := e.raw.e.Emit(key, value)
	if err != nil {
		done(err)
		return
	}
	p.Then(done)
}

// EmitBatch validates and sends every submission, then waits for all of
// them. The result has one entry per submission: nil when Kafka has it.
func (e *SubmissionEmitter) EmitBatch(ctx context.Context, batch []codecs.Submission) []error {
	errs := make([]error, len(batch))
	pending := make([]<-chan error, len(batch))
	for i, s := range batch {
		b, err := e.encode(s)
		if err != nil {
			errs[i] = err
			continue
		}
		pending[i] = e.raw.send(s.SubjectID, b)
	}
	for i, ch := range pending {
		if ch != nil {
			errs[i] = wait(ctx, ch)
		}
	}
	return errs
}

func (e *SubmissionEmitter) encode(s codecs.Submission) ([]byte, error) {
	var errs codecs.FieldErrors
	if err := s.Validate(e.now()); err != nil && !errors.As(err, &errs) {
		return nil, err
	}
	if errs = append(errs, e.cat.CheckSubmission(s)...); len(errs) > 0 {
		return nil, errs
	}
	b, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("emitters: encode: %w", err)
	}
	return b, nil
}

// Close flushes what is in flight and releases the producer.
func (e *SubmissionEmitter) Close() error { return e.raw.close() }

// CommandEmitter produces commands to epro-commands.
type CommandEmitter struct{ raw *rawEmitter }

// NewCommandEmitter returns an emitter for the commands topic of cfg.
func NewCommandEmitter(cfg Config, deps Deps, opts ...goka.EmitterOption) (*CommandEmitter, error) {
	r, err := newRaw(cfg, topics.NewNames(cfg.TopicPrefix).Commands, deps, opts...)
	if err != nil {
		return nil, err
	}
	return &CommandEmitter{raw: r}, nil
}

// Emit validates c and returns once Kafka has it, or ctx ends.
func (e *CommandEmitter) Emit(ctx context.Context, c codecs.Command) error {
	c.V = codecs.WireVersion
	if err := c.Validate(); err != nil {
		return err
	}
	b, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("emitters: encode: %w", err)
	}
	return wait(ctx, e.raw.send(c.SubjectID, b))
}

// Close flushes what is in flight and releases the producer.
func (e *CommandEmitter) Close() error { return e.raw.close() }

// QuestionnaireEmitter writes the Questionnaires studies add
// (epro-questionnaires).
type QuestionnaireEmitter struct{ raw *rawEmitter }

// NewQuestionnaireEmitter returns an emitter for the questionnaires topic of cfg.
func NewQuestionnaireEmitter(cfg Config, deps Deps, opts ...goka.EmitterOption) (*QuestionnaireEmitter, error) {
	r, err := newRaw(cfg, topics.NewNames(cfg.TopicPrefix).Questionnaires, deps, opts...)
	if err != nil {
		return nil, err
	}
	return &QuestionnaireEmitter{raw: r}, nil
}

// Emit validates q and writes it under key, returning once Kafka has it.
func (e *QuestionnaireEmitter) Emit(ctx context.Context, key string, q codecs.QuestionnaireRecord) error {
	q.V = codecs.WireVersion
	if err := q.Validate(); err != nil {
		return err
	}
	b, err := json.Marshal(q)
	if err != nil {
		return fmt.Errorf("emitters: encode: %w", err)
	}
	return wait(ctx, e.raw.send(key, b))
}

// Close flushes what is in flight and releases the producer.
func (e *QuestionnaireEmitter) Close() error { return e.raw.close() }

// EnrolmentEmitter writes the study registry's roster (epro-enrolments).
type EnrolmentEmitter struct{ raw *rawEmitter }

// NewEnrolmentEmitter returns an emitter for the enrolments topic of cfg.
func NewEnrolmentEmitter(cfg Config, deps Deps, opts ...goka.EmitterOption) (*EnrolmentEmitter, error) {
	r, err := newRaw(cfg, topics.NewNames(cfg.TopicPrefix).Enrolments, deps, opts...)
	if err != nil {
		return nil, err
	}
	return &EnrolmentEmitter{raw: r}, nil
}

// Emit validates e and returns once Kafka has it, or ctx ends.
func (e *EnrolmentEmitter) Emit(ctx context.Context, en codecs.Enrolment) error {
	en.V = codecs.WireVersion
	if err := en.Validate(); err != nil {
		return err
	}
	b, err := json.Marshal(en)
	if err != nil {
		return fmt.Errorf("emitters: encode: %w", err)
	}
	return wait(ctx, e.raw.send(en.SubjectID, b))
}

// Close flushes what is in flight and releases the producer.
func (e *EnrolmentEmitter) Close() error { return e.raw.close() }

// AuditEmitter writes operator actions to epro-audit.
type AuditEmitter struct{ raw *rawEmitter }

// NewAuditEmitter returns an emitter for the audit topic of cfg.
func NewAuditEmitter(cfg Config, deps Deps, opts ...goka.EmitterOption) (*AuditEmitter, error) {
	r, err := newRaw(cfg, topics.NewNames(cfg.TopicPrefix).Audit, deps, opts...)
	if err != nil {
		return nil, err
	}
	return &AuditEmitter{raw: r}, nil
}

// Emit validates a and returns once Kafka has it, or ctx ends. Sending the
// same event again (same AuditID) after an error is safe: the warehouse
// stores it once.
func (e *AuditEmitter) Emit(ctx context.Context, a codecs.AuditEvent) error {
	a.V = codecs.WireVersion
	if err := a.Validate(); err != nil {
		return err
	}
	b, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("emitters: encode: %w", err)
	}
	return wait(ctx, e.raw.send(a.Target, b))
}

// Close flushes what is in flight and releases the producer.
func (e *AuditEmitter) Close() error { return e.raw.close() }
