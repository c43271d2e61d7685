package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/eprostream/eprostream/internal/connect"
)

func newCheckCmd(a *app) *cobra.Command {
	var ready string
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Check that Kafka, Redis and ClickHouse answer with the current configuration",
		Long: `check asks Kafka, Redis and ClickHouse whether they answer. With --ready URL
it asks a running eprostream process's /readyz instead and exits non-zero
unless it answers 200: the images have no shell or curl, so this is their
container healthcheck.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if ready != "" {
				ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Second)
				defer cancel()
				return probeReady(ctx, ready)
			}
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
	cmd.Flags().StringVar(&ready, "ready", "", "ask this /readyz URL of a running process instead (e.g. http://127.0.0.1:9464/readyz)")
	return cmd
}

// probeReady GETs a /readyz URL: nil for a 200, else what it answered.
func probeReady(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("--ready %q: %w", url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("not ready: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("not ready: %s answered %d: %s", url, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return nil
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

// starting logs the configuration (its secrets redacted) and asks each of
// services (kafka, redis, clickhouse) once before a long-running command
// starts: a wrong password, an untrusted certificate or a TLS mismatch
// stops it here with a message naming the service; a service that does not
// answer yet is logged, and the command starts and waits for it.
func starting(ctx context.Context, a *app, services ...string) error {
	a.log.Info("configuration", "config", a.cfg)
	checks, closeAll, err := dependencyChecks(a)
	if err != nil {
		return err
	}
	defer closeAll()
	var some []connect.Check
	for _, c := range checks {
		if slices.Contains(services, c.Name) {
			some = append(some, c)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 2*a.cfg.DialTimeout+time.Second)
	defer cancel()
	return connect.Refuse(ctx, some, func(name string, err error) {
		a.log.Warn("dependency does not answer yet; starting, and waiting for it", "service", name, "err", err)
	})
}
