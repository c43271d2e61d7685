package connect

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/IBM/sarama"
	"github.com/redis/go-redis/v9"

	"github.com/eprostream/eprostream/internal/config"
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
		client, err := sarama.NewClient(cfg.KafkaBrokers, cfg.Kafka().Sarama("eprostream-check"))
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

// Permanent says whether err is one that waiting cannot mend: a refused
// login (Kafka SASL, a Redis ACL user, a ClickHouse user), a certificate
// the client does not trust or that names another host, or a server that
// does not speak TLS where TLS is configured (or the reverse). A service
// that is down or unreachable is not permanent: processes wait for it.
func Permanent(err error) bool {
	if err == nil {
		return false
	}
	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	var verify *tls.CertificateVerificationError
	var record tls.RecordHeaderError
	var alert tls.AlertError
	var chErr *clickhouse.Exception
	switch {
	case errors.As(err, &unknownCA), errors.As(err, &hostname), errors.As(err, &invalid),
		errors.As(err, &verify), errors.As(err, &record), errors.As(err, &alert):
		return true
	case errors.Is(err, sarama.ErrSASLAuthenticationFailed), errors.Is(err, sarama.ErrUnsupportedSASLMechanism),
		errors.Is(err, sarama.ErrIllegalSASLState):
		return true
	case redis.HasErrorPrefix(err, "WRONGPASS"), redis.HasErrorPrefix(err, "NOAUTH"), redis.HasErrorPrefix(err, "NOPERM"):
		return true
	case errors.As(err, &chErr):
		// AUTHENTICATION_FAILED, UNKNOWN_USER, WRONG_PASSWORD, REQUIRED_PASSWORD
		switch chErr.Code {
		case 516, 192, 193, 194:
			return true
		}
	}
	return false
}

// Refuse runs each check once, within ctx. It returns the errors that
// waiting cannot mend (Permanent), each naming its service, so a process
// stops at start with that message; a service that only does not answer
// yet is passed to wait, and the process starts and waits for it.
func Refuse(ctx context.Context, checks []Check, wait func(name string, err error)) error {
	var errs []error
	for _, c := range checks {
		err := c.Run(ctx)
		switch {
		case err == nil:
		case Permanent(err):
			errs = append(errs, fmt.Errorf("%s: %w", c.Name, err))
		default:
			wait(c.Name, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("cannot start: %w", errors.Join(errs...))
	}
	return nil
}
