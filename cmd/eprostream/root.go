package main

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/eprostream/eprostream/internal/config"
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
		newIngestCmd(a), newAPIKeyCmd(a), newServeCmd(a), newViewsCmd(a), newWebhookCmd(a))
	return root
}
