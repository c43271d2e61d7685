package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/eprostream/eprostream/internal/connect"
)

func newCheckCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "check",
		Short: "Check that Kafka, Redis and ClickHouse answer with the current configuration",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			checks, closeAll, err := dependencyChecks(a)
			if err != nil {
				return err
			}
			defer closeAll()
			ctx, cancel := context.WithTimeout(cmd.Context(), 3*a.cfg.DialTimeout+5*time.Second)
			defer cancel()
			failed := 0
			for _, c := range checks {
				if err := c.Run(ctx); err != nil {
					failed++
					fmt.Fprintf(a.stdout, "%-10s FAIL  %v\n", c.Name, err)
					continue
				}
				fmt.Fprintf(a.stdout, "%-10s ok\n", c.Name)
			}
			if failed > 0 {
				return fmt.Errorf("%d of %d dependencies do not answer", failed, len(checks))
			}
			return nil
		},
	}
}

// dependencyChecks returns the readiness checks of the three services, and a
// function that closes the clients they use.
func dependencyChecks(a *app) ([]connect.Check, func(), error) {
	rdb := connect.Redis(a.cfg)
	ch, err := connect.ClickHouse(a.cfg, "")
	if err != nil {
		_ = rdb.Close()
		return nil, nil, err
	}
	checks := []connect.Check{
		{Name: "kafka", Run: func(ctx context.Context) error { return connect.PingKafka(ctx, a.cfg) }},
		{Name: "redis", Run: func(ctx context.Context) error { return connect.PingRedis(ctx, rdb) }},
		{Name: "clickhouse", Run: func(ctx context.Context) error { return connect.PingClickHouse(ctx, ch) }},
	}
	return checks, func() { _ = rdb.Close(); _ = ch.Close() }, nil
}
