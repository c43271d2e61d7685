package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/IBM/sarama"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/eprostream/eprostream/emitters"
	"github.com/eprostream/eprostream/internal/admin"
	"github.com/eprostream/eprostream/internal/connect"
	"github.com/eprostream/eprostream/internal/kafka/kafkaconfig"
	"github.com/eprostream/eprostream/internal/kafka/topics"
	"github.com/eprostream/eprostream/internal/redis/apikeys"
	"github.com/eprostream/eprostream/internal/supervise"
	"github.com/eprostream/eprostream/processors/delivery"
	"github.com/eprostream/eprostream/rules"
	"github.com/eprostream/eprostream/views"
	"github.com/eprostream/eprostream/webhooks"
)

type viewsFlags struct {
	listen, stateDir string
	ingestURL        string
	rulesDir         string
	webhooks         bool
}

func newViewsCmd(a *app) *cobra.Command {
	f := viewsFlags{}
	cmd := &cobra.Command{
		Use:   "views",
		Short: "Serve the read side: subject views, site dashboards, the live alert stream, webhooks, the dashboard page",
		Long: `views keeps a local copy of subject-table and the latest alerts and serves,
to callers with an API key of the read role ('eprostream apikey create --role read'):
  GET /v1/subjects/{id}   a subject's state (X-View-Lag-Records says how fresh);
                          ?with=thresholds,alerts adds the rule levels and its alerts
  GET /v1/sites?study=    site dashboards (from ClickHouse, cached in Redis); ?with=days
  GET /v1/studies         studies with submissions (cached)
  GET /v1/studies/{study}/subjects/{id}/history   30 days of values (ClickHouse)
  GET /v1/alerts/stream   Server-Sent Events, ?study= ?site= ?severity=, resumes with Last-Event-ID
  GET /v1/me              what the caller's key may do (any role)
  POST /v1/alerts/{id}/ack forwarded to the ingest API at --ingest-url (operate role)
  GET /                   the dashboard page (open it with #key=epk_… or type the key)
goka's monitor of the view is on the admin endpoint (ADMIN_ADDR), at /monitor/.
With --webhooks (default) it also delivers every alert to the webhook
subscriptions of 'eprostream webhook create', as the consumer group "webhooks".`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runViews(cmd.Context(), a, f) },
	}
	cmd.Flags().StringVar(&f.listen, "listen", "127.0.0.1:8081", "address of the read API and dashboard")
	cmd.Flags().StringVar(&f.stateDir, "state-dir", filepath.Join(os.TempDir(), "eprostream-views"), "local copy of subject-table (rebuilt from Kafka when missing)")
	cmd.Flags().BoolVar(&f.webhooks, "webhooks", true, "deliver alerts to webhook subscriptions")
	cmd.Flags().StringVar(&f.ingestURL, "ingest-url", "", "the ingest API the dashboard's acknowledgements go to, e.g. http://127.0.0.1:8080 (empty: the page offers none)")
	cmd.Flags().StringVar(&f.rulesDir, "rules-dir", "", "folder of per-study rule sets (*.yaml), as given to process, for the timelines' threshold lines")
	return cmd
}

