package topics_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/IBM/sarama"

	"github.com/eprostream/eprostream/internal/clickhouse/schema"
	"github.com/eprostream/eprostream/internal/connect"
	"github.com/eprostream/eprostream/internal/kafka/topics"
	"github.com/eprostream/eprostream/internal/testenv"
)

func TestTopicsCreatesCatalogueIdempotently(t *testing.T) {
	cfg := testenv.Kafka(t)
	admin, err := connect.KafkaAdmin(cfg, "migrate-test")
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	specs := topics.Catalogue(cfg.TopicPrefix, 3, 1)
	ctx := context.Background()

	for run := 1; run <= 2; run++ {
		if err := topics.Migrate(ctx, admin, specs, log); err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
	}
	all, err := admin.ListTopics()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range specs {
		d, ok := all[s.Name]
		if !ok {
			t.Fatalf("topic %s not created", s.Name)
		}
		if d.NumPartitions != 3 {
			t.Errorf("%s: %d partitions, want 3", s.Name, d.NumPartitions)
		}
	}
	entries, err := admin.DescribeConfig(sarama.ConfigResource{
		Type: sarama.TopicResource, Name: topics.NewNames(cfg.TopicPrefix).SubjectTable,
		ConfigNames: []string{"cleanup.policy"},
	})
	if err != nil || len(entries) != 1 || entries[0].Value != "compact" {
		t.Fatalf("subject table cleanup.policy: %+v, %v; want compact", entries, err)
	}
}

func TestTopicsRefusesMismatchedTopic(t *testing.T) {
	cfg := testenv.Kafka(t)
	admin, err := connect.KafkaAdmin(cfg, "migrate-test")
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx := context.Background()
	if err := topics.Migrate(ctx, admin, topics.Catalogue(cfg.TopicPrefix, 2, 1), log); err != nil {
		t.Fatal(err)
	}
	err = topics.Migrate(ctx, admin, topics.Catalogue(cfg.TopicPrefix, 4, 1), log)
	if !errors.Is(err, topics.ErrTopicMismatch) {
		t.Fatalf("want ErrTopicMismatch, got %v", err)
	}
	want := "topic " + topics.NewNames(cfg.TopicPrefix).Submissions + " [has 2 partitions, want 4]"
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not say %q", err, want)
	}
}

func TestClickHouseDatabaseIsIdempotent(t *testing.T) {
	conn, _ := testenv.ClickHouse(t)
	name := testenv.UniqueName(t)
	ctx := context.Background()
	t.Cleanup(func() { _ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name) })
	for run := 0; run < 2; run++ {
		if err := schema.CreateDatabase(ctx, conn, name); err != nil {
			t.Fatal(err)
		}
	}
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM system.databases WHERE name = ?", name).Scan(&n); err != nil || n != 1 {
		t.Fatalf("database %s: count %d, err %v", name, n, err)
	}
}

func TestClickHouseMigrationsApplyOnceAndIdempotently(t *testing.T) {
	conn, _ := testenv.ClickHouse(t)
	db := testenv.UniqueName(t)
	ctx := context.Background()
	t.Cleanup(func() { _ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db) })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for run := 0; run < 2; run++ {
		if err := schema.Migrate(ctx, conn, db, log); err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
	}
	migrations, err := schema.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	var recorded uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM "+db+".schema_migrations").Scan(&recorded); err != nil || int(recorded) != len(migrations) {
		t.Fatalf("schema_migrations holds %d rows (err %v), want %d", recorded, err, len(migrations))
	}
	for _, table := range []string{"submissions", "submission_ids", "alerts", "alert_ids", "dlq_events", "site_daily", "study_daily_symptoms"} {
		var n uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = ? AND name = ?", db, table).Scan(&n); err != nil || n != 1 {
			t.Errorf("table %s missing (err %v)", table, err)
		}
	}
}
