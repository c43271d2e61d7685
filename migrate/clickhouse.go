package migrate

import (
	"context"
	"fmt"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// ClickHouseDatabase creates database if it does not exist. conn must not be
// bound to database itself (it may not exist yet).
func ClickHouseDatabase(ctx context.Context, conn driver.Conn, database string) error {
	// database is validated by config (identifier characters only).
	if err := conn.Exec(ctx, "CREATE DATABASE IF NOT EXISTS `"+database+"`"); err != nil {
		return fmt.Errorf("migrate: create database %s: %w", database, err)
	}
	return nil
}
