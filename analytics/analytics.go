// Package analytics holds the analysts' queries on the ClickHouse warehouse,
// one named SQL file each, embedded, and runs them:
//
//	query                        parameters, in order        answers
//	compliance_by_site_day       from Date, to Date          reporting / enrolled subjects per study, site and local day
//	time_to_alert_by_site        from DateTime, to DateTime  p50, p90 seconds from received_at to raised_at per study and site
//	symptom_trend_by_subject     subject_id, item_code       daily mean and max of one item for one subject, by local day
//	alerts_per_100_subject_days  from Date, to Date          alerts per 100 subject-days per study and site
//	steepest_worsening           limit                       subject x PRO-CTCAE item pairs rising most above baseline
//
// Each file's header says what it answers, its parameters and its columns.
// The files keep to what ClickHouse 18.16 accepts (no CTEs, no window
// functions, no server-side parameters): parameters are positional `?`,
// bound client-side by clickhouse-go, each used once, and `{db}` stands for
// the database. A Date parameter may be 'YYYY-MM-DD' or a time.Time, a
// DateTime one 'YYYY-MM-DD hh:mm:ss' (UTC) or a time.Time.
//
// The queries trust the warehouse sink to insert each message_id and
// alert_id once; alerts are nevertheless counted once per alert_id, because
// a replayed alert keeps its id.
package analytics

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"reflect"
	"regexp"
	"sort"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

//go:embed queries/*.sql
var queriesFS embed.FS

// Names returns the queries' names, sorted.
func Names() []string {
	files, _ := fs.Glob(queriesFS, "queries/*.sql") // the pattern is valid
	names := make([]string, 0, len(files))
	for _, f := range files {
		names = append(names, strings.TrimSuffix(strings.TrimPrefix(f, "queries/"), ".sql"))
	}
	sort.Strings(names)
	return names
}

var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// SQL returns query name, header comment included, with {db} replaced by
// database. database must be a plain identifier.
func SQL(name, database string) (string, error) {
	text, err := source(name)
	if err != nil {
		return "", err
	}
	if !identifier.MatchString(database) {
		return "", fmt.Errorf("analytics: database %q is not a plain identifier", database)
	}
	return strings.ReplaceAll(text, "{db}", "`"+database+"`"), nil
}

func source(name string) (string, error) {
	b, err := queriesFS.ReadFile("queries/" + name + ".sql")
	if err != nil || strings.ContainsAny(name, "/.") {
		return "", fmt.Errorf("analytics: unknown query %q (known: %s)", name, strings.Join(Names(), ", "))
	}
	return strings.TrimRight(strings.TrimSpace(string(b)), ";"), nil
}

// paramLine is a parameter in a query's header: "--   1. from Date  …".
var paramLine = regexp.MustCompile(`(?m)^--\s+\d+\.\s+(\w+)\s+(\w+)`)

// params returns the parameters query text declares, as "name Type".
func params(text string) []string {
	var out []string
	for _, m := range paramLine.FindAllStringSubmatch(text, -1) {
		out = append(out, m[1]+" "+m[2])
	}
	return out
}

// Run runs query name on database with args bound to its parameters, in
// the order its header gives, and returns the rows as column → value maps
// (values of the columns' Go scan types: string, uint64, float64,
// time.Time, pointers for Nullable columns).
func Run(ctx context.Context, conn driver.Conn, database, name string, args ...any) ([]map[string]any, error) {
	query, err := SQL(name, database)
	if err != nil {
		return nil, err
	}
	if want := params(query); len(args) != len(want) {
		return nil, fmt.Errorf("analytics: %s takes %d parameters (%s), got %d",
			name, len(want), strings.Join(want, ", "), len(args))
	}
	rows, err := conn.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("analytics: %s: %w", name, err)
	}
	defer rows.Close()
	out, err := scanMaps(rows)
	if err != nil {
		return nil, fmt.Errorf("analytics: %s: %w", name, err)
	}
	return out, nil
}

func scanMaps(rows driver.Rows) ([]map[string]any, error) {
	cols := rows.ColumnTypes()
	out := []map[string]any{}
	for rows.Next() {
		dest := make([]any, len(cols))
		for i, ct := range cols {
			dest[i] = reflect.New(ct.ScanType()).Interface()
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("scan: %w", err)
		}
		row := make(map[string]any, len(cols))
		for i, ct := range cols {
			row[ct.Name()] = reflect.ValueOf(dest[i]).Elem().Interface()
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("rows: %w", err)
	}
	return out, nil
}
