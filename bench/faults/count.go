package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/IBM/sarama"

	"github.com/eprostream/eprostream/internal/config"
	"github.com/eprostream/eprostream/internal/kafka/consumerlag"
	"github.com/eprostream/eprostream/internal/kafka/kafkaconfig"
	"github.com/eprostream/eprostream/internal/kafka/topics"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// caughtUp waits until intake, subject and warehouse have committed every
// record of their inputs, twice in a row a second apart (intake feeds
// subject, which feeds the warehouse), or timeout passes.
func caughtUp(ctx context.Context, cfg config.Config, timeout time.Duration) (time.Duration, error) {
	names := topics.NewNames(cfg.TopicPrefix)
	groups := map[string][]string{
		"intake":    {names.Submissions},
		"subject":   {names.Clean, names.Commands},
		"warehouse": {names.Clean, names.Alerts, names.DLQ, names.Commands, names.Enrolments, names.Audit},
	}
	start := time.Now()
	deadline := start.Add(timeout)
	zero := 0
	var last error
	var lag int64
	for zero < 2 {
		if time.Now().After(deadline) {
			return time.Since(start), fmt.Errorf("the groups had not caught up after %s (lag %d, last error %v)", timeout, lag, last)
		}
		select {
		case <-ctx.Done():
			return time.Since(start), ctx.Err()
		case <-time.After(time.Second):
		}
		lag, last = lagOf(cfg, groups)
		if last != nil || lag > 0 {
			zero = 0
			continue
		}
		zero++
	}
	return time.Since(start), nil
}

// lagOf opens a client of its own every time: after a broker restart a
// fresh client finds the leaders at once.
func lagOf(cfg config.Config, groups map[string][]string) (int64, error) {
	client, err := sarama.NewClient(cfg.KafkaBrokers, kafkaconfig.Sarama("faults-lag", cfg.DialTimeout))
	if err != nil {
		return 0, err
	}
	defer client.Close()
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		return 0, err
	}
	var total int64
	var failed error
	for g, in := range groups {
		n, err := consumerlag.Of(client, admin, topics.Group(cfg.TopicPrefix, g), in...)
		total, failed = total+n, errors.Join(failed, err)
	}
	return total, failed
}

// tally is what ClickHouse holds for one scenario's ids.
type tally struct {
	accepted    int
	lost        []string // accepted, no row
	duplicated  int      // rows beyond one per id
	dupIDs      []string
	unaccepted  int // rows of ids that never got a 202 (sent, then not answered)
	alertRows   uint64
	alertUnique uint64
}

// countRows reads every row of this scenario's ids (their message_id starts
// with its tag) and compares it with what the client was answered.
func countRows(ctx context.Context, ch driver.Conn, db, tag string, r *loadResult) (tally, error) {
	var t tally
	rows, err := ch.Query(ctx, fmt.Sprintf("SELECT message_id, count() FROM %s.campaign_submission_inserts WHERE study_id = ? AND message_id LIKE ? GROUP BY message_id", db),
		study, tag+"-%")
	if err != nil {
		return t, fmt.Errorf("count submissions: %w", err)
	}
	stored := map[string]uint64{}
	for rows.Next() {
		var id string
		var n uint64
		if err := rows.Scan(&id, &n); err != nil {
			_ = rows.Close()
			return t, err
		}
		stored[id] = n
	}
	if err := rows.Close(); err != nil {
		return t, err
	}
	if err := rows.Err(); err != nil {
		return t, err
	}
	t.accepted = len(r.accepted)
	for id := range r.accepted {
		if stored[id] == 0 {
			t.lost = append(t.lost, id)
		}
	}
	for id, n := range stored {
		if n > 1 {
			t.duplicated += int(n - 1)
			t.dupIDs = append(t.dupIDs, id)
		}
		if _, ok := r.accepted[id]; !ok {
			t.unaccepted++
		}
	}
	row := ch.QueryRow(ctx, fmt.Sprintf("SELECT count(), uniqExact(alert_id) FROM %s.campaign_alert_inserts", db))
	if err := row.Scan(&t.alertRows, &t.alertUnique); err != nil {
		return t, fmt.Errorf("count alerts: %w", err)
	}
	return t, nil
}
