package main

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"
)

func newServeCmd(a *app) *cobra.Command {
	f := &ingestFlags{}
	pf := processFlags{group: "all"}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run everything in one process: the ingest API and every processor group",
		Long: `serve is ingest plus process --group all, for a single machine. One admin
endpoint (ADMIN_ADDR) serves both: /metrics holds the gateway's and the
groups' metrics, /readyz runs the checks of both.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ingestApp := *a
			ingestApp.cfg.AdminAddr = "" // one admin endpoint per process: the groups' serves the gateway's too
			// No runtime collectors here: the groups' registry has them.
			gatewayReg := prometheus.NewRegistry()
			run, checks, err := newIngest(&ingestApp, f, gatewayReg)
			if err != nil {
				return err
			}
			pf.also = adminParts{gatherer: gatewayReg, checks: checks}
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
