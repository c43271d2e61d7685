package views_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/internal/clickhouse/chsink"
	"github.com/eprostream/eprostream/internal/clickhouse/schema"
	"github.com/eprostream/eprostream/internal/testenv"
	"github.com/eprostream/eprostream/processors/warehouse"
	"github.com/eprostream/eprostream/views"
)

func insert(t *testing.T, conn driver.Conn, db string, table *chsink.Table, rows ...chsink.Row) {
	t.Helper()
	batch, err := conn.PrepareBatch(context.Background(), "INSERT INTO `"+db+"`."+table.Name+" ("+strings.Join(table.Columns, ", ")+")")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if err := batch.Append(r.Values...); err != nil {
			t.Fatal(err)
		}
	}
	if err := batch.Send(); err != nil {
		t.Fatal(err)
	}
}

func TestSiteDashboardsFromTheWarehouseThroughTheCache(t *testing.T) {
	conn, db := testenv.ClickHouse(t)
	rdb, prefix := testenv.Redis(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx := context.Background()
	if err := schema.Migrate(ctx, conn, db, log); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	sub := func(id, site, subject string, at time.Time) chsink.Row {
		v := 2.0
		r, err := warehouse.SubmissionRow(codecs.CleanSubmission{V: 1, MessageID: id, StudyID: "ONC-301", SiteID: site,
			SubjectID: subject, Instrument: "PRO-CTCAE", Format: "native", SubmittedAt: at, ReceivedAt: at,
			Items: []codecs.CleanItem{{Code: "PAIN_SEVERITY", Num: &v}}}, warehouse.Source{Topic: "clean"})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	// m1 lies earlier today whatever the hour (reports today are by the UTC day).
	midnight := now.Truncate(24 * time.Hour)
	today := midnight.Add(now.Sub(midnight) / 2)
	insert(t, conn, db, warehouse.Submissions,
		sub("m1", "SITE-001", "S1", today), sub("m2", "SITE-001", "S2", now.Add(-2*time.Hour)),
		sub("m3", "SITE-001", "S3", now.Add(-72*time.Hour)), sub("m4", "SITE-002", "S4", now.Add(-time.Minute)))
	alert := func(id, sev, site string) chsink.Row {
		r, err := warehouse.AlertRow(codecs.Alert{V: 1, AlertID: id, RuleID: "r", RuleVersion: 1, Severity: sev, StudyID: "ONC-301",
			SiteID: site, SubjectID: "S1", MessageID: "m1", SubmittedAt: now, RaisedAt: now}, warehouse.Source{Topic: "alerts"})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	insert(t, conn, db, warehouse.Alerts, alert("a1", "urgent", "SITE-001"), alert("a2", "urgent", "SITE-001"), alert("a3", "warning", "SITE-002"))
	ack, _, _ := warehouse.CommandRow(codecs.Command{CommandID: "ack:a2", Kind: codecs.CommandAlertAcknowledged, StudyID: "ONC-301",
		SubjectID: "S1", AlertID: "a2", At: now}, warehouse.Source{Topic: "commands"})
	insert(t, conn, db, warehouse.Commands, ack)

	sites, err := views.NewSites(views.SitesConfig{Database: db, RedisPrefix: prefix}, views.SitesDeps{ClickHouse: conn, Redis: rdb, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	r := newReadSide(t)
	r.sites = sites
	r.start()
	get := func(path string) (int, []byte) {
		resp, b := r.get(path, r.token)
		return resp.StatusCode, b
	}
	status, body := get("/v1/sites?study=ONC-301")
	var got []views.SiteDashboard
	_ = json.Unmarshal(body, &got)
	if status != 200 || len(got) != 2 {
		t.Fatalf("%d %s", status, body)
	}
	s1, s2 := got[0], got[1]
	if s1.SiteID != "SITE-001" || s1.ActiveSubjects != 3 || s1.ReportsToday == 0 || s1.OpenUrgent != 1 ||
		s1.Compliance < 0.66 || s1.Compliance > 0.67 || s2.ActiveSubjects != 1 || s2.OpenWarning != 1 || s2.Compliance != 1 {
		t.Fatalf("dashboards %+v", got)
	}
	// The last 14 days, today last: S3's report of 3 days ago is the one
	// report of that day.
	if s1.ReportedPerDay != nil || strings.Contains(string(body), "reported_per_day") {
		t.Fatalf("days without ?with=days: %s", body)
	}
	status, body = get("/v1/sites?study=ONC-301&with=days")
	got = nil
	_ = json.Unmarshal(body, &got)
	if status != 200 || len(got) != 2 {
		t.Fatalf("with=days: %d %s", status, body)
	}
	if s1 = got[0]; s1.SiteID != "SITE-001" {
		t.Fatalf("with=days: first site %+v", s1)
	}
	if status, _ := get("/v1/sites?study=ONC-301&with=weeks"); status != 400 {
		t.Fatalf("with=weeks: %d, want 400", status)
	}
	if d := s1.ReportedPerDay; len(d) != 14 || s1.DaysFrom != now.AddDate(0, 0, -13).Format(time.DateOnly) || d[13] == 0 || d[10] != 1 || d[0] != 0 {
		t.Fatalf("SITE-001's days from %s: %v", s1.DaysFrom, s1.ReportedPerDay)
	}
	if ttl := rdb.PTTL(ctx, prefix+"hot:site_dashboards:val:ONC-301").Val(); ttl <= 0 || ttl > 70*time.Second {
		t.Fatalf("cached dashboard TTL %v", ttl)
	}
	if status, _ := get("/v1/sites?study=XYZ-999"); status != 404 {
		t.Fatalf("unknown study: %d", status)
	}
	if v := rdb.Get(ctx, prefix+"hot:site_dashboards:val:XYZ-999").Val(); v != "n" {
		t.Fatalf("unknown study not cached as a miss: %q", v)
	}
	if status, _ := get("/v1/sites?study=bad%20id"); status != 400 {
		t.Fatalf("bad study id: %d", status)
	}
	status, body = get("/v1/studies/ONC-301/summary")
	var sum views.StudySummary
	_ = json.Unmarshal(body, &sum)
	if status != 200 || sum.Sites != 2 || sum.ActiveSubjects != 4 || sum.OpenUrgent != 1 || sum.OpenWarning != 1 || sum.Compliance != 0.75 {
		t.Fatalf("summary %d %s", status, body)
	}
	if status, body := get("/v1/studies"); status != 200 || string(body) != "[\"ONC-301\"]\n" {
		t.Fatalf("studies: %d %s", status, body)
	}
	// A key of another study sees none of it.
	other := r.key("CAR-200", "read")
	if resp, body := r.get("/v1/sites?study=ONC-301", other); resp.StatusCode != 403 {
		t.Fatalf("other study's key: %d %s", resp.StatusCode, body)
	}
	if resp, body := r.get("/v1/studies/ONC-301/summary", other); resp.StatusCode != 403 {
		t.Fatalf("other study's key, summary: %d %s", resp.StatusCode, body)
	}
	if resp, body := r.get("/v1/sites", other); resp.StatusCode != 200 || string(body) != "[]\n" {
		t.Fatalf("other study's key, all sites: %d %s", resp.StatusCode, body)
	}
}

// A subject enrolled at a site who never reported counts on the site's
// dashboard: as enrolled, in the compliance denominator, and a site whose
// only subjects never reported is listed.
func TestSiteDashboardsCountEnrolledSubjectsWhoNeverReported(t *testing.T) {
	conn, db := testenv.ClickHouse(t)
	rdb, prefix := testenv.Redis(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx := context.Background()
	if err := schema.Migrate(ctx, conn, db, log); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	v := 1.0
	rep, err := warehouse.SubmissionRow(codecs.CleanSubmission{V: 1, MessageID: "m1", StudyID: "ONC-301", SiteID: "SITE-001",
		SubjectID: "S1", Instrument: "PRO-CTCAE", Format: "native", SubmittedAt: now.Add(-time.Hour), ReceivedAt: now,
		Items: []codecs.CleanItem{{Code: "PAIN_SEVERITY", Num: &v}}}, warehouse.Source{Topic: "clean"})
	if err != nil {
		t.Fatal(err)
	}
	insert(t, conn, db, warehouse.Submissions, rep)
	enrol := func(subject, site, status string, rev int, off int64) chsink.Row {
		r, err := warehouse.EnrolmentRow(codecs.Enrolment{V: 1, SubjectID: subject, StudyID: "ONC-301", SiteID: site, Status: status,
			EnrolledAt: now.Add(-96 * time.Hour), Revision: rev, By: "k", At: now}, warehouse.Source{Topic: "enrolments", Partition: 0, Offset: off})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	insert(t, conn, db, warehouse.Enrolments, enrol("S1", "SITE-001", "active", 1, 0), enrol("S2", "SITE-001", "active", 1, 1),
		enrol("S3", "SITE-003", "active", 1, 2), enrol("S4", "SITE-003", "active", 1, 3), enrol("S4", "SITE-003", "withdrawn", 2, 4))
	sites, err := views.NewSites(views.SitesConfig{Database: db, RedisPrefix: prefix}, views.SitesDeps{ClickHouse: conn, Redis: rdb, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	r := newReadSide(t)
	r.sites = sites
	r.start()
	resp, body := r.get("/v1/sites?study=ONC-301", r.token)
	var got []views.SiteDashboard
	_ = json.Unmarshal(body, &got)
	if resp.StatusCode != 200 || len(got) != 2 {
		t.Fatalf("%d %s, want SITE-001 and SITE-003", resp.StatusCode, body)
	}
	if s1 := got[0]; s1.SiteID != "SITE-001" || s1.EnrolledSubjects != 2 || s1.ActiveSubjects != 1 || s1.Compliance != 0.5 {
		t.Fatalf("SITE-001 %+v, want 2 enrolled (S2 never reported), 1 active, compliance 0.5", s1)
	}
	if s3 := got[1]; s3.SiteID != "SITE-003" || s3.EnrolledSubjects != 1 || s3.Compliance != 0 {
		t.Fatalf("SITE-003 %+v, want 1 enrolled (S4 withdrawn), compliance 0", s3)
	}
}
