// Package testenv gives tests the real Kafka, Redis and ClickHouse of the
// local stack (devstack/stack.sh, `make up`), each isolated per test: a topic
// prefix, a Redis key prefix and a ClickHouse database of its own, removed
// when the test ends. A service that does not answer fails the test with a
// message that says how to start it; nothing is skipped.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/redis/go-redis/v9"

	"github.com/eprostream/eprostream/internal/config"
	"github.com/eprostream/eprostream/internal/connect"
)

const hint = "start the local stack with `make up` (or point KAFKA_BROKERS, REDIS_ADDR and CLICKHOUSE_ADDR at running services)"

// Config returns the configuration from the environment, as the binary reads
// it. Under `go test -short` (make unit) it skips the test, saying why:
// integration tests run in `make test`.
func Config(t testing.TB) config.Config {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: needs the local stack; runs in `make test`, skipped under -short")
	}
	cfg, err := config.FromOSEnv()
	if err != nil {
		t.Fatalf("devstack: %v", err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("devstack: %v", err)
	}
	return cfg
}

var unsafeChars = regexp.MustCompile(`[^a-z0-9]+`)

// UniqueName returns a short name unique to this test run, made of lowercase
// letters, digits and '_': usable as a topic prefix, key prefix or database.
func UniqueName(t testing.TB) string {
	t.Helper()
	name := unsafeChars.ReplaceAllString(strings.ToLower(t.Name()), "_")
	if len(name) > 24 {
		name = name[:24]
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return "t_" + strings.Trim(name, "_") + "_" + hex.EncodeToString(b)
}

func pingCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 15*time.Second)
}

// Kafka checks that Kafka answers and returns a configuration whose
// TopicPrefix is unique to the test. Topics under it are deleted at cleanup.
func Kafka(t testing.TB) config.Config {
	t.Helper()
	cfg := Config(t)
	ctx, cancel := pingCtx()
	defer cancel()
	if err := connect.PingKafka(ctx, cfg); err != nil {
		t.Fatalf("devstack: Kafka does not answer: %v; %s", err, hint)
	}
	cfg.TopicPrefix = UniqueName(t) + "."
	t.Cleanup(func() { deleteTopics(t, cfg) })
	return cfg
}

func deleteTopics(t testing.TB, cfg config.Config) {
	admin, err := connect.KafkaAdmin(cfg, "devstack-cleanup")
	if err != nil {
		t.Logf("devstack: cleanup: %v", err)
		return
	}
	defer admin.Close()
	all, err := admin.ListTopics()
	if err != nil {
		t.Logf("devstack: cleanup: %v", err)
		return
	}
	for name := range all {
		if strings.HasPrefix(name, cfg.TopicPrefix) {
			if err := admin.DeleteTopic(name); err != nil {
				t.Logf("devstack: cleanup: delete topic %s: %v", name, err)
			}
		}
	}
}

// Redis returns a client of the real Redis and a key prefix unique to the
// test; keys under it are deleted at cleanup.
func Redis(t testing.TB) (*redis.Client, string) {
	t.Helper()
	cfg := Config(t)
	rdb := connect.Redis(cfg)
	ctx, cancel := pingCtx()
	defer cancel()
	if err := connect.PingRedis(ctx, rdb); err != nil {
		_ = rdb.Close()
		t.Fatalf("devstack: Redis does not answer: %v; %s", err, hint)
	}
	prefix := "eprostream:" + UniqueName(t) + ":"
	t.Cleanup(func() {
		ctx := context.Background()
		iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
		_ = rdb.Close()
	})
	return rdb, prefix
}

// ClickHouse creates a database unique to the test and returns a connection
// bound to it; the database is dropped at cleanup.
func ClickHouse(t testing.TB) (driver.Conn, string) {
	t.Helper()
	cfg := Config(t)
	admin, err := connect.ClickHouse(cfg, "")
	if err != nil {
		t.Fatalf("devstack: %v; %s", err, hint)
	}
	ctx, cancel := pingCtx()
	defer cancel()
	if err := connect.PingClickHouse(ctx, admin); err != nil {
		_ = admin.Close()
		t.Fatalf("devstack: ClickHouse does not answer: %v; %s", err, hint)
	}
	db := UniqueName(t)
	if err := admin.Exec(ctx, "CREATE DATABASE "+db); err != nil {
		_ = admin.Close()
		t.Fatalf("devstack: create database %s: %v", db, err)
	}
	conn, err := connect.ClickHouse(cfg, db)
	if err != nil {
		t.Fatalf("devstack: %v", err)
	}
	t.Cleanup(func() {
		_ = conn.Close()
		if err := admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db); err != nil {
			t.Logf("devstack: cleanup: drop database %s: %v", db, err)
		}
		_ = admin.Close()
	})
	return conn, db
}
