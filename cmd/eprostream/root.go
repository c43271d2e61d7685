package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/lovoo/goka"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/eprostream/eprostream/catalog"
	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/internal/admin"
	"github.com/eprostream/eprostream/internal/config"
	"github.com/eprostream/eprostream/internal/connect"
	"github.com/eprostream/eprostream/internal/kafka/keyview"
	"github.com/eprostream/eprostream/internal/kafka/topics"
	"github.com/eprostream/eprostream/internal/tlsreload"
)

// app is what every subcommand shares: the validated configuration and the logger.
type app struct {
	cfg    config.Config
	log    *slog.Logger
	stdout io.Writer
}

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	a := &app{stdout: stdout}
	cfg, envErr := config.FromOSEnv()
	a.cfg = cfg
	root := &cobra.Command{
		Use:   "eprostream",
		Short: "Stream processor for clinical-trial patient-reported outcomes",
		Long: `eprostream takes ePRO submissions into Kafka, keeps per-subject state in
goka group tables, raises clinical alerts and lands every fact in ClickHouse.

Every flag can also be set by the environment variable named in its help;
flags win over the environment.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if envErr != nil {
				return fmt.Errorf("environment: %w", envErr)
			}
			if err := a.cfg.Validate(); err != nil {
				return err
			}
			a.log = a.cfg.Logger(stderr)
			return nil
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	a.cfg.RegisterFlags(root.PersistentFlags())
	root.AddCommand(newMigrateCmd(a), newCheckCmd(a), newProcessCmd(a), newLoadgenCmd(a), newDemoCmd(a),
		newIngestCmd(a), newAPIKeyCmd(a), newServeCmd(a), newViewsCmd(a), newWebhookCmd(a), newEnrollCmd(a))
	return root
}

// runAdmin serves the process's admin endpoint until ctx ends; mount adds
// routes (goka's monitor).
func runAdmin(ctx context.Context, a *app, reg *prometheus.Registry, checks []connect.Check, mount func(*admin.Server)) error {
	srv, err := admin.New(admin.Config{Addr: a.cfg.AdminAddr}, admin.Deps{Registry: reg, Checks: checks, Log: a.log})
	if err != nil {
		return err
	}
	if mount != nil {
		mount(srv)
	}
	return srv.Run(ctx)
}

// newRoster returns the study registry's roster in a local folder of its
// own (a goka view, rebuilt from epro-enrolments at every start); the
// caller removes the folder when done.
// loadTLS loads the HTTPS certificate pair the configuration names, or
// nil when it names none.
func loadTLS(a *app) (*tlsreload.Certificate, error) {
	if a.cfg.TLSCertFile == "" {
		return nil, nil
	}
	return tlsreload.Load(a.cfg.TLSCertFile, a.cfg.TLSKeyFile, a.log)
}

// newAlertIndex returns a local copy of epro-alert-index in a fresh
// temporary directory (removed by the caller).
func newAlertIndex(a *app) (*keyview.View[codecs.AlertOwner], string, error) {
	return newKeyView[codecs.AlertOwner](a, topics.NewNames(a.cfg.TopicPrefix).AlertIndex, "alert-index", codecs.JSON[codecs.AlertOwner]{})
}

// newKeyView returns a local copy of a compacted topic of T records in a
// fresh temporary directory (removed by the caller); codec decodes a T.
func newKeyView[T any](a *app, topic, name string, codec goka.Codec) (*keyview.View[T], string, error) {
	dir, err := os.MkdirTemp("", "eprostream-"+name+"-")
	if err != nil {
		return nil, "", err
	}
	v, err := keyview.New[T](keyview.Config{Topic: topic, StateDir: dir, ClientID: "eprostream-" + name},
		keyview.Deps{Kafka: a.cfg.Kafka(), Log: a.log}, codec)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, "", err
	}
	return v, dir, nil
}

func newRoster(a *app, user string) (*catalog.Roster, string, error) {
	dir, err := os.MkdirTemp("", "eprostream-roster-"+user+"-")
	if err != nil {
		return nil, "", err
	}
	r, err := catalog.NewRoster(catalog.RosterConfig{Topic: topics.NewNames(a.cfg.TopicPrefix).Enrolments, StateDir: dir,
		ClientID: "eprostream-roster-" + user}, catalog.RosterDeps{Kafka: a.cfg.Kafka(), Log: a.log})
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, "", err
	}
	return r, dir, nil
}
