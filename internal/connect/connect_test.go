package connect_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/eprostream/eprostream/internal/config"
	"github.com/eprostream/eprostream/internal/connect"
	"github.com/eprostream/eprostream/internal/testenv"
)

func TestRedisSetGetWithTTL(t *testing.T) {
	rdb, prefix := testenv.Redis(t)
	ctx := context.Background()
	key := prefix + "k"
	if err := rdb.Set(ctx, key, "v", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if v, err := rdb.Get(ctx, key).Result(); err != nil || v != "v" {
		t.Fatalf("GET = %q, %v", v, err)
	}
	if ttl := rdb.TTL(ctx, key).Val(); ttl <= 0 || ttl > time.Minute {
		t.Fatalf("TTL = %v", ttl)
	}
}

// Rows go in through PrepareBatch over the native protocol, the only insert
// path that works on every server version we support.
func TestClickHouseBatchInsertAndSelect(t *testing.T) {
	conn, _ := testenv.ClickHouse(t)
	ctx := context.Background()
	if err := conn.Exec(ctx, `CREATE TABLE t (id UInt64, subject String, at DateTime('UTC'), v Nullable(Float64))
		ENGINE = MergeTree ORDER BY id`); err != nil {
		t.Fatal(err)
	}
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO t (id, subject, at, v)")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	for i := uint64(0); i < 1000; i++ {
		var v *float64
		if i%2 == 0 {
			f := float64(i)
			v = &f
		}
		if err := batch.Append(i, "S-1", now, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := batch.Send(); err != nil {
		t.Fatal(err)
	}
	var n, nonNull uint64
	if err := conn.QueryRow(ctx, "SELECT count(), count(v) FROM t").Scan(&n, &nonNull); err != nil {
		t.Fatal(err)
	}
	if n != 1000 || nonNull != 500 {
		t.Fatalf("count() = %d, count(v) = %d; want 1000, 500", n, nonNull)
	}
}

func TestChecksNameTheUnreachableService(t *testing.T) {
	cfg := config.Default()
	cfg.RedisAddr = "127.0.0.1:1" // nothing listens on port 1
	cfg.DialTimeout = time.Second
	rdb := connect.Redis(cfg)
	defer rdb.Close()
	err := connect.RunChecks(context.Background(), []connect.Check{
		{Name: "redis", Run: func(ctx context.Context) error { return connect.PingRedis(ctx, rdb) }},
		{Name: "ok", Run: func(context.Context) error { return nil }},
	})
	if err == nil || !strings.Contains(err.Error(), "redis: connect: redis at 127.0.0.1:1") {
		t.Fatalf("RunChecks = %v", err)
	}
}

func TestPingKafkaFailsOnDeadBroker(t *testing.T) {
	cfg := config.Default()
	cfg.KafkaBrokers = []string{"127.0.0.1:1"}
	cfg.DialTimeout = time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := connect.PingKafka(ctx, cfg); err == nil {
		t.Fatal("want an error from a broker that does not exist")
	}
}
