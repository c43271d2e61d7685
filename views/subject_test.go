package views_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/internal/kafka/kafkaconfig"
	"github.com/eprostream/eprostream/internal/kafka/topics"
	"github.com/eprostream/eprostream/internal/testenv"
	"github.com/eprostream/eprostream/views"
)

func TestSubjectsFollowsTheTable(t *testing.T) {
	cfg := testenv.KafkaTopics(t, 3)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	producer, err := sarama.NewSyncProducer(cfg.KafkaBrokers, kafkaconfig.Sarama("views-test", cfg.DialTimeout))
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	put := func(id string, reports int) {
		b, _ := json.Marshal(codecs.SubjectState{V: 1, StudyID: "ONC-301", SubjectID: id, Reports: reports})
		if _, _, err := producer.SendMessage(&sarama.ProducerMessage{Topic: topics.NewNames(cfg.TopicPrefix).SubjectTable,
			Key: sarama.StringEncoder(id), Value: sarama.ByteEncoder(b)}); err != nil {
			t.Fatal(err)
		}
	}
	put("ONC-301-001-0001", 1)

	v, err := views.NewSubjects(views.SubjectsConfig{Table: topics.NewNames(cfg.TopicPrefix).SubjectTable, StateDir: t.TempDir()}, views.SubjectsDeps{Kafka: cfg.Kafka(), Log: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- v.Run(ctx) }()
	defer func() { cancel(); <-done }()
	for deadline := time.Now().Add(30 * time.Second); !v.Recovered(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("view did not recover")
		}
	}
	if st, ok, err := v.Get("ONC-301-001-0001"); err != nil || !ok || st.Reports != 1 {
		t.Fatalf("Get = %+v, %v, %v", st, ok, err)
	}
	if _, ok, err := v.Get("ONC-301-001-9999"); err != nil || ok {
		t.Fatalf("unknown subject: found %v, err %v", ok, err)
	}
	if _, _, err := v.Get("../etc/passwd"); !errors.Is(err, views.ErrBadID) {
		t.Fatalf("malformed id: %v", err)
	}
	put("ONC-301-001-0001", 2) // the view follows later writes
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if st, _, _ := v.Get("ONC-301-001-0001"); st.Reports == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("view did not follow the table")
		}
	}
}
