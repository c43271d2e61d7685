package testenv

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/eprostream/eprostream/internal/config"
	"github.com/eprostream/eprostream/internal/connect"

	"github.com/eprostream/eprostream/internal/kafka/topics"
)

// KafkaTopics is Kafka with eprostream's topics created under the test's
// prefix, partitions each.
func KafkaTopics(t testing.TB, partitions int) config.Config {
	t.Helper()
	cfg := Kafka(t)
	admin, err := connect.KafkaAdmin(cfg, "devstack-topics")
	if err != nil {
		t.Fatalf("devstack: %v", err)
	}
	defer admin.Close()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := topics.Migrate(context.Background(), admin, topics.Catalogue(cfg.TopicPrefix, partitions, 1), log); err != nil {
		t.Fatalf("devstack: %v", err)
	}
	return cfg
}
