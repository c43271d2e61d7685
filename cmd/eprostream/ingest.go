package main

import (
	"context"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/eprostream/eprostream/catalog"
	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/emitters"
	"github.com/eprostream/eprostream/gateway"
	"github.com/eprostream/eprostream/internal/admin"
	"github.com/eprostream/eprostream/internal/connect"
	"github.com/eprostream/eprostream/internal/kafka/keyview"
	"github.com/eprostream/eprostream/internal/kafka/topics"
	"github.com/eprostream/eprostream/internal/redis/apikeys"
	"github.com/eprostream/eprostream/internal/redis/fencedlock"
	"github.com/eprostream/eprostream/internal/redis/idempotency"
	"github.com/eprostream/eprostream/internal/redis/ratelimit"
)

type ingestFlags struct {
	gw       gateway.Config
	rate     ratelimit.Config
	noLimits bool
	noIdem   bool
}

func (f *ingestFlags) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVar(&f.gw.Addr, "listen", "127.0.0.1:8080", "address of the ingest API")
	fs.IntVar(&f.gw.MaxBatch, "max-batch", 500, "submissions per batch request")
	fs.DurationVar(&f.gw.KafkaTimeout, "kafka-timeout", 5*time.Second, "longest wait for Kafka's acknowledgement before answering 503")
	fs.DurationVar(&f.gw.LockTTL, "lock-ttl", 10*time.Second, "lifetime of a plan adjustment's subject lock")
	fs.IntVar(&f.rate.PerKey, "rate-per-key", 2000, "submissions/s of one API key (a key's own rate overrides it)")
	fs.IntVar(&f.rate.PerKeyBurst, "rate-burst", 0, "burst of one API key (default: one second of its rate)")
	fs.IntVar(&f.rate.Overall, "rate-overall", 50000, "submissions/s of all keys together; 0 disables")
	fs.Float64Var(&f.rate.FallbackShare, "rate-fallback-share", 0.5, "share of each limit one gateway allows alone while Redis is down (1/instances)")
	fs.BoolVar(&f.noLimits, "no-rate-limits", false, "serve without rate limits (benchmarks only)")
	fs.BoolVar(&f.noIdem, "no-idempotency", false, "serve without idempotency keys (benchmarks only)")
}

