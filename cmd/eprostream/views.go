package main

import (
	"context"
	"os"
	"path/filepath"

	"github.com/IBM/sarama"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/eprostream/eprostream/admin"
	"github.com/eprostream/eprostream/connect"
	"github.com/eprostream/eprostream/kafkaconfig"
	"github.com/eprostream/eprostream/topics"
	"github.com/eprostream/eprostream/views"
)

func newViewsCmd(a *app) *cobra.Command {
	var listen, stateDir string
	cmd := &cobra.Command{
		Use:   "views",
		Short: "Serve the read side: subject views, the live alert stream, the dashboard, goka's monitor",
		Long: `views keeps a local copy of subject-table and the latest alerts and serves:
  GET /v1/subjects/{id}   a subject's state (X-View-Lag-Records says how fresh)
  GET /v1/alerts/stream   Server-Sent Events, ?study= ?site= ?severity=, resumes with Last-Event-ID
  GET /                   the dashboard page
  /monitor/               goka's monitor of the view`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			subjects, err := views.NewSubjects(a.cfg, stateDir, a.log)
			if err != nil {
				return err
			}
			client, err := sarama.NewClient(a.cfg.KafkaBrokers, kafkaconfig.Sarama("eprostream-views", a.cfg.DialTimeout))
			if err != nil {
				return err
			}
			defer client.Close()
			hub := views.NewHub(client, topics.NewNames(a.cfg.TopicPrefix).Alerts, a.log)
			srv := views.NewServer(listen, subjects, hub, client, a.log)
			g, ctx := errgroup.WithContext(cmd.Context())
			g.Go(func() error { return srv.Run(ctx) })
			if a.cfg.AdminAddr != "" {
				checks := []connect.Check{{Name: "kafka", Run: func(ctx context.Context) error { return connect.PingKafka(ctx, a.cfg) }}}
				g.Go(func() error { return admin.New(a.cfg.AdminAddr, admin.NewRegistry(), checks, a.log).Run(ctx) })
			}
			return g.Wait()
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:8081", "address of the read API and dashboard")
	cmd.Flags().StringVar(&stateDir, "state-dir", filepath.Join(os.TempDir(), "eprostream-views"), "local copy of subject-table (rebuilt from Kafka when missing)")
	return cmd
}
