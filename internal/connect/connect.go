// Package connect opens eprostream's clients of Kafka, Redis and ClickHouse
// from one Config, and checks that each service answers.
package connect

import (
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/IBM/sarama"
	"github.com/redis/go-redis/v9"

	"github.com/eprostream/eprostream/internal/config"
	"github.com/eprostream/eprostream/internal/kafka/topics"
)

// KafkaAdmin opens a cluster admin client.
func KafkaAdmin(cfg config.Config, clientID string) (topics.Admin, error) {
	conf := cfg.Kafka().Sarama(clientID)
	admin, err := sarama.NewClusterAdmin(cfg.KafkaBrokers, conf)
	if err != nil {
		return nil, fmt.Errorf("connect: kafka at %v: %w", cfg.KafkaBrokers, err)
	}
	return kafkaAdmin{admin, conf}, nil
}

type kafkaAdmin struct {
	sarama.ClusterAdmin
	conf *sarama.Config
}

func (a kafkaAdmin) SaramaConfig() *sarama.Config { return a.conf }

// Redis returns a Redis client; go-redis connects lazily, so call PingRedis
// to know it answers.
func Redis(cfg config.Config) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr:        cfg.RedisAddr,
		Username:    cfg.RedisUsername,
		Password:    cfg.RedisPassword,
		TLSConfig:   cfg.RedisTLSConfig(),
		DialTimeout: cfg.DialTimeout,
	})
}

// RedisFailFast returns a Redis client for request paths that must not wait
// on a Redis outage (the gateway): one attempt, short timeouts, so a
// request falls back to its Redis-free path within milliseconds.
func RedisFailFast(cfg config.Config) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr:          cfg.RedisAddr,
		Username:      cfg.RedisUsername,
		Password:      cfg.RedisPassword,
		TLSConfig:     cfg.RedisTLSConfig(),
		DialTimeout:   250 * time.Millisecond,
		ReadTimeout:   500 * time.Millisecond,
		WriteTimeout:  500 * time.Millisecond,
		MaxRetries:    -1,
		DialerRetries: 1,
		// Every request makes several round trips; a pool as large as the
		// HTTP concurrency keeps requests from queueing for a connection.
		PoolSize: 256,
	})
}

// ClickHouse opens a native-protocol connection pool to database (empty
// means the server's default database). The HTTP protocol is not used: the
// 18.16 servers we support reject a setting the client sends over HTTP.
func ClickHouse(cfg config.Config, database string) (driver.Conn, error) {
	conn, err := clickhouse.Open(&clickhouse.Options{
		Protocol: clickhouse.Native,
		Addr:     []string{cfg.ClickHouseAddr},
		Auth: clickhouse.Auth{
			Database: database,
			Username: cfg.ClickHouseUser,
			Password: cfg.ClickHousePassword,
		},
		TLS:         cfg.ClickHouseTLSConfig(),
		DialTimeout: cfg.DialTimeout,
		ClientInfo:  clickhouse.ClientInfo{Products: []struct{ Name, Version string }{{Name: "eprostream", Version: "1"}}},
	})
	if err != nil {
		return nil, fmt.Errorf("connect: clickhouse at %s: %w", cfg.ClickHouseAddr, err)
	}
	return conn, nil
}
