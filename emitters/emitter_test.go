package emitters_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/emitters"
	"github.com/eprostream/eprostream/internal/connect"
	"github.com/eprostream/eprostream/internal/kafka/kafkaconfig"
	"github.com/eprostream/eprostream/internal/testenv"

	"github.com/eprostream/eprostream/internal/kafka/topics"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func submission(id string) codecs.Submission {
	return codecs.Submission{MessageID: id, StudyID: "ONC-301", SiteID: "SITE-012", SubjectID: "ONC-301-012-0042",
		Instrument: "PRO-CTCAE", SubmittedAt: time.Now().UTC().Format(time.RFC3339),
		Items: []codecs.Item{{Code: "PAIN_SEVERITY", Value: codecs.Number(2)}}}
}

func TestSubmissionEmitterAgainstKafka(t *testing.T) {
	cfg := testenv.Kafka(t)
	admin, err := connect.KafkaAdmin(cfg, "emitters-test")
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := topics.Migrate(context.Background(), admin, topics.Catalogue(cfg.TopicPrefix, 3, 1), quiet); err != nil {
		t.Fatal(err)
	}
	em, err := emitters.NewSubmissionEmitter(cfg.Emitters(), emitters.Deps{Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := em.Emit(ctx, submission("m-1")); err != nil {
		t.Fatal(err)
	}
	bad := submission("m-2")
	bad.SubjectID = ""
	var fe codecs.FieldErrors
	if err := em.Emit(ctx, bad); !errors.As(err, &fe) || !strings.Contains(err.Error(), "subject_id: is required") {
		t.Fatalf("invalid submission: %v", err)
	}
	errs := em.EmitBatch(ctx, []codecs.Submission{submission("m-3"), bad, submission("m-4")})
	if errs[0] != nil || errs[1] == nil || errs[2] != nil {
		t.Fatalf("batch results %v", errs)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := em.Emit(cancelled, submission("m-5")); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled emit: %v", err)
	}
	if err := em.Close(); err != nil {
		t.Fatal(err)
	}

	// m-1, m-3, m-4 (and perhaps m-5, sent before the cancel was seen) are stored.
	consumer, err := sarama.NewConsumer(cfg.KafkaBrokers, kafkaconfig.Sarama("emitters-test", cfg.DialTimeout))
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	ids := map[string]bool{}
	for p := int32(0); p < 3; p++ {
		pc, err := consumer.ConsumePartition(topics.NewNames(cfg.TopicPrefix).Submissions, p, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
		for pc.HighWaterMarkOffset() > 0 {
			m := <-pc.Messages()
			s, err := codecs.DecodeSubmission(m.Value, time.Now())
			if err != nil || string(m.Key) != s.SubjectID {
				t.Fatalf("stored record: key %s, %v", m.Key, err)
			}
			ids[s.MessageID] = true
			if m.Offset >= pc.HighWaterMarkOffset()-1 {
				break
			}
		}
		pc.Close()
	}
	if !ids["m-1"] || !ids["m-3"] || !ids["m-4"] || ids["m-2"] {
		t.Fatalf("stored ids %v", ids)
	}
}

func TestEmitterNeedsMigratedTopics(t *testing.T) {
	cfg := testenv.Kafka(t)
	if _, err := emitters.NewSubmissionEmitter(cfg.Emitters(), emitters.Deps{Log: quiet}); err == nil {
		t.Fatal("an emitter for a topic that does not exist must fail at construction")
	}
}
