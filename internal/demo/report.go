// Package demo computes and prints what `eprostream demo` reports: when the
// groups have caught up, the alerts raised and how fast, how fast rows
// became queryable, and two of the analysts' queries. The command wires it;
// every read here takes a ctx and ends with it.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/IBM/sarama"

	"github.com/eprostream/eprostream/analytics"
	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/internal/kafka/consumerlag"
	"github.com/eprostream/eprostream/internal/kafka/kafkaconfig"
	"github.com/eprostream/eprostream/internal/kafka/topics"
	"github.com/eprostream/eprostream/processors/intake"
	"github.com/eprostream/eprostream/processors/subject"
	"github.com/eprostream/eprostream/processors/warehouse"
)

// SentAt maps a message_id to when the load generator sent it.
type SentAt map[string]time.Time

// WaitDrained returns once intake, subject and warehouse have committed
// every record of their inputs (twice in a row, half a second apart), or
// when groupsDone yields (the groups stopped: an error) or ctx ends.
func WaitDrained(ctx context.Context, kafka kafkaconfig.Conn, names topics.Names, groupsDone chan error) error {
	client, err := sarama.NewClient(kafka.Brokers, kafka.Sarama("eprostream-demo"))
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer client.Close()
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	lags := []struct {
		group  string
		inputs []string
	}{
		{intake.Group, []string{names.Submissions}},
		{subject.Group, []string{names.Clean, names.Commands}},
		{warehouse.Group, []string{names.Clean, names.Alerts, names.DLQ, names.Commands, names.Enrolments}},
	}
	for zero := 0; zero < 2; {
		select {
		case err := <-groupsDone:
			groupsDone <- err // for the caller's deferred wait
			return fmt.Errorf("demo: processor groups stopped: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
		var total int64
		var errs []error
		for _, l := range lags {
			n, err := consumerlag.Of(client, admin, topics.Group(names.Prefix, l.group), l.inputs...)
			total += n
			errs = append(errs, err)
		}
		if err := errors.Join(errs...); err != nil || total > 0 {
			zero = 0
			continue
		}
		zero++
	}
	return nil
}

// Alerts is what epro-alerts and epro-dlq hold after a run.
type Alerts struct {
	Distinct int            // distinct alert ids (a re-sent alert counts once)
	Records  int            // records on epro-alerts, re-sends included
	PerRule  map[string]int // distinct ids by "rule (severity)"
	Dead     int            // records on epro-dlq
	// Latency is, per distinct alert whose trigger was sent by this run,
	// the time from that send to the alert's first record, in order.
	Latency []time.Duration
}

// ReadAlerts reads epro-alerts and epro-dlq to their ends.
func ReadAlerts(ctx context.Context, kafka kafkaconfig.Conn, names topics.Names, sent SentAt) (Alerts, error) {
	consumer, err := sarama.NewConsumer(kafka.Brokers, kafka.Sarama("eprostream-demo"))
	if err != nil {
		return Alerts{}, fmt.Errorf("demo: %w", err)
	}
	defer consumer.Close()
	alerts, err := readTopic(ctx, consumer, names.Alerts)
	if err != nil {
		return Alerts{}, err
	}
	dead, err := readTopic(ctx, consumer, names.DLQ)
	if err != nil {
		return Alerts{}, err
	}
	out := Alerts{Records: len(alerts), Dead: len(dead), PerRule: map[string]int{}}
	first := map[string]time.Time{}
	trigger := map[string]string{}
	for _, m := range alerts {
		v, err := codecs.JSON[codecs.Alert]{}.Decode(m.Value)
		if err != nil {
			continue
		}
		al := v.(codecs.Alert)
		if at, seen := first[al.AlertID]; seen && !m.Timestamp.Before(at) {
			continue
		} else if !seen {
			out.PerRule[al.RuleID+" ("+al.Severity+")"]++
		}
		first[al.AlertID], trigger[al.AlertID] = m.Timestamp, al.MessageID
	}
	out.Distinct = len(first)
	for id, at := range first {
		if s, ok := sent[trigger[id]]; ok {
			out.Latency = append(out.Latency, at.Sub(s))
		}
	}
	sort.Slice(out.Latency, func(i, j int) bool { return out.Latency[i] < out.Latency[j] })
	return out, nil
}

// Print writes the run's summary: submissions, dead letters, alerts.
func (a Alerts) Print(w io.Writer, sent, malformed int, elapsed, drain time.Duration) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "\nsubmissions processed\t%d in %s (%.0f/s offered; the groups finished %s after the last send)\n",
		sent, (elapsed + drain).Round(time.Second), float64(sent)/elapsed.Seconds(), drain.Round(100*time.Millisecond))
	fmt.Fprintf(tw, "dead-lettered (epro-dlq)\t%d (the load generator sent %d malformed)\n", a.Dead, malformed)
	fmt.Fprintf(tw, "alerts (epro-alerts)\t%d distinct ids (%d records)\n", a.Distinct, a.Records)
	rules := make([]string, 0, len(a.PerRule))
	for r := range a.PerRule {
		rules = append(rules, r)
	}
	sort.Strings(rules)
	for _, r := range rules {
		fmt.Fprintf(tw, "  %s\t%d\n", r, a.PerRule[r])
	}
	if len(a.Latency) > 0 {
		fmt.Fprintf(tw, "submission → alert\tp50 %s, p99 %s (%d alerts, from each alert's first record)\n",
			Percentile(a.Latency, 0.50), Percentile(a.Latency, 0.99), len(a.Latency))
	}
	return tw.Flush()
}

