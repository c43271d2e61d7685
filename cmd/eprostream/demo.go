package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/eprostream/eprostream/emitters"
	"github.com/eprostream/eprostream/internal/connect"
	"github.com/eprostream/eprostream/internal/demo"
	"github.com/eprostream/eprostream/internal/kafka/topics"
	"github.com/eprostream/eprostream/internal/loadgen"
	"github.com/eprostream/eprostream/internal/redis/apikeys"
	"github.com/eprostream/eprostream/rules"
)

func newDemoCmd(a *app) *cobra.Command {
	lf := &loadgenFlags{}
	var duration, linger time.Duration
	var dashboard, ingest string
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the groups on a synthetic trial for about a minute and report what happened",
		Long: `demo creates fresh topics (prefix demo-<time>. unless --topic-prefix is set),
runs the intake and subject groups and the missed-diary scheduler in this
process, sends a synthetic trial for --duration at --rate, waits until every
record is processed, and prints throughput, alerts per rule, the DLQ count and
the time from submission to alert. The trial's last simulated day is today, up
to now. The dashboard (--dashboard) runs beside it, with the ingest API
(--ingest) for its acknowledgements; the demo prints its address with a read
key and with a nurse's key (read and operate).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd, a, lf, duration, demoAddrs{dashboard: dashboard, ingest: ingest}, linger)
		},
	}
	lf.register(cmd)
	cmd.Flags().DurationVar(&duration, "duration", time.Minute, "how long to send load")
	cmd.Flags().StringVar(&dashboard, "dashboard", "127.0.0.1:8081", "address of the dashboard during the demo; empty disables it")
	cmd.Flags().StringVar(&ingest, "ingest", "127.0.0.1:8080", "address of the ingest API during the demo, for the dashboard's acknowledgements; empty disables them")
	cmd.Flags().DurationVar(&linger, "linger", 0, "keep the dashboard up this long after the report (Ctrl-C ends it sooner)")
	_ = cmd.Flags().Set("subjects-per-site", "100")
	return cmd
}

// demoAddrs are where the demo serves its dashboard and ingest API.
type demoAddrs struct{ dashboard, ingest string }

func runDemo(cmd *cobra.Command, a *app, lf *loadgenFlags, duration time.Duration, addrs demoAddrs, linger time.Duration) error {
	dashboard := addrs.dashboard
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
		// Fit the trial to the load (subjects send about 3.3 records a day)
		// and send all of it, so its last day, today, is there as in a live
		// trial.
		subjects := lf.gen.Studies * lf.gen.SitesPerStudy * lf.gen.SubjectsPerSite
		lf.gen.Days = max(1, int(float64(lf.total)/(3.3*float64(max(subjects, 1)))))
		lf.total = 0
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
		vf := viewsFlags{listen: dashboard, stateDir: filepath.Join(stateDir, "views")}
		if addrs.ingest != "" {
			done, err := startDemoIngest(groupsCtx, a, addrs.ingest)
			if err != nil {
				return err
			}
			defer func() { stopGroups(); <-done }()
			vf.ingestURL = "http://" + addrs.ingest
		}
		viewsDone := make(chan error, 1)
		viewsApp := *a
		viewsApp.cfg.AdminAddr = "" // the groups serve this process's admin endpoints
		go func() { viewsDone <- runViews(groupsCtx, &viewsApp, vf) }()
		defer func() { stopGroups(); <-viewsDone }()
		read, nurse, err := demoKeys(ctx, a)
		if err != nil {
			return err
		}
		fmt.Fprintf(a.stdout, "demo: dashboard (live alerts, site compliance, subject timelines; the keys cover every study for a day)\n"+
			"      read only:                  http://%s/#key=%s\n", dashboard, read)
		if addrs.ingest != "" {
			fmt.Fprintf(a.stdout, "      nurse (read, acknowledge):  http://%s/#key=%s\n", dashboard, nurse)
		}
	}

	if err := enrolTrial(ctx, a, lf); err != nil {
		return err
	}
	var mu sync.Mutex
	sentAt := demo.SentAt{}
	if lf.total > 0 {
		fmt.Fprintf(a.stdout, "demo: sending up to %d records at %.0f/s\n", lf.total, lf.rate)
	} else {
		fmt.Fprintf(a.stdout, "demo: sending a %d-day trial ending now at %.0f/s\n", lf.gen.Days, lf.rate)
	}
	sum, err := runLoadgen(ctx, a, lf, cmd.ErrOrStderr(), func(id string, at time.Time) {
		mu.Lock()
		sentAt[id] = at
		mu.Unlock()
	})
	fmt.Fprintln(a.stdout, sum)
	if err != nil {
		return err
	}
	names := topics.NewNames(a.cfg.TopicPrefix)
	drainStart := time.Now()
	if err := demo.WaitDrained(ctx, a.cfg.Kafka(), names, groupsDone); err != nil {
		return err
	}
	drain := time.Since(drainStart)
	if err := sweepOnce(ctx, a, stateDir); err != nil {
		return err
	}
	if err := demo.WaitDrained(ctx, a.cfg.Kafka(), names, groupsDone); err != nil {
		return err
	}
	alerts, err := demo.ReadAlerts(ctx, a.cfg.Kafka(), names, sentAt)
	if err != nil {
		return err
	}
	if err := alerts.Print(a.stdout, int(sum.sent), sum.bad, sum.elapsed, drain); err != nil {
		return err
	}
	conn, err := connect.ClickHouse(a.cfg, a.cfg.ClickHouseDatabase)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := demo.Queryable(ctx, a.stdout, conn, a.cfg.ClickHouseDatabase, sentAt); err != nil {
		return err
	}
	if err := demo.FromFHIR(ctx, a.stdout, conn, a.cfg.ClickHouseDatabase); err != nil {
		return err
	}
	if err := demo.Analyst(ctx, a.stdout, conn, a.cfg.ClickHouseDatabase, lf.gen.Days); err != nil {
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
	go func() { viewDone <- sched.View().Run(viewCtx) }()
	defer func() { stopView(); <-viewDone }()
	for !sched.View().Recovered() {
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

// demoKeys creates the demo dashboard's API keys, each for every study and
// a day: one that reads, and a nurse's that also acknowledges (operate).
func demoKeys(ctx context.Context, a *app) (read, nurse string, err error) {
	rdb := connect.Redis(a.cfg)
	defer rdb.Close()
	store := apikeys.NewStore(rdb, a.cfg.RedisPrefix())
	if _, read, err = store.Create(ctx, apikeys.Spec{Name: "demo dashboard", Studies: []string{apikeys.AllStudies},
		Roles: []string{apikeys.RoleRead}, Lifetime: 24 * time.Hour}); err != nil {
		return "", "", err
	}
	_, nurse, err = store.Create(ctx, apikeys.Spec{Name: "demo nurse", Studies: []string{apikeys.AllStudies},
		Roles: []string{apikeys.RoleRead, apikeys.RoleOperate}, Lifetime: 24 * time.Hour})
	return read, nurse, err
}

// startDemoIngest serves the ingest API on addr until ctx ends, with its
// defaults, for the dashboard's acknowledgements.
func startDemoIngest(ctx context.Context, a *app, addr string) (<-chan error, error) {
	f := &ingestFlags{}
	f.register(&cobra.Command{}) // the flags' defaults
	f.gw.Addr = addr
	ingestApp := *a
	ingestApp.cfg.AdminAddr = ""
	run, _, err := newIngest(&ingestApp, f, prometheus.NewRegistry())
	if err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() {
		err := run(ctx)
		if err != nil && ctx.Err() == nil {
			a.log.Error("demo: the ingest API stopped: the dashboard cannot acknowledge", "addr", addr, "err", err)
		}
		done <- err
	}()
	return done, nil
}

// enrolTrial enrols the synthetic trial's subjects in the study registry,
// as the sites' rosters would, before any of them reports.
func enrolTrial(ctx context.Context, a *app, lf *loadgenFlags) error {
	gen, err := loadgen.New(lf.gen)
	if err != nil {
		return err
	}
	em, err := emitters.NewEnrolmentEmitter(a.cfg.Emitters(), emitters.Deps{Log: a.log})
	if err != nil {
		return err
	}
	defer em.Close()
	roster := gen.Roster()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(32)
	for _, e := range roster {
		g.Go(func() error { return em.Emit(gctx, e) })
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("demo: enrol: %w", err)
	}
	fmt.Fprintf(a.stdout, "demo: %d subjects enrolled in the study registry\n", len(roster))
	return nil
}
