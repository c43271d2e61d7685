package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"github.com/bsm/redislock"
	gorilla "github.com/gorilla/mux"
	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"
	"github.com/lovoo/goka/web/monitor"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/eprostream/eprostream/catalog"
	"github.com/eprostream/eprostream/emitters"
	"github.com/eprostream/eprostream/internal/admin"
	"github.com/eprostream/eprostream/internal/audit"
	"github.com/eprostream/eprostream/internal/clickhouse/chsink"
	"github.com/eprostream/eprostream/internal/connect"
	"github.com/eprostream/eprostream/internal/kafka/kafkaconfig"
	"github.com/eprostream/eprostream/internal/kafka/tablestore"
	"github.com/eprostream/eprostream/internal/kafka/topics"
	"github.com/eprostream/eprostream/internal/supervise"
	"github.com/eprostream/eprostream/processors/intake"
	"github.com/eprostream/eprostream/processors/subject"
	"github.com/eprostream/eprostream/processors/warehouse"
	"github.com/eprostream/eprostream/rules"
)

type processFlags struct {
	group            string
	stateDir         string
	rulesDir         string
	scheduleInterval time.Duration
	sink             chsink.Config
	also             adminParts // serve: the gateway's metrics and checks, on the same admin endpoint
}

// adminParts are metrics and readiness checks of another part of the
// process, served on its admin endpoint beside the groups'.
type adminParts struct {
	gatherer prometheus.Gatherer
	checks   []connect.Check
}

