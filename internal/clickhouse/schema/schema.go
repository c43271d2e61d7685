// Package schema brings a ClickHouse database to the shape eprostream needs:
// versioned migrations (migrations/NNNN_name.sql) applied once each, in order.
package schema

import (
	"context"
	"embed"
	"fmt"
	"log/slog"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// CreateDatabase creates database if it does not exist. conn must not be
// bound to database itself (it may not exist yet).
func CreateDatabase(ctx context.Context, conn driver.Conn, database string) error {
	// database is validated by config (identifier characters only).
	if err := conn.Exec(ctx, "CREATE DATABASE IF NOT EXISTS `"+database+"`"); err != nil {
		return fmt.Errorf("schema: create database %s: %w", database, err)
	}
	return nil
}

//go:embed migrations/*.sql
var clickhouseFS embed.FS

// Migration is one versioned schema change: NNNN_name.sql, statements
// separated by ";" at the end of a line, {db} standing for the database.
type Migration struct {
	Version    uint32
	Name       string
	Statements []string
}

// Migrations returns the embedded migrations in version order.
func Migrations() ([]Migration, error) {
	entries, err := clickhouseFS.ReadDir("migrations")
	if err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	var out []Migration
	for _, e := range entries {
		name := strings.TrimSuffix(e.Name(), ".sql")
		num, rest, ok := strings.Cut(name, "_")
		v, err := strconv.ParseUint(num, 10, 32)
		if !ok || err != nil {
			return nil, fmt.Errorf("schema: %s: want NNNN_name.sql", e.Name())
		}
		b, err := clickhouseFS.ReadFile(path.Join("migrations", e.Name()))
		if err != nil {
			return nil, fmt.Errorf("schema: %w", err)
		}
		out = append(out, Migration{Version: uint32(v), Name: rest, Statements: splitStatements(string(b))})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

func splitStatements(sql string) []string {
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(sql, "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "--") || trimmed == "" {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.HasSuffix(trimmed, ";") {
			out = append(out, strings.TrimSuffix(strings.TrimSpace(cur.String()), ";"))
			cur.Reset()
		}
	}
	if s := strings.TrimSpace(cur.String()); s != "" {
		out = append(out, s)
	}
	return out
}

// Migrate applies the migrations database does not have yet, recording
// each in database.schema_migrations. Every statement is idempotent (IF NOT
// EXISTS), so a run interrupted between a statement and its record is
// completed by the next run. The DDL keeps to what ClickHouse 18.16 accepts
// and modern servers still do.
func Migrate(ctx context.Context, conn driver.Conn, database string, log *slog.Logger) error {
	if err := CreateDatabase(ctx, conn, database); err != nil {
		return err
	}
	db := "`" + database + "`"
	if err := conn.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+db+`.schema_migrations (
		version UInt32, name String, applied_at DateTime('UTC')) ENGINE = ReplacingMergeTree ORDER BY version`); err != nil {
		return fmt.Errorf("schema: schema_migrations: %w", err)
	}
	applied := map[uint32]bool{}
	rows, err := conn.Query(ctx, "SELECT version FROM "+db+".schema_migrations")
	if err != nil {
		return fmt.Errorf("schema: read schema_migrations: %w", err)
	}
	for rows.Next() {
		var v uint32
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return fmt.Errorf("schema: read schema_migrations: %w", err)
		}
		applied[v] = true
	}
	rows.Close()
	migrations, err := Migrations()
	if err != nil {
		return err
	}
	for _, m := range migrations {
		if applied[m.Version] {
			continue
		}
		for _, stmt := range m.Statements {
			if err := conn.Exec(ctx, strings.ReplaceAll(stmt, "{db}", db)); err != nil {
				return fmt.Errorf("schema: clickhouse %04d_%s: %w", m.Version, m.Name, err)
			}
		}
		batch, err := conn.PrepareBatch(ctx, "INSERT INTO "+db+".schema_migrations (version, name, applied_at)")
		if err != nil {
			return fmt.Errorf("schema: record %04d: %w", m.Version, err)
		}
		if err := batch.Append(m.Version, m.Name, time.Now().UTC()); err != nil {
			return fmt.Errorf("schema: record %04d: %w", m.Version, err)
		}
		if err := batch.Send(); err != nil {
			return fmt.Errorf("schema: record %04d: %w", m.Version, err)
		}
		log.Info("clickhouse migration applied", "version", m.Version, "name", m.Name)
	}
	return nil
}
