package analytics_test

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/eprostream/eprostream/analytics"
	"github.com/eprostream/eprostream/internal/clickhouse/schema"
	"github.com/eprostream/eprostream/internal/testenv"
)

// The data set every query test reads (see seed). Local days are
// submitted_at + offset; A2 is UTC-5 and B1, B2 UTC+9, so their local days
// differ from the UTC days. Received at = submitted at + 30s.
//
//	study S1, site A: A1 PRO-CTCAE local 03-01..03-05; A2 local 03-01, 03-02 (twice);
//	                  A3 local 03-02 only
//	study S1, site B: B1 NRS-PAIN local 03-01, 03-02, 03-04, 03-05; B2 local 02-27 only
//	study S2, site D: D1 local 02-20 only
var submissions = []submission{
	// Out of time order on purpose: steepest_worsening must sort.
	{"a1-d3", "S1", "A", "A1", "PRO-CTCAE", "2026-03-03 08:00:00", 0, ctcae3(0, 0, 2)},
	{"a1-d1", "S1", "A", "A1", "PRO-CTCAE", "2026-03-01 08:00:00", 0, ctcae3(1, 0, 2)},
	{"a1-d5", "S1", "A", "A1", "PRO-CTCAE", "2026-03-05 08:00:00", 0, ctcae3(4, 1, 1)},
	{"a1-d2", "S1", "A", "A1", "PRO-CTCAE", "2026-03-02 08:00:00", 0, ctcae3(2, 0, 2)},
	{"a1-d4", "S1", "A", "A1", "PRO-CTCAE", "2026-03-04 08:00:00", 0, ctcae3(1, 3, 2)},
	// Only 3 reports of each item: never ranked by steepest_worsening.
	{"a2-r1", "S1", "A", "A2", "PRO-CTCAE", "2026-03-02 02:00:00", -5 * 3600, items{"PAIN_SEVERITY": 0, "NAUSEA_FREQUENCY": 1}},
	{"a2-r2", "S1", "A", "A2", "PRO-CTCAE", "2026-03-02 15:00:00", -5 * 3600, items{"PAIN_SEVERITY": 1, "NAUSEA_FREQUENCY": 0}},
	{"a2-r3", "S1", "A", "A2", "PRO-CTCAE", "2026-03-03 03:00:00", -5 * 3600, items{"PAIN_SEVERITY": 4, "NAUSEA_FREQUENCY": 2}},
	{"a3-r1", "S1", "A", "A3", "PRO-CTCAE", "2026-03-02 12:00:00", 0, items{"PAIN_SEVERITY": 0}},
	// Not PRO-CTCAE: a rise of 9 that steepest_worsening must not rank.
	{"b1-r1", "S1", "B", "B1", "NRS-PAIN", "2026-02-28 16:00:00", 9 * 3600, items{"PAIN_NRS": 0}},
	{"b1-r2", "S1", "B", "B1", "NRS-PAIN", "2026-03-01 20:00:00", 9 * 3600, items{"PAIN_NRS": 0}},
	{"b1-r3", "S1", "B", "B1", "NRS-PAIN", "2026-03-03 16:00:00", 9 * 3600, items{"PAIN_NRS": 0}},
	{"b1-r4", "S1", "B", "B1", "NRS-PAIN", "2026-03-04 16:00:00", 9 * 3600, items{"PAIN_NRS": 9}},
	{"b2-r1", "S1", "B", "B2", "NRS-PAIN", "2026-02-26 20:00:00", 9 * 3600, items{"PAIN_NRS": 1}},
	{"d1-r1", "S2", "D", "D1", "PRO-CTCAE", "2026-02-20 09:00:00", 0, items{"PAIN_SEVERITY": 1}},
}