func newProcessCmd(a *app) *cobra.Command {
	f := processFlags{}
	cmd := &cobra.Command{
		Use:   "process",
		Short: "Run processor groups (intake, subject, or all) until interrupted",
		Long: `process runs goka processor groups:
  intake   epro-submissions → epro-clean / epro-dlq
  subject  epro-clean + epro-commands → subject-table, epro-alerts / epro-dlq,
           and the missed-diary scheduler (one sweeper at a time, by Redis lock)
  warehouse epro-clean + epro-alerts + epro-commands + epro-dlq → ClickHouse, batched, once
goka's monitor of the groups is served under /monitor/ on ADMIN_ADDR.
Run several processes with the same --group to share the partitions; give each
its own --state-dir. On SIGINT/SIGTERM the groups stop cleanly.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runProcess(cmd.Context(), a, f) },
	}
	cmd.Flags().StringVar(&f.group, "group", "all", "intake, subject, warehouse or all")
	registerProcessFlags(cmd, &f)
	return cmd
}

func registerProcessFlags(cmd *cobra.Command, f *processFlags) {
	cmd.Flags().StringVar(&f.stateDir, "state-dir", "",
		"local table storage of this instance, locked while it runs (rebuilt from Kafka when missing); default "+
			filepath.Join(os.TempDir(), "eprostream-state", "<topic-prefix><group>"))
	cmd.Flags().StringVar(&f.rulesDir, "rules-dir", "", "folder of per-study rule sets (*.yaml); the default set applies to other studies")
	cmd.Flags().DurationVar(&f.scheduleInterval, "schedule-interval", time.Hour, "how often the missed-diary scheduler sweeps; 0 disables it")
	cmd.Flags().IntVar(&f.sink.MaxRows, "batch-rows", 50_000, "warehouse: rows per ClickHouse insert")
	cmd.Flags().DurationVar(&f.sink.MaxDelay, "batch-delay", time.Second, "warehouse: longest wait before a partial batch is inserted")
	cmd.Flags().IntVar(&f.sink.MaxInflight, "max-inserts", 4, "warehouse: concurrent ClickHouse inserts")
	cmd.Flags().IntVar(&f.sink.MaxBuffered, "max-buffered", 200_000, "warehouse: rows buffered before the group stops pulling from Kafka")
}

func (f processFlags) groups() ([]string, error) {
	switch f.group {
	case "all":
		return []string{intake.Group, subject.Group, warehouse.Group}, nil
	case intake.Group, subject.Group, warehouse.Group:
		return []string{f.group}, nil
	}
	return nil, fmt.Errorf("--group %q: want intake, subject, warehouse or all", f.group)
}

func runProcess(ctx context.Context, a *app, f processFlags) error {
	groups, err := f.groups()
	if err != nil {
		return err
	}
	registry := rules.NewRegistry()
	if f.rulesDir != "" {
		if registry, err = rules.LoadDir(f.rulesDir); err != nil {
			return err
		}
	}
	if f.stateDir == "" {
		f.stateDir = defaultStateDir(a.cfg.TopicPrefix, f.group)
	}
	state, clean, err := tablestore.Open(f.stateDir)
	if err != nil {
		return err
	}
	defer func() { _ = state.Release() }()
	if !clean {
		a.log.Warn("previous run did not stop cleanly: local tables discarded, rebuilding them from Kafka", "state_dir", f.stateDir)
	}
	needs := []string{"kafka"}
	if slices.Contains(groups, warehouse.Group) {
		needs = append(needs, "clickhouse")
	}
	if slices.Contains(groups, subject.Group) {
		needs = append(needs, "redis") // the schedule's lock
	}
	if err := starting(ctx, a, needs...); err != nil {
		return err
	}
	names := topics.NewNames(a.cfg.TopicPrefix)
	reg := admin.NewRegistry()
	router := gorilla.NewRouter()
	mon := monitor.NewServer("/monitor", router) // goka's monitor of this process's groups
	restarts, err := supervise.NewRestarts(reg)
	if err != nil {
		return err
	}
	health := &supervise.Health{}
	g, ctx := errgroup.WithContext(ctx)
	// Each group is supervised: a run that fails (Kafka gone for longer
	// than goka waits) is built anew and started again, without ending
	// the process or the others.
	supervised := func(group string, build func(prometheus.Registerer) (func(context.Context) error, error)) {
		g.Go(func() error {
			return supervise.Run(ctx, supervise.Config{Name: group}, supervise.Deps{Log: a.log, Restarts: restarts, Health: health},
				func() (func(context.Context) error, error) { return build(supervise.Replacing(reg)) })
		})
	}
	for _, group := range groups {
		if group == warehouse.Group {
			supervised(group, func(reg prometheus.Registerer) (func(context.Context) error, error) {
				return newWarehouse(a, names, reg, mon, f)
			})
			continue
		}
		built := false
		supervised(group, func(reg prometheus.Registerer) (func(context.Context) error, error) {
			if built {
				// goka writes its local table before Kafka acknowledges the
				// table record, so after a failed run the local copy may hold
				// writes Kafka never got: rebuild it from the changelog, as
				// after a crash.
				dir := filepath.Join(f.stateDir, group)
				if err := os.RemoveAll(dir); err != nil {
					return nil, fmt.Errorf("%s: discard the local table %s: %w", group, dir, err)
				}
				a.log.Warn("local table discarded after the group failed; rebuilding it from Kafka", "group", group, "dir", dir)
			}
			built = true
			ids := &topics.Identities{}
			proc, err := newProcessor(a, group, names, registry, reg, f.stateDir, ids)
			if err != nil {
				return nil, err
			}
			mon.AttachProcessor(proc)
			return func(ctx context.Context) error {
				if group == subject.Group {
					// Replay detection keys positions on the inputs' topic IDs.
					if err := loadTopicIDs(a, ids, names.Clean, names.Commands); err != nil {
						return err
					}
				}
				a.log.Info("processor starting", "group", group)
				return proc.Run(ctx)
			}, nil
		})
		if group == subject.Group {
			g.Go(func() error { recordRules(ctx, a, registry); return nil })
		}
		if group == subject.Group && f.scheduleInterval > 0 {
			sched, closeSched, err := newScheduler(a, names, registry, f)
			if err != nil {
				return err
			}
			mon.AttachView(sched.View())
			defer closeSched()
			g.Go(func() error { return sched.Run(ctx) })
		}
	}
	if a.cfg.AdminAddr != "" {
		checks, closeChecks, err := dependencyChecks(a)
		if err != nil {
			return err
		}
		checks = append(checks, connect.Check{Name: "groups", Run: health.Check})
		for _, c := range f.also.checks {
			if !slices.ContainsFunc(checks, func(have connect.Check) bool { return have.Name == c.Name }) {
				checks = append(checks, c)
			}
		}
		defer closeChecks()
		g.Go(func() error {
			return runAdmin(ctx, a, reg, checks, func(s *admin.Server) {
				s.Mount("/monitor/", router)
				if f.also.gatherer != nil {
					s.Also(f.also.gatherer)
				}
			})
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return state.CloseClean()
}

// loadTopicIDs reads the Kafka IDs of the topics into ids.
func loadTopicIDs(a *app, ids *topics.Identities, names ...string) error {
	client, err := sarama.NewClient(a.cfg.KafkaBrokers, a.cfg.Kafka().Sarama("eprostream-topic-ids"))
	if err != nil {
		return fmt.Errorf("topic ids: %w", err)
	}
	defer client.Close()
	return ids.Load(client, names...)
}

func newProcessor(a *app, group string, names topics.Names, registry *rules.Registry, reg prometheus.Registerer,
	stateDir string, ids *topics.Identities) (*goka.Processor, error) {
	opts := kafkaconfig.GokaOptions(a.cfg.Kafka(), "eprostream-"+group, filepath.Join(stateDir, group), a.log)
	switch group {
	case intake.Group:
		cat, err := catalog.Load(a.cfg.StudiesFile)
		if err != nil {
			return nil, err
		}
		return intake.New(intake.Config{Brokers: a.cfg.KafkaBrokers, Names: names}, intake.Deps{Catalogue: cat, Log: a.log, Registry: reg}, opts...)
	default:
		return subject.New(subject.Config{Brokers: a.cfg.KafkaBrokers, Names: names},
			subject.Deps{Rules: registry, Log: a.log, Registry: reg, TopicIDs: ids}, opts...)
	}
}

// newWarehouse returns a function running the warehouse group and its sink
// once; it closes their connections when it returns.
func newWarehouse(a *app, names topics.Names, reg prometheus.Registerer, mon *monitor.Server, f processFlags) (func(context.Context) error, error) {
	conn, err := connect.ClickHouse(a.cfg, a.cfg.ClickHouseDatabase)
	if err != nil {
		return nil, err
	}
	dead, err := goka.NewEmitter(a.cfg.KafkaBrokers, goka.Stream(names.DLQ), new(codec.Bytes),
		kafkaconfig.EmitterOptions(a.cfg.Kafka(), "eprostream-warehouse-dlq", a.log)...)
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("warehouse: dlq emitter: %w", err)
	}
	sinkCfg := f.sink
	sinkCfg.Database = a.cfg.ClickHouseDatabase
	sink, err := chsink.New(sinkCfg, chsink.Deps{Conn: conn, Reject: warehouse.Rejecter(dead, warehouse.Group), Log: a.log, Registry: reg})
	if err != nil {
		_ = dead.Finish()
		_ = conn.Close()
		return nil, err
	}
	ids := &topics.Identities{}
	proc, err := warehouse.New(warehouse.Config{Brokers: a.cfg.KafkaBrokers, Names: names}, warehouse.Deps{Sink: sink, Log: a.log, Registry: reg, TopicIDs: ids},
		kafkaconfig.GokaOptions(a.cfg.Kafka(), "eprostream-warehouse", filepath.Join(f.stateDir, warehouse.Group), a.log)...)
	if err != nil {
		_ = dead.Finish()
		_ = conn.Close()
		return nil, err
	}
	mon.AttachProcessor(proc)
	run := func(ctx context.Context) error {
		defer func() { _ = dead.Finish(); _ = conn.Close() }()
		// Rows carry their topic's ID for the sink's offset guard; read at
		// every (re)start, so a topic recreated meanwhile is told apart.
		if err := loadTopicIDs(a, ids, names.Clean, names.Alerts, names.DLQ, names.Commands, names.Enrolments, names.Audit, names.Questionnaires); err != nil {
			return err
		}
		g, ctx := errgroup.WithContext(ctx)
		g.Go(func() error { return sink.Run(ctx) })
		g.Go(func() error {
			a.log.Info("processor starting", "group", warehouse.Group)
			return proc.Run(ctx)
		})
		return g.Wait()
	}
	return run, nil
}

func newScheduler(a *app, names topics.Names, registry *rules.Registry, f processFlags) (*subject.Scheduler, func(), error) {
	view, err := goka.NewView(a.cfg.KafkaBrokers, goka.Table(names.SubjectTable), subject.StateCodec{},
		kafkaconfig.ViewOptions(a.cfg.Kafka(), "eprostream-schedule", filepath.Join(f.stateDir, "schedule"), a.log)...)
	if err != nil {
		return nil, nil, fmt.Errorf("schedule view: %w", err)
	}
	sender, err := emitters.NewCommandEmitter(a.cfg.Emitters(), emitters.Deps{Log: a.log})
	if err != nil {
		return nil, nil, err
	}
	rdb := connect.Redis(a.cfg)
	roster, err := catalog.NewRoster(catalog.RosterConfig{Topic: names.Enrolments, StateDir: filepath.Join(f.stateDir, "roster"),
		ClientID: "eprostream-schedule-roster"}, catalog.RosterDeps{Kafka: a.cfg.Kafka(), Log: a.log})
	if err != nil {
		_ = sender.Close()
		_ = rdb.Close()
		return nil, nil, err
	}
	sched, err := subject.NewScheduler(subject.ScheduleConfig{Interval: f.scheduleInterval,
		LockKey: fmt.Sprintf("eprostream:%s:lock:%sschedule", a.cfg.Env, a.cfg.TopicPrefix)},
		subject.ScheduleDeps{View: view, Sender: sender, Locker: redislock.New(rdb), Rules: registry, Roster: roster, Log: a.log})
	if err != nil {
		_ = sender.Close()
		_ = rdb.Close()
		return nil, nil, err
	}
	return sched, func() {
		_ = sender.Close()
		_ = rdb.Close()
	}, nil
}

// defaultStateDir is a folder of its own for each environment and group, so
// two processes on one machine never share one by accident (and if they
// did, the second would be refused: tablestore locks it).
func defaultStateDir(topicPrefix, group string) string {
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_' {
			return r
		}
		return '_'
	}, topicPrefix+group)
	return filepath.Join(os.TempDir(), "eprostream-state", name)
}

// recordRules writes to the audit trail which rule sets the subject group
// loaded, retrying until Kafka has them or ctx ends (each event's id is
// fixed by the set, so a retry or a restart records it once).
func recordRules(ctx context.Context, a *app, registry *rules.Registry) {
	now := time.Now()
	for wait := time.Second; ; wait = min(2*wait, 30*time.Second) {
		err := func() error {
			em, err := emitters.NewAuditEmitter(a.cfg.Emitters(), emitters.Deps{Log: a.log})
			if err != nil {
				return err
			}
			defer func() { _ = em.Close() }()
			for _, set := range registry.Sets() {
				if err := em.Emit(ctx, audit.RulesLoaded(subject.Group, set, now)); err != nil {
					return err
				}
			}
			return nil
		}()
		if err == nil || ctx.Err() != nil {
			return
		}
		a.log.Warn("the rule sets loaded are not in the audit trail yet; retrying", "retry_in", wait, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}