func newIngestCmd(a *app) *cobra.Command {
	f := &ingestFlags{}
	cmd := &cobra.Command{
		Use:   "ingest",
		Short: "Serve the HTTP ingest API (submissions, enrolments, plan adjustments, alert acknowledgements)",
		Long: `ingest serves the HTTP API documented at /openapi.json and in README.md.
A submission is answered 202 only after Kafka acknowledged it. API keys come
from 'eprostream apikey create'. On SIGINT/SIGTERM the gateway stops
accepting, finishes in-flight requests and flushes its producers.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := starting(cmd.Context(), a, "kafka", "redis"); err != nil {
				return err
			}
			run, _, err := newIngest(a, f, admin.NewRegistry())
			if err != nil {
				return err
			}
			return run(cmd.Context())
		},
	}
	f.register(cmd)
	return cmd
}

// newIngest wires the gateway, its metrics registered with reg, and
// returns a function serving it until ctx ends (and the admin endpoints,
// when a.cfg.AdminAddr is set), with the gateway's readiness checks.
func newIngest(a *app, f *ingestFlags, reg *prometheus.Registry) (func(context.Context) error, []connect.Check, error) {
	cat, err := catalog.Load(a.cfg.StudiesFile)
	if err != nil {
		return nil, nil, err
	}
	f.gw.Catalogue, f.gw.TopicPrefix = cat, a.cfg.TopicPrefix
	cert, err := loadTLS(a)
	if err != nil {
		return nil, nil, err
	}
	if cert != nil {
		f.gw.TLS = cert.Config()
	}
	rdb := connect.RedisFailFast(a.cfg)
	prefix := a.cfg.RedisPrefix()
	deps := gateway.Deps{Keys: apikeys.NewStore(rdb, prefix), Locks: fencedlock.New(rdb, prefix), Log: a.log, Registry: reg}
	if !f.noLimits {
		if deps.Limiter, err = ratelimit.New(rdb, prefix, f.rate); err != nil {
			return nil, nil, err
		}
	}
	if !f.noIdem {
		deps.Idempotency = idempotency.New(rdb, prefix)
	}
	subs, err := emitters.NewSubmissionEmitter(a.cfg.Emitters(), emitters.Deps{Log: a.log})
	if err != nil {
		return nil, nil, err
	}
	cmds, err := emitters.NewCommandEmitter(a.cfg.Emitters(), emitters.Deps{Log: a.log})
	if err != nil {
		_ = subs.Close()
		return nil, nil, err
	}
	enrols, err := emitters.NewEnrolmentEmitter(a.cfg.Emitters(), emitters.Deps{Log: a.log})
	if err != nil {
		_ = subs.Close()
		_ = cmds.Close()
		return nil, nil, err
	}
	roster, rosterDir, err := newRoster(a, "ingest")
	if err != nil {
		_, _, _ = subs.Close(), cmds.Close(), enrols.Close()
		return nil, nil, err
	}
	alerts, alertsDir, err := newAlertIndex(a)
	if err != nil {
		_, _, _ = subs.Close(), cmds.Close(), enrols.Close()
		_ = os.RemoveAll(rosterDir)
		return nil, nil, err
	}
	qs, qsDir, err := newKeyView[codecs.QuestionnaireRecord](a, topics.NewNames(a.cfg.TopicPrefix).Questionnaires, "questionnaires",
		codecs.JSON[codecs.QuestionnaireRecord]{})
	if err != nil {
		_, _, _ = subs.Close(), cmds.Close(), enrols.Close()
		_, _ = os.RemoveAll(rosterDir), os.RemoveAll(alertsDir)
		return nil, nil, err
	}
	qsOut, err := emitters.NewQuestionnaireEmitter(a.cfg.Emitters(), emitters.Deps{Log: a.log})
	if err != nil {
		_, _, _ = subs.Close(), cmds.Close(), enrols.Close()
		_, _, _ = os.RemoveAll(rosterDir), os.RemoveAll(alertsDir), os.RemoveAll(qsDir)
		return nil, nil, err
	}
	deps.Producer, deps.Commands, deps.Roster, deps.Enrolments, deps.Alerts = subs, cmds, roster, enrols, alerts
	deps.Questionnaires, deps.QuestionnaireSender = qs, qsOut
	gw, err := gateway.New(f.gw, deps)
	if err != nil {
		return nil, nil, err
	}
	// Ready means Kafka answers and the study registry and the alert index
	// are loaded: without Redis ingest goes on.
	checks := []connect.Check{{Name: "kafka", Run: func(ctx context.Context) error { return connect.PingKafka(ctx, a.cfg) }},
		{Name: "registry", Run: func(context.Context) error {
			if !roster.Recovered() {
				return catalog.ErrRosterLoading
			}
			return nil
		}},
		{Name: "alert index", Run: func(context.Context) error {
			if !alerts.Recovered() {
				return keyview.ErrLoading
			}
			return nil
		}},
		{Name: "questionnaires", Run: func(context.Context) error {
			if !qs.Recovered() {
				return keyview.ErrLoading
			}
			return nil
		}}}
	return func(ctx context.Context) error {
		defer rdb.Close()
		defer os.RemoveAll(rosterDir)
		defer os.RemoveAll(alertsDir)
		defer os.RemoveAll(qsDir)
		defer enrols.Close()
		defer qsOut.Close()
		g, gctx := errgroup.WithContext(ctx)
		g.Go(func() error { return roster.Run(gctx) })
		g.Go(func() error { return alerts.Run(gctx) })
		g.Go(func() error { return qs.Run(gctx) })
		if cert != nil {
			g.Go(func() error { cert.ReloadOnSIGHUP(gctx); return nil })
		}
		g.Go(func() error {
			// Until the roster has caught up, registry-dependent requests
			// answer 503 and /readyz says not ready.
			if err := catalog.WaitRecovered(gctx, roster, 24*time.Hour); err == nil {
				a.log.Info("study registry loaded")
			}
			return nil
		})
		g.Go(func() error {
			err := gw.Run(gctx)
			// in-flight requests are done: flush what the producers hold
			if cerr := subs.Close(); err == nil {
				err = cerr
			}
			if cerr := cmds.Close(); err == nil {
				err = cerr
			}
			return err
		})
		if a.cfg.AdminAddr != "" {
			g.Go(func() error { return runAdmin(gctx, a, reg, checks, nil) })
		}
		return g.Wait()
	}, checks, nil
}