// Delays from received_at: site A 1, 2, 3, 4, 10 s (in 03-01..03-04) and 20 s
// (03-05); site B 5 s (02-28) and 7 s (03-01). al-1 is replayed an hour
// later; dl-1 is time-driven (no submission).
var alerts = []alert{
	{"al-1", "S1", "A", "A1", "a1-d1", "2026-03-01 08:00:31"},
	{"al-1", "S1", "A", "A1", "a1-d1", "2026-03-01 09:00:00"},
	{"al-2", "S1", "A", "A1", "a1-d2", "2026-03-02 08:00:32"},
	{"al-3", "S1", "A", "A1", "a1-d3", "2026-03-03 08:00:33"},
	{"al-4", "S1", "A", "A2", "a2-r3", "2026-03-03 03:00:34"},
	{"al-5", "S1", "A", "A1", "a1-d4", "2026-03-04 08:00:40"},
	{"al-6", "S1", "A", "A1", "a1-d5", "2026-03-05 08:00:50"},
	{"bl-1", "S1", "B", "B1", "b1-r1", "2026-02-28 16:00:35"},
	{"bl-2", "S1", "B", "B1", "b1-r2", "2026-03-01 20:00:37"},
	{"dl-1", "S2", "D", "D1", "", "2026-03-02 12:00:00"},
}

func TestComplianceBySiteDay(t *testing.T) {
	ctx, conn, db := seed(t)
	rows := run(t, ctx, conn, db, "compliance_by_site_day", "2026-03-01", "2026-03-03")
	assertRows(t, rows, []string{"study_id", "site_id", "day", "reporting", "enrolled", "compliance_pct"}, []string{
		"S1 A 2026-03-01 2 2 100", // A2's report is on UTC 03-02, local 03-01
		"S1 A 2026-03-02 3 3 100", // A3 enrols (roster: transferred to A); A2 reports twice
		"S1 A 2026-03-03 1 3 33.3",
		"S1 B 2026-03-01 1 3 33.3", // B2 enrolled 02-27 by its first report; B9 on the roster, never reports
		"S1 B 2026-03-02 1 3 33.3",
		"S1 B 2026-03-03 0 3 0", // nobody reported: listed all the same
		"S2 D 2026-03-01 0 2 0", // D7 on the roster until its withdrawal on 03-02
		"S2 D 2026-03-02 0 2 0",
		"S2 D 2026-03-03 0 1 0",
	})
	assertTypes(t, rows[0], map[string]any{"day": time.Time{}, "reporting": uint64(0), "enrolled": uint64(0), "compliance_pct": 0.0})
}

func TestTimeToAlertBySite(t *testing.T) {
	ctx, conn, db := seed(t)
	from, to := utc("2026-02-28 00:00:00"), utc("2026-03-05 00:00:00")
	rows := run(t, ctx, conn, db, "time_to_alert_by_site", from, to)
	assertRows(t, rows, []string{"study_id", "site_id", "alerts", "p50_s", "p90_s"}, []string{
		"S1 A 5 3 10", // 1 2 3 4 10: al-1 once, at its first raise; al-6 after the range
		"S1 B 2 7 7",  // 5 7: quantileExact takes the upper of the two
	})
	assertTypes(t, rows[0], map[string]any{"alerts": uint64(0), "p50_s": int64(0), "p90_s": int64(0)})
	// Text bounds are UTC and the end is exclusive: al-2 and al-4 only (al-1
	// was first raised before the range, even if replayed within it).
	rows = run(t, ctx, conn, db, "time_to_alert_by_site", "2026-03-01 08:00:32", "2026-03-03 08:00:33")
	assertRows(t, rows, []string{"study_id", "site_id", "alerts", "p50_s", "p90_s"}, []string{"S1 A 2 4 4", "S1 B 1 7 7"})
}

func TestSymptomTrendBySubject(t *testing.T) {
	ctx, conn, db := seed(t)
	rows := run(t, ctx, conn, db, "symptom_trend_by_subject", "A2", "PAIN_SEVERITY")
	assertRows(t, rows, []string{"day", "reports", "mean_value", "max_value"}, []string{
		"2026-03-01 1 0 0", // UTC 03-02 02:00 at UTC-5
		"2026-03-02 2 2.5 4",
	})
	assertTypes(t, rows[0], map[string]any{"day": time.Time{}, "reports": uint64(0), "mean_value": 0.0, "max_value": 0.0})
	rows = run(t, ctx, conn, db, "symptom_trend_by_subject", "A1", "NAUSEA_FREQUENCY")
	assertRows(t, rows, []string{"day", "reports", "mean_value", "max_value"}, []string{
		"2026-03-01 1 0 0", "2026-03-02 1 0 0", "2026-03-03 1 0 0", "2026-03-04 1 3 3", "2026-03-05 1 1 1",
	})
}