// Percentile returns the p-th value of sorted, to the millisecond.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	return sorted[min(len(sorted)-1, int(p*float64(len(sorted))))].Round(time.Millisecond)
}

// readTopic returns every record of topic up to its end when called.
func readTopic(ctx context.Context, consumer sarama.Consumer, topic string) ([]*sarama.ConsumerMessage, error) {
	parts, err := consumer.Partitions(topic)
	if err != nil {
		return nil, fmt.Errorf("demo: %s: %w", topic, err)
	}
	hwms := consumer.HighWaterMarks()
	var out []*sarama.ConsumerMessage
	for _, p := range parts {
		pc, err := consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			return nil, fmt.Errorf("demo: %s/%d: %w", topic, p, err)
		}
		hwm := pc.HighWaterMarkOffset()
		if h, ok := hwms[topic][p]; ok && h > hwm {
			hwm = h
		}
		for done := hwm <= 0; !done; {
			select {
			case m := <-pc.Messages():
				out = append(out, m)
				done = m.Offset >= hwm-1
			case <-ctx.Done():
				_ = pc.Close()
				return nil, ctx.Err()
			}
		}
		_ = pc.Close()
	}
	return out, nil
}

// Queryable prints how long submissions took from the load generator's send
// to their row in ClickHouse. inserted_at is the server's clock in whole
// seconds, so the figures are floors, to the second.
func Queryable(ctx context.Context, w io.Writer, conn driver.Conn, database string, sent SentAt) error {
	rows, err := conn.Query(ctx, "SELECT message_id, inserted_at FROM `"+database+"`.submissions")
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer rows.Close()
	var lat []time.Duration
	for rows.Next() {
		var id string
		var at time.Time
		if err := rows.Scan(&id, &at); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		if s, ok := sent[id]; ok {
			lat = append(lat, max(0, at.Sub(s.Truncate(time.Second))))
		}
	}
	if err := rows.Err(); err != nil || len(lat) == 0 {
		return err
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	_, err = fmt.Fprintf(w, "submission → queryable in ClickHouse  p50 %s, p99 %s (%d rows; 1 s resolution)\n",
		Percentile(lat, 0.50), Percentile(lat, 0.99), len(lat))
	return err
}

// FromFHIR prints what the reports that came as FHIR became: how many are
// stored with format fhir, and the distinct alerts they raised per rule.
func FromFHIR(ctx context.Context, w io.Writer, conn driver.Conn, database string) error {
	db := "`" + database + "`"
	var stored uint64
	if err := conn.QueryRow(ctx, "SELECT uniqExact(study_id, message_id) FROM "+db+".submissions WHERE format = 'fhir'").Scan(&stored); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	rows, err := conn.Query(ctx, "SELECT rule_id, uniqExact(alert_id) FROM "+db+".alerts WHERE (study_id, message_id) IN "+
		"(SELECT study_id, message_id FROM "+db+".submissions WHERE format = 'fhir') GROUP BY rule_id ORDER BY rule_id")
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer rows.Close()
	var parts []string
	var total uint64
	for rows.Next() {
		var rule string
		var n uint64
		if err := rows.Scan(&rule, &n); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		total += n
		parts = append(parts, fmt.Sprintf("%s %d", rule, n))
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	_, err = fmt.Fprintf(w, "from FHIR input (LOINC-form QuestionnaireResponses and vital-sign Observations, mapped as the gateway maps them): %d submissions stored, %d distinct alerts (%s)\n",
		stored, total, strings.Join(parts, ", "))
	return err
}

// Analyst prints two of the analysts' queries over a run of days.
func Analyst(ctx context.Context, w io.Writer, conn driver.Conn, database string, days int) error {
	to := time.Now().UTC()
	from := to.AddDate(0, 0, -(days + 2))
	queries := []struct {
		title, name string
		args        []any
		cols        []string
	}{
		{"alerts per 100 subject-days, first sites (ClickHouse, analytics/queries/alerts_per_100_subject_days.sql)",
			"alerts_per_100_subject_days", []any{from, to}, []string{"study_id", "site_id", "alerts", "subject_days", "alerts_per_100_subject_days"}},
		{"steepest worsening above baseline (analytics/queries/steepest_worsening.sql)",
			"steepest_worsening", []any{5}, []string{"subject_id", "item_code", "baseline", "latest", "rise"}},
	}
	for _, q := range queries {
		rows, err := analytics.Run(ctx, conn, database, q.name, q.args...)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "\n%s\n", q.title)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, strings.Join(q.cols, "\t"))
		for i, r := range rows {
			if i == 5 {
				break
			}
			cells := make([]string, len(q.cols))
			for j, c := range q.cols {
				cells[j] = cell(r[c])
			}
			fmt.Fprintln(tw, strings.Join(cells, "\t"))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

func cell(v any) string {
	switch x := v.(type) {
	case *float64:
		if x == nil {
			return "-"
		}
		return fmt.Sprintf("%.2f", *x)
	case float64:
		return fmt.Sprintf("%.2f", x)
	default:
		return fmt.Sprint(x)
	}
}
