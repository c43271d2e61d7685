package devstack

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/eprostream/eprostream/config"
	"github.com/eprostream/eprostream/connect"
	"github.com/eprostream/eprostream/migrate"
	"github.com/eprostream/eprostream/topics"
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
	if err := migrate.Topics(context.Background(), admin, topics.Catalogue(cfg.TopicPrefix, partitions, 1), log); err != nil {
		t.Fatalf("devstack: %v", err)
	}
	return cfg
}