func TestAlertsPer100SubjectDays(t *testing.T) {
	ctx, conn, db := seed(t)
	from, to := utc("2026-03-01 00:00:00"), utc("2026-03-03 00:00:00")
	rows := run(t, ctx, conn, db, "alerts_per_100_subject_days", from, to)
	assertRows(t, rows, []string{"study_id", "site_id", "alerts", "subject_days", "alerts_per_100_subject_days"}, []string{
		"S1 A 4 6 66.67", // A1 3 days, A2 2, A3 1; al-1..al-4 (al-1 once)
		"S1 B 1 2 50",    // bl-1 was raised on UTC 02-28
		"S2 D 1 0 NULL",  // a missed-diary alert and no report
	})
	assertTypes(t, rows[0], map[string]any{"alerts": uint64(0), "subject_days": uint64(0), "alerts_per_100_subject_days": (*float64)(nil)})
}

func TestSteepestWorsening(t *testing.T) {
	ctx, conn, db := seed(t)
	cols := []string{"study_id", "site_id", "subject_id", "item_code", "baseline", "latest", "rise"}
	rows := run(t, ctx, conn, db, "steepest_worsening", 2)
	assertRows(t, rows, cols, []string{
		"S1 A A1 PAIN_SEVERITY 1 4 3",    // 1 2 0 | 1 4
		"S1 A A1 NAUSEA_FREQUENCY 0 1 1", // 0 0 0 | 3 1: latest, not worst
	})
	rows = run(t, ctx, conn, db, "steepest_worsening", 10)
	assertRows(t, rows, cols, []string{
		"S1 A A1 PAIN_SEVERITY 1 4 3",
		"S1 A A1 NAUSEA_FREQUENCY 0 1 1",
		"S1 A A1 FATIGUE_SEVERITY 2 1 -1",
	})
	assertTypes(t, rows[0], map[string]any{"baseline": 0.0, "latest": 0.0, "rise": 0.0})
}

func TestNamesAndSQL(t *testing.T) {
	want := []string{"alerts_per_100_subject_days", "compliance_by_site_day", "steepest_worsening",
		"symptom_trend_by_subject", "time_to_alert_by_site"}
	if got := analytics.Names(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Names() = %v, want %v", got, want)
	}
	for _, name := range want {
		q, err := analytics.SQL(name, "wh")
		if err != nil || strings.Contains(q, "{db}") || !strings.Contains(q, "`wh`.") {
			t.Errorf("SQL(%s): %v\n%s", name, err, q)
		}
	}
	if _, err := analytics.SQL("nope", "wh"); err == nil || !strings.Contains(err.Error(), "steepest_worsening") {
		t.Errorf("SQL(nope) error %v, want one listing the known queries", err)
	}
	if _, err := analytics.SQL("../analytics", "wh"); err == nil {
		t.Error("SQL(../analytics) accepted")
	}
	if _, err := analytics.SQL("steepest_worsening", "wh; DROP"); err == nil {
		t.Error("SQL accepted a database that is not an identifier")
	}
	_, err := analytics.Run(context.Background(), nil, "wh", "compliance_by_site_day", "2026-03-01")
	if err == nil || !strings.Contains(err.Error(), "takes 2 parameters (from Date, to Date), got 1") {
		t.Errorf("Run with 1 of 2 parameters: %v", err)
	}
}

type items map[string]float64

func ctcae3(pain, nausea, fatigue float64) items {
	return items{"PAIN_SEVERITY": pain, "NAUSEA_FREQUENCY": nausea, "FATIGUE_SEVERITY": fatigue}
}

type submission struct {
	id, study, site, subject, instrument, at string
	offset                                   int32
	items                                    items
}

type alert struct{ id, study, site, subject, message, raised string }

func utc(s string) time.Time {
	t, err := time.ParseInLocation(time.DateTime, s, time.UTC)
	if err != nil {
		panic(err)
	}
	return t
}

