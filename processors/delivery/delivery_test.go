package delivery_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/internal/kafka/consumerlag"
	"github.com/eprostream/eprostream/internal/kafka/kafkaconfig"
	"github.com/eprostream/eprostream/internal/kafka/topics"
	"github.com/eprostream/eprostream/internal/testenv"
	"github.com/eprostream/eprostream/processors/delivery"
	"github.com/eprostream/eprostream/webhooks"
)

// Alerts on Kafka reach a subscriber signed and in order, and the group's
// offsets are committed once they were delivered.
func TestAlertsReachSubscribersFromKafka(t *testing.T) {
	cfg := testenv.KafkaTopics(t, 1)
	rdb, prefix := testenv.Redis(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	names := topics.NewNames(cfg.TopicPrefix)
	store := webhooks.NewStore(rdb, prefix)
	var mu sync.Mutex
	var got []string
	var secret string
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := webhooks.Verify(secret, r.Header, body, time.Now(), webhooks.DefaultTolerance); err != nil {
			t.Errorf("signature: %v", err)
		}
		mu.Lock()
		got = append(got, r.Header.Get(webhooks.HeaderAlertID))
		mu.Unlock()
	}))
	defer receiver.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var err error
	if _, secret, err = store.Create(ctx, webhooks.Spec{Name: "nurses", URL: receiver.URL, Studies: []string{"ONC-301"}, MinSeverity: "warning"}); err != nil {
		t.Fatal(err)
	}
	deliverer, err := webhooks.New(webhooks.Config{InitialBackoff: 10 * time.Millisecond}, webhooks.Deps{Store: store, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	proc, err := delivery.New(delivery.Config{Brokers: cfg.KafkaBrokers, Names: names}, delivery.Deps{Deliverer: deliverer, Log: log},
		kafkaconfig.GokaOptions(cfg.Kafka(), "webhook-test", filepath.Join(t.TempDir(), "p"), log)...)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = deliverer.Run(ctx) }()
	go func() { defer wg.Done(); _ = proc.Run(ctx) }()
	defer wg.Wait()
	defer cancel()

	producer, err := sarama.NewSyncProducer(cfg.KafkaBrokers, kafkaconfig.Sarama("webhook-test", cfg.DialTimeout))
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	for _, a := range []struct{ id, sev string }{{"a1", "urgent"}, {"a2", "info"}, {"a3", "warning"}, {"a4", "urgent"}} {
		b, _ := json.Marshal(codecs.Alert{V: 1, AlertID: a.id, RuleID: "r", Severity: a.sev, StudyID: "ONC-301", SiteID: "SITE-001",
			SubjectID: "S1", MessageID: "m", SubmittedAt: time.Now(), RaisedAt: time.Now()})
		if _, _, err := producer.SendMessage(&sarama.ProducerMessage{Topic: names.Alerts, Key: sarama.StringEncoder("S1"), Value: sarama.ByteEncoder(b)}); err != nil {
			t.Fatal(err)
		}
	}
	client, err := sarama.NewClient(cfg.KafkaBrokers, kafkaconfig.Sarama("webhook-test-lag", cfg.DialTimeout))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	lagAdmin, _ := sarama.NewClusterAdminFromClient(client)
	deadline := time.Now().Add(60 * time.Second)
	for {
		lag, err := consumerlag.Of(client, lagAdmin, topics.Group(cfg.TopicPrefix, delivery.Group), names.Alerts)
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if err == nil && lag == 0 && n == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 60 s: %d delivered, lag %d (%v)", n, lag, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if got[0] != "a1" || got[1] != "a3" || got[2] != "a4" {
		t.Fatalf("delivered %v, want a1 a3 a4 in order", got)
	}
}
