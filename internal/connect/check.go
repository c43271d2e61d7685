package connect

import (
	"context"
	"errors"
	"fmt"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/IBM/sarama"
	"github.com/redis/go-redis/v9"

	"github.com/eprostream/eprostream/internal/config"
	"github.com/eprostream/eprostream/internal/kafka/kafkaconfig"
)

// Check is one named dependency probe; it returns nil when the service answers.
type Check struct {
	Name string
	Run  func(ctx context.Context) error
}

// PingKafka asks the brokers for cluster metadata.
func PingKafka(ctx context.Context, cfg config.Config) error {
	done := make(chan error, 1)
	go func() {
		client, err := sarama.NewClient(cfg.KafkaBrokers, kafkaconfig.Sarama("eprostream-check", cfg.DialTimeout))
		if err != nil {
			done <- err
			return
		}
		defer client.Close()
		if _, err := client.Controller(); err != nil {
			done <- err
			return
		}
		done <- client.RefreshMetadata()
	}()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("connect: kafka at %v: %w", cfg.KafkaBrokers, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("connect: kafka at %v: %w", cfg.KafkaBrokers, ctx.Err())
	}
}

// PingRedis sends PING.
func PingRedis(ctx context.Context, rdb *redis.Client) error {
	if err := rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("connect: redis at %s: %w", rdb.Options().Addr, err)
	}
	return nil
}

// PingClickHouse runs SELECT 1.
func PingClickHouse(ctx context.Context, conn driver.Conn) error {
	var one uint8
	if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("connect: clickhouse: %w", err)
	}
	if one != 1 {
		return errors.New("connect: clickhouse: SELECT 1 did not return 1")
	}
	return nil
}

// RunChecks runs every check and joins their errors.
func RunChecks(ctx context.Context, checks []Check) error {
	var errs []error
	for _, c := range checks {
		if err := c.Run(ctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c.Name, err))
		}
	}
	return errors.Join(errs...)
}