// seed migrates a fresh database and inserts the data set.
func seed(t *testing.T) (context.Context, driver.Conn, string) {
	t.Helper()
	ctx := t.Context()
	conn, db := testenv.ClickHouse(t)
	if err := schema.Migrate(ctx, conn, db, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	insertSubmissions(t, ctx, conn, db)
	insertAlerts(t, ctx, conn, db)
	insertEnrolments(t, ctx, conn, db)
	return ctx, conn, db
}

// enrolments of the seed: B9 enrolled at B and never reported; D7 enrolled
// at D, withdrawn on 03-02; A3, on the roster, was transferred from B to A
// (revision 2).
func insertEnrolments(t *testing.T, ctx context.Context, conn driver.Conn, db string) {
	t.Helper()
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO "+db+".enrolments (enrolment_id, subject_id, study_id, site_id,"+
		" status, enrolled_at, ended_at, revision, by_key, at)")
	if err != nil {
		t.Fatal(err)
	}
	withdrawn := utc("2026-03-02 10:00:00")
	for _, e := range []struct {
		subject, study, site, status, enrolled string
		ended                                  *time.Time
		revision                               uint32
	}{
		{"B9", "S1", "B", "active", "2026-02-28 09:00:00", nil, 1},
		{"D7", "S2", "D", "active", "2026-02-20 09:00:00", nil, 1},
		{"D7", "S2", "D", "withdrawn", "2026-02-20 09:00:00", &withdrawn, 2},
		{"A3", "S1", "B", "active", "2026-03-02 08:00:00", nil, 1},
		{"A3", "S1", "A", "active", "2026-03-02 08:00:00", nil, 2},
	} {
		at := utc(e.enrolled)
		if err := batch.Append(e.subject+"#"+fmt.Sprint(e.revision), e.subject, e.study, e.site, e.status, at, e.ended,
			e.revision, "k1", at); err != nil {
			t.Fatal(err)
		}
	}
	if err := batch.Send(); err != nil {
		t.Fatal(err)
	}
}

func insertSubmissions(t *testing.T, ctx context.Context, conn driver.Conn, db string) {
	t.Helper()
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO "+db+".submissions (message_id, study_id, site_id, subject_id,"+
		" instrument, submitted_at, offset_s, received_at, item_codes, item_values)")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range submissions {
		var codes []string
		var values []float64
		for c, v := range s.items {
			codes, values = append(codes, c), append(values, v)
		}
		at := utc(s.at)
		if err := batch.Append(s.id, s.study, s.site, s.subject, s.instrument, at, s.offset,
			at.Add(30*time.Second), codes, values); err != nil {
			t.Fatal(err)
		}
	}
	if err := batch.Send(); err != nil {
		t.Fatal(err)
	}
}

func insertAlerts(t *testing.T, ctx context.Context, conn driver.Conn, db string) {
	t.Helper()
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO "+db+".alerts (alert_id, rule_id, severity, study_id,"+
		" site_id, subject_id, message_id, submitted_at, raised_at)")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range alerts {
		raised := utc(a.raised)
		if err := batch.Append(a.id, "test", "warning", a.study, a.site, a.subject, a.message,
			raised.Add(-time.Minute), raised); err != nil {
			t.Fatal(err)
		}
	}
	if err := batch.Send(); err != nil {
		t.Fatal(err)
	}
}

func run(t *testing.T, ctx context.Context, conn driver.Conn, db, name string, args ...any) []map[string]any {
	t.Helper()
	rows, err := analytics.Run(ctx, conn, db, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// assertRows compares rows, in order, with want: each row's cols joined by
// spaces, dates as YYYY-MM-DD and NULL for a nil pointer.
func assertRows(t *testing.T, rows []map[string]any, cols, want []string) {
	t.Helper()
	got := make([]string, len(rows))
	for i, row := range rows {
		fields := make([]string, len(cols))
		for j, c := range cols {
			v, ok := row[c]
			if !ok {
				t.Fatalf("row %d has no column %s: %v", i, c, row)
			}
			fields[j] = render(v)
		}
		got[i] = strings.Join(fields, " ")
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got rows\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
}

func render(v any) string {
	switch v := v.(type) {
	case time.Time:
		return v.UTC().Format(time.DateOnly)
	case *float64:
		if v == nil {
			return "NULL"
		}
		return fmt.Sprint(*v)
	}
	return fmt.Sprint(v)
}

func assertTypes(t *testing.T, row map[string]any, want map[string]any) {
	t.Helper()
	for c, w := range want {
		if reflect.TypeOf(row[c]) != reflect.TypeOf(w) {
			t.Errorf("column %s is %T, want %T", c, row[c], w)
		}
	}
}
