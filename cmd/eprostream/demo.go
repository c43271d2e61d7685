package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/IBM/sarama"
	"github.com/spf13/cobra"

	"github.com/eprostream/eprostream/analytics"
	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/internal/connect"
	"github.com/eprostream/eprostream/internal/kafka/consumerlag"
	"github.com/eprostream/eprostream/internal/kafka/kafkaconfig"
	"github.com/eprostream/eprostream/internal/kafka/topics"
	"github.com/eprostream/eprostream/internal/redis/apikeys"
	"github.com/eprostream/eprostream/rules"
)

func newDemoCmd(a *app) *cobra.Command {
	lf := &loadgenFlags{}
	var duration, linger time.Duration
	var dashboard string
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the groups on a synthetic trial for about a minute and report what happened",
		Long: `demo creates fresh topics (prefix demo-<time>. unless --topic-prefix is set),
runs the intake and subject groups and the missed-diary scheduler in this
process, sends a synthetic trial for --duration at --rate, waits until every
record is processed, and prints throughput, alerts per rule, the DLQ count and
the time from submission to alert.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runDemo(cmd, a, lf, duration, dashboard, linger) },
	}
	lf.register(cmd)
	cmd.Flags().DurationVar(&duration, "duration", time.Minute, "how long to send load")
	cmd.Flags().StringVar(&dashboard, "dashboard", "127.0.0.1:8081", "address of the dashboard during the demo; empty disables it")
	cmd.Flags().DurationVar(&linger, "linger", 0, "keep the dashboard up this long after the report (Ctrl-C ends it sooner)")
	_ = cmd.Flags().Set("subjects-per-site", "100")
	return cmd
}

func runDemo(cmd *cobra.Command, a *app, lf *loadgenFlags, duration time.Duration, dashboard string, linger time.Duration) error {
	ctx := cmd.Context()
	stamp := time.Now().UTC().Format("20060102_150405")
	if !cmd.Flags().Changed("topic-prefix") && os.Getenv("TOPIC_PREFIX") == "" {
		a.cfg.TopicPrefix = "demo-" + strings.ReplaceAll(stamp, "_", "-") + "."
	}
	if !cmd.Flags().Changed("clickhouse-database") && os.Getenv("CLICKHOUSE_DATABASE") == "" {
		a.cfg.ClickHouseDatabase = "demo_" + stamp // each run's figures are its own
	}
	if lf.rate > 0 && lf.total == 0 {
		lf.total = int(lf.rate * duration.Seconds())
	}
	if !cmd.Flags().Changed("days") && lf.total > 0 {
		// Fit the trial to the load, so it ends yesterday as a live one would
		// (subjects send about 3.3 records a day).
		subjects := lf.gen.Studies * lf.gen.SitesPerStudy * lf.gen.SubjectsPerSite
		lf.gen.Days = max(1, int(float64(lf.total)/(3.3*float64(max(subjects, 1)))))
	}
	fmt.Fprintf(a.stdout, "demo: topics under prefix %q, ClickHouse database %s\n", a.cfg.TopicPrefix, a.cfg.ClickHouseDatabase)
	if err := runMigrate(ctx, a); err != nil {
		return err
	}
	stateDir, err := os.MkdirTemp("", "eprostream-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(stateDir)
	groupsCtx, stopGroups := context.WithCancel(ctx)
	groupsDone := make(chan error, 1)
	go func() {
		// The trial's clock runs days per second, so the missed-diary sweep
		// runs once, after the load (sweepOnce), not on a wall-clock interval.
		groupsDone <- runProcess(groupsCtx, a, processFlags{group: "all", stateDir: stateDir})
	}()
	defer func() { stopGroups(); <-groupsDone }()
	if dashboard != "" {
		viewsDone := make(chan error, 1)
		viewsApp := *a
		viewsApp.cfg.AdminAddr = "" // the groups serve this process's admin endpoints
		go func() {
			viewsDone <- runViews(groupsCtx, &viewsApp, viewsFlags{listen: dashboard, stateDir: filepath.Join(stateDir, "views")})
		}()
		defer func() { stopGroups(); <-viewsDone }()
		token, err := demoReadKey(ctx, a)
		if err != nil {
			return err
		}
		fmt.Fprintf(a.stdout, "demo: dashboard at http://%s/#key=%s\n      (live alerts, site compliance, subject timelines; the key reads every study for a day)\n", dashboard, token)
	}

	var mu sync.Mutex
	sentAt := map[string]time.Time{}
	fmt.Fprintf(a.stdout, "demo: sending up to %d records at %.0f/s\n", lf.total, lf.rate)
	sum, err := runLoadgen(ctx, a, lf, cmd.ErrOrStderr(), func(id string, at time.Time) {
		mu.Lock()
		sentAt[id] = at
		mu.Unlock()
	})
	fmt.Fprintln(a.stdout, sum)
	if err != nil {
		return err
	}
	drainStart := time.Now()
	if err := waitDrained(ctx, a, groupsDone); err != nil {
		return err
	}
	drain := time.Since(drainStart)
	if err := sweepOnce(ctx, a, stateDir); err != nil {
		return err
	}
	if err := waitDrained(ctx, a, groupsDone); err != nil {
		return err
	}
	if err := report(a, sum, drain, sentAt); err != nil {
		return err
	}
	if err := queryableReport(ctx, a, sentAt); err != nil {
		return err
	}
	if err := analystReport(ctx, a, lf.gen.Days); err != nil {
		return err
	}
	if dashboard != "" && linger > 0 {
		fmt.Fprintf(a.stdout, "\ndemo: the dashboard stays up at the address above for %s (Ctrl-C to stop)\n", linger)
		select {
		case <-ctx.Done():
		case <-time.After(linger):
		}
	}
	return nil
}

// queryableReport prints how long submissions took from the load
// generator's send to their row in ClickHouse. inserted_at is the server's
// clock in whole seconds, so the figures are floors, to the second.
func queryableReport(ctx context.Context, a *app, sentAt map[string]time.Time) error {
	conn, err := connect.ClickHouse(a.cfg, a.cfg.ClickHouseDatabase)
	if err != nil {
		return err
	}
	defer conn.Close()
	rows, err := conn.Query(ctx, "SELECT message_id, inserted_at FROM `"+a.cfg.ClickHouseDatabase+"`.submissions")
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
		if sent, ok := sentAt[id]; ok {
			lat = append(lat, max(0, at.Sub(sent.Truncate(time.Second))))
		}
	}
	if len(lat) == 0 {
		return rows.Err()
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	fmt.Fprintf(a.stdout, "submission → queryable in ClickHouse  p50 %s, p99 %s (%d rows; 1 s resolution)\n",
		pct(lat, 0.50), pct(lat, 0.99), len(lat))
	return rows.Err()
}

// analystReport prints two of the analysts' queries over what the demo wrote.
func analystReport(ctx context.Context, a *app, days int) error {
	conn, err := connect.ClickHouse(a.cfg, a.cfg.ClickHouseDatabase)
	if err != nil {
		return err
	}
	defer conn.Close()
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
		rows, err := analytics.Run(ctx, conn, a.cfg.ClickHouseDatabase, q.name, q.args...)
		if err != nil {
			return err
		}
		fmt.Fprintf(a.stdout, "\n%s\n", q.title)
		w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, strings.Join(q.cols, "\t"))
		for i, r := range rows {
			if i == 5 {
				break
			}
			cells := make([]string, len(q.cols))
			for j, c := range q.cols {
				cells[j] = cell(r[c])
			}
			fmt.Fprintln(w, strings.Join(cells, "\t"))
		}
		if err := w.Flush(); err != nil {
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

// sweepOnce runs the missed-diary scheduler's sweep once, as of now.
func sweepOnce(ctx context.Context, a *app, stateDir string) error {
	sched, closeSched, err := newScheduler(a, topics.NewNames(a.cfg.TopicPrefix), rules.NewRegistry(),
		processFlags{stateDir: stateDir, scheduleInterval: time.Minute})
	if err != nil {
		return err
	}
	defer closeSched()
	viewCtx, stopView := context.WithCancel(ctx)
	viewDone := make(chan error, 1)
	go func() { viewDone <- sched.View.Run(viewCtx) }()
	defer func() { stopView(); <-viewDone }()
	for !sched.View.Recovered() {
		select {
		case err := <-viewDone:
			viewDone <- err
			return fmt.Errorf("demo: schedule view: %w", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	n, err := sched.Sweep(ctx)
	fmt.Fprintf(a.stdout, "demo: missed-diary sweep sent %d checks\n", n)
	return err
}

// waitDrained waits until intake and subject have committed every record.
func waitDrained(ctx context.Context, a *app, groupsDone chan error) error {
	client, err := sarama.NewClient(a.cfg.KafkaBrokers, kafkaconfig.Sarama("eprostream-demo", a.cfg.DialTimeout))
	if err != nil {
		return err
	}
	defer client.Close()
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		return err
	}
	names := topics.NewNames(a.cfg.TopicPrefix)
	for zero := 0; zero < 2; {
		select {
		case err := <-groupsDone:
			groupsDone <- err // for the caller's deferred wait
			return fmt.Errorf("demo: processor groups stopped: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
		x, err1 := consumerlag.Of(client, admin, topics.Group(a.cfg.TopicPrefix, "intake"), names.Submissions)
		y, err2 := consumerlag.Of(client, admin, topics.Group(a.cfg.TopicPrefix, "subject"), names.Clean, names.Commands)
		z, err3 := consumerlag.Of(client, admin, topics.Group(a.cfg.TopicPrefix, "warehouse"), names.Clean, names.Alerts, names.DLQ, names.Commands)
		if err := errors.Join(err1, err2, err3); err != nil || x+y+z > 0 {
			zero = 0
			continue
		}
		zero++
	}
	return nil
}

func report(a *app, sum loadSummary, drain time.Duration, sentAt map[string]time.Time) error {
	names := topics.NewNames(a.cfg.TopicPrefix)
	consumer, err := sarama.NewConsumer(a.cfg.KafkaBrokers, kafkaconfig.Sarama("eprostream-demo", a.cfg.DialTimeout))
	if err != nil {
		return err
	}
	defer consumer.Close()
	alerts, err := readTopic(consumer, names.Alerts)
	if err != nil {
		return err
	}
	dead, err := readTopic(consumer, names.DLQ)
	if err != nil {
		return err
	}
	perRule := map[string]int{}
	var latencies []time.Duration
	for _, m := range alerts {
		v, err := codecs.JSON[codecs.Alert]{}.Decode(m.Value)
		if err != nil {
			continue
		}
		al := v.(codecs.Alert)
		perRule[al.RuleID+" ("+al.Severity+")"]++
		if at, ok := sentAt[al.MessageID]; ok {
			latencies = append(latencies, m.Timestamp.Sub(at))
		}
	}
	total := sum.elapsed + drain
	w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "\nsubmissions processed\t%d in %s (%.0f/s offered; the groups finished %s after the last send)\n",
		sum.sent, total.Round(time.Second), float64(sum.sent)/sum.elapsed.Seconds(), drain.Round(100*time.Millisecond))
	fmt.Fprintf(w, "dead-lettered (epro-dlq)\t%d (the load generator sent %d malformed)\n", len(dead), sum.bad)
	fmt.Fprintf(w, "alerts (epro-alerts)\t%d\n", len(alerts))
	rules := make([]string, 0, len(perRule))
	for r := range perRule {
		rules = append(rules, r)
	}
	sort.Strings(rules)
	for _, r := range rules {
		fmt.Fprintf(w, "  %s\t%d\n", r, perRule[r])
	}
	if len(latencies) > 0 {
		sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
		fmt.Fprintf(w, "submission → alert\tp50 %s, p99 %s (%d alerts)\n", pct(latencies, 0.50), pct(latencies, 0.99), len(latencies))
	}
	return w.Flush()
}

func pct(sorted []time.Duration, p float64) time.Duration {
	return sorted[min(len(sorted)-1, int(p*float64(len(sorted))))].Round(time.Millisecond)
}

// readTopic returns every record of topic up to its current end.
func readTopic(consumer sarama.Consumer, topic string) ([]*sarama.ConsumerMessage, error) {
	parts, err := consumer.Partitions(topic)
	if err != nil {
		return nil, err
	}
	hwms := consumer.HighWaterMarks()
	var out []*sarama.ConsumerMessage
	for _, p := range parts {
		pc, err := consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			return nil, err
		}
		hwm := pc.HighWaterMarkOffset()
		if h, ok := hwms[topic][p]; ok && h > hwm {
			hwm = h
		}
		for hwm > 0 {
			m := <-pc.Messages()
			out = append(out, m)
			if m.Offset >= hwm-1 {
				break
			}
		}
		_ = pc.Close()
	}
	return out, nil
}

// demoReadKey creates an API key that reads every study for a day, for
// the demo's dashboard.
func demoReadKey(ctx context.Context, a *app) (string, error) {
	rdb := connect.Redis(a.cfg)
	defer rdb.Close()
	_, token, err := apikeys.NewStore(rdb, a.cfg.RedisPrefix()).Create(ctx, apikeys.Spec{Name: "demo dashboard",
		Studies: []string{apikeys.AllStudies}, Roles: []string{apikeys.RoleRead}, Lifetime: 24 * time.Hour})
	return token, err
}
