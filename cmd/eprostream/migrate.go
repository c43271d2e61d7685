package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/eprostream/eprostream/internal/clickhouse/schema"
	"github.com/eprostream/eprostream/internal/connect"
	"github.com/eprostream/eprostream/internal/kafka/topics"
)

func newMigrateCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "migrate",
		Short: "Create the Kafka topics and the ClickHouse schema (idempotent)",
		Long: `migrate creates every Kafka topic of eprostream under the topic prefix, and
the ClickHouse database with its versioned schema (recorded in
schema_migrations). It leaves what already matches alone and fails, naming
the topic and the difference, when an existing topic disagrees (for example a
different partition count): it never alters a topic that holds data.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runMigrate(cmd.Context(), a) },
	}
}

func runMigrate(ctx context.Context, a *app) error {
	admin, err := connect.KafkaAdmin(a.cfg, "eprostream-migrate")
	if err != nil {
		return err
	}
	defer admin.Close()
	specs := topics.Catalogue(a.cfg.TopicPrefix, a.cfg.Partitions, a.cfg.ReplicationFactor)
	if err := topics.Migrate(ctx, admin, specs, a.log); err != nil {
		return err
	}
	conn, err := connect.ClickHouse(a.cfg, "")
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := schema.Migrate(ctx, conn, a.cfg.ClickHouseDatabase, a.log); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "migrate: %d topics and the ClickHouse schema of database %s are in place\n", len(specs), a.cfg.ClickHouseDatabase)
	return nil
}
