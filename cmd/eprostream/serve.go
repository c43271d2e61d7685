package main

import (
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"
)

func newServeCmd(a *app) *cobra.Command {
	f := &ingestFlags{}
	pf := processFlags{group: "all"}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run everything in one process: the ingest API and every processor group",
		Long: `serve is ingest plus process --group all, for a single machine. The admin
endpoints (/healthz, /readyz, /metrics) are those of the processor groups.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ingestApp := *a
			ingestApp.cfg.AdminAddr = "" // one admin server per process: the groups'
			run, err := newIngest(&ingestApp, f)
			if err != nil {
				return err
			}
			g, ctx := errgroup.WithContext(cmd.Context())
			g.Go(func() error { return run(ctx) })
			g.Go(func() error { return runProcess(ctx, a, pf) })
			return g.Wait()
		},
	}
	f.register(cmd)
	registerProcessFlags(cmd, &pf)
	return cmd
}