func runViews(ctx context.Context, a *app, f viewsFlags) error {
	if err := starting(ctx, a, "kafka", "redis", "clickhouse"); err != nil {
		return err
	}
	names := topics.NewNames(a.cfg.TopicPrefix)
	reg := admin.NewRegistry()
	subjects, err := views.NewSubjects(views.SubjectsConfig{Table: names.SubjectTable, StateDir: filepath.Join(f.stateDir, "subjects")},
		views.SubjectsDeps{Kafka: a.cfg.Kafka(), Log: a.log})
	if err != nil {
		return err
	}
	client, err := sarama.NewClient(a.cfg.KafkaBrokers, a.cfg.Kafka().Sarama("eprostream-views"))
	if err != nil {
		return err
	}
	defer client.Close()
	ch, err := connect.ClickHouse(a.cfg, a.cfg.ClickHouseDatabase)
	if err != nil {
		return err
	}
	defer ch.Close()
	rdb := connect.RedisFailFast(a.cfg)
	defer rdb.Close()
	sites, err := views.NewSites(views.SitesConfig{Database: a.cfg.ClickHouseDatabase, RedisPrefix: a.cfg.RedisPrefix()},
		views.SitesDeps{ClickHouse: ch, Redis: rdb, Registry: reg, Log: a.log})
	if err != nil {
		return err
	}
	keys := apikeys.NewStore(rdb, a.cfg.RedisPrefix())
	hub, err := views.NewHub(views.HubConfig{Topic: names.Alerts, Commands: names.Commands}, views.HubDeps{Client: client, Log: a.log})
	if err != nil {
		return err
	}
	cert, err := loadTLS(a)
	if err != nil {
		return err
	}
	vcfg := views.ServerConfig{Addr: f.listen}
	if cert != nil {
		vcfg.TLS = cert.Config()
	}
	deps := views.ServerDeps{Subjects: subjects, Hub: hub, Client: client, Keys: keys, Rules: rules.NewRegistry(), Log: a.log}
	if f.rulesDir != "" {
		if deps.Rules, err = rules.LoadDir(f.rulesDir); err != nil {
			return err
		}
	}
	if f.ingestURL != "" {
		if deps.Acknowledge, err = views.AckProxy(f.ingestURL, a.log); err != nil {
			return err
		}
	}
	srv, err := views.NewServer(vcfg, deps)
	if err != nil {
		return err
	}
	srv.Handle(sites.Register)
	trail, err := emitters.NewAuditEmitter(a.cfg.Emitters(), emitters.Deps{Log: a.log})
	if err != nil {
		return fmt.Errorf("audit trail (epro-audit): %w", err)
	}
	defer func() { _ = trail.Close() }()
	srv.Handle(views.Webhooks{Store: webhooks.NewStore(rdb, a.cfg.RedisPrefix()), Audit: trail, Log: a.log}.Register)
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return srv.Run(ctx) })
	if cert != nil {
		g.Go(func() error { cert.ReloadOnSIGHUP(ctx); return nil })
	}
	health := &supervise.Health{}
	if f.webhooks {
		restarts, err := supervise.NewRestarts(reg)
		if err != nil {
			return err
		}
		if err := startWebhooks(ctx, g, a, names, f.stateDir, supervise.Deps{Log: a.log, Restarts: restarts, Health: health}, keys); err != nil {
			return err
		}
	}
	if a.cfg.AdminAddr != "" {
		checks := []connect.Check{{Name: "kafka", Run: func(ctx context.Context) error { return connect.PingKafka(ctx, a.cfg) }},
			{Name: "groups", Run: health.Check}}
		g.Go(func() error {
			return runAdmin(ctx, a, reg, checks, func(s *admin.Server) { s.Mount("/monitor/", srv.Monitor()) })
		})
	}
	return g.Wait()
}

func startWebhooks(ctx context.Context, g *errgroup.Group, a *app, names topics.Names, stateDir string,
	sup supervise.Deps, owners webhooks.Owners) error {
	rdb := connect.Redis(a.cfg)
	deliverer, err := webhooks.New(webhooks.Config{}, webhooks.Deps{Store: webhooks.NewStore(rdb, a.cfg.RedisPrefix()), Owners: owners, Log: a.log})
	if err != nil {
		_ = rdb.Close()
		return err
	}
	build := func() (func(context.Context) error, error) {
		proc, err := delivery.New(delivery.Config{Brokers: a.cfg.KafkaBrokers, Names: names}, delivery.Deps{Deliverer: deliverer, Log: a.log},
			kafkaconfig.GokaOptions(a.cfg.Kafka(), "eprostream-webhooks", filepath.Join(stateDir, "webhooks"), a.log)...)
		if err != nil {
			return nil, err
		}
		return proc.Run, nil
	}
	g.Go(func() error { defer rdb.Close(); return deliverer.Run(ctx) })
	// Supervised like the processing groups: a failed run (Kafka gone) is
	// built anew; the deliverer and its queues stay.
	g.Go(func() error {
		return supervise.Run(ctx, supervise.Config{Name: delivery.Group}, sup, build)
	})
	return nil
}
