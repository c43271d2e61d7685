package views

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sort"
	"time"

	"github.com/eprostream/eprostream/internal/httpauth"
	"github.com/eprostream/eprostream/internal/logging"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/internal/redis/hotcache"
)

// SiteDashboard is one site's line on the dashboard.
type SiteDashboard struct {
	StudyID        string `json:"study_id"`
	SiteID         string `json:"site_id"`
	ActiveSubjects uint64 `json:"active_subjects"` // reported in the last 7 days
	// EnrolledSubjects are the site's active subjects on the registry's
	// roster, also those who never reported, plus reporters of the last 7
	// days the roster does not hold.
	EnrolledSubjects uint64 `json:"enrolled_subjects"`
	ReportsToday     uint64 `json:"reports_today"` // UTC day
	OpenUrgent       uint64 `json:"open_urgent"`   // raised in the last 7 days, not acknowledged
	OpenWarning      uint64 `json:"open_warning"`
	OpenInfo         uint64 `json:"open_info"`
	// Compliance is the share of enrolled subjects who reported in the
	// last 24 hours: daily-diary compliance.
	Compliance float64 `json:"compliance"`
	// With ?with=days, ReportedPerDay are the site's subjects who reported
	// on each of the last 14 UTC days, from DaysFrom (YYYY-MM-DD), oldest
	// first, today last; a day's compliance is its count over
	// EnrolledSubjects (as enrolled now; at most 1). They are cached apart,
	// so reads without them cost what they did.
	DaysFrom       string   `json:"days_from,omitempty"`
	ReportedPerDay []uint64 `json:"reported_per_day,omitempty"`
}

// SiteDays are a study's sites' reporting subjects per day, as cached.
type SiteDays struct {
	From  string              `json:"from"`
	Sites map[string][]uint64 `json:"sites"`
}

// complianceDays is how many days Days covers.
const complianceDays = 14

// Sites serves per-site dashboards computed from the warehouse and cached
// in Redis (hotcache: ids validated and unknown studies cached as misses,
// one rebuild per key across processes, TTLs spread). The warehouse is the
// source because compliance and "today" need every submission, which only
// ClickHouse keeps; the cache keeps a storm of dashboards from reaching it:
// each study is computed at most once per TTL (1 minute) by all processes
// together. The list of studies (reference data) is cached the same way.
type Sites struct {
	conn       driver.Conn
	db         string
	dashboards *hotcache.Cache[[]SiteDashboard]
	perDay     *hotcache.Cache[SiteDays]
	studies    *hotcache.Cache[[]string]
	log        *slog.Logger
}

// SitesConfig says where the dashboards come from and are cached.
type SitesConfig struct {
	Database    string // the warehouse's ClickHouse database; required
	RedisPrefix string // eprostream:{env}:
}

// SitesDeps are the dashboards' connections.
type SitesDeps struct {
	ClickHouse driver.Conn           // required
	Redis      redis.UniversalClient // required
	Registry   prometheus.Registerer // nil: metrics not registered
	Log        *slog.Logger          // nil discards
}

// NewSites returns the site dashboards of cfg.Database.
func NewSites(cfg SitesConfig, deps SitesDeps) (*Sites, error) {
	if cfg.Database == "" || deps.ClickHouse == nil || deps.Redis == nil {
		return nil, errors.New("views: SitesConfig.Database, SitesDeps.ClickHouse and Redis are required")
	}
	conn, db, rdb, prefix, reg, log := deps.ClickHouse, cfg.Database, deps.Redis, cfg.RedisPrefix, deps.Registry, logging.OrDiscard(deps.Log)
	s := &Sites{conn: conn, db: db, log: log}
	var err error
	s.dashboards, err = hotcache.New(rdb, prefix, hotcache.Config[[]SiteDashboard]{Name: "site_dashboards",
		Valid: codecs.CheckID, TTL: time.Minute, NegativeTTL: 30 * time.Second, Registry: reg, Log: log})
	if err != nil {
		return nil, fmt.Errorf("views: %w", err)
	}
	s.perDay, err = hotcache.New(rdb, prefix, hotcache.Config[SiteDays]{Name: "site_days",
		Valid: codecs.CheckID, TTL: time.Minute, NegativeTTL: 30 * time.Second, Registry: reg, Log: log})
	if err != nil {
		return nil, fmt.Errorf("views: %w", err)
	}
	s.studies, err = hotcache.New(rdb, prefix, hotcache.Config[[]string]{Name: "studies",
		Valid: func(k string) error { return nil }, TTL: 5 * time.Minute, Registry: reg, Log: log})
	if err != nil {
		return nil, fmt.Errorf("views: %w", err)
	}
	return s, nil
}

// StudySummary adds up a study's site dashboards.
type StudySummary struct {
	StudyID          string  `json:"study_id"`
	Sites            int     `json:"sites"`
	ActiveSubjects   uint64  `json:"active_subjects"`
	EnrolledSubjects uint64  `json:"enrolled_subjects"`
	ReportsToday     uint64  `json:"reports_today"`
	OpenUrgent       uint64  `json:"open_urgent"`
	OpenWarning      uint64  `json:"open_warning"`
	OpenInfo         uint64  `json:"open_info"`
	Compliance       float64 `json:"compliance"` // over all the study's enrolled subjects
}

// Summarize adds up site dashboards of one study.
func Summarize(study string, sites []SiteDashboard) StudySummary {
	sum := StudySummary{StudyID: study, Sites: len(sites)}
	var reported float64
	for _, d := range sites {
		sum.ActiveSubjects += d.ActiveSubjects
		sum.EnrolledSubjects += d.EnrolledSubjects
		sum.ReportsToday += d.ReportsToday
		sum.OpenUrgent += d.OpenUrgent
		sum.OpenWarning += d.OpenWarning
		sum.OpenInfo += d.OpenInfo
		reported += d.Compliance * float64(d.EnrolledSubjects)
	}
	if sum.EnrolledSubjects > 0 {
		sum.Compliance = reported / float64(sum.EnrolledSubjects)
	}
	return sum
}

// Register adds GET /v1/sites?study=, GET /v1/studies,
// GET /v1/studies/{id}/summary and GET /v1/studies/{study}/subjects/{id}/history.
func (s *Sites) Register(route Route) {
	route("GET /v1/sites", s.getSites)
	route("GET /v1/studies", s.getStudies)
	route("GET /v1/studies/{id}/summary", s.getSummary)
	route("GET /v1/studies/{study}/subjects/{id}/history", s.getHistory)
}

// getSummary is a study's summary, from its cached site dashboards.
func (s *Sites) getSummary(w http.ResponseWriter, r *http.Request) {
	study := r.PathValue("id")
	if codecs.CheckID(study) == nil && !httpauth.KeyOf(r).MayActFor(study) {
		writeJSON(w, http.StatusForbidden, problem{Error: "this API key may not read study " + study})
		return
	}
	d, err := s.Dashboards(r.Context(), study)
	switch {
	case errors.Is(err, hotcache.ErrBadKey):
		writeJSON(w, http.StatusBadRequest, problem{Error: "study is not a valid id"})
	case errors.Is(err, hotcache.ErrNotFound):
		writeJSON(w, http.StatusNotFound, problem{Error: "no submissions for this study in the last 7 days"})
	case err != nil:
		s.log.Warn("study summary unavailable", "study_id", study, "err", err)
		writeJSON(w, http.StatusServiceUnavailable, problem{Error: "the study summary cannot be computed right now"})
	default:
		writeJSON(w, http.StatusOK, Summarize(study, d))
	}
}

func (s *Sites) getStudies(w http.ResponseWriter, r *http.Request) {
	studies, err := s.Studies(r.Context())
	if err != nil {
		s.log.Warn("studies unavailable", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, problem{Error: "the study list cannot be read right now"})
		return
	}
	writeJSON(w, http.StatusOK, readableStudies(httpauth.KeyOf(r), studies))
}

// getSites answers the dashboards of ?study=, or of every study.
func (s *Sites) getSites(w http.ResponseWriter, r *http.Request) {
	studies := []string{r.URL.Query().Get("study")}
	if studies[0] == "" {
		var err error
		if studies, err = s.Studies(r.Context()); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, problem{Error: "the study list cannot be read right now"})
			return
		}
		studies = readableStudies(httpauth.KeyOf(r), studies)
	} else if !httpauth.KeyOf(r).MayActFor(studies[0]) {
		writeJSON(w, http.StatusForbidden, problem{Error: "this API key may not read study " + studies[0]})
		return
	}
	withDays := false
	switch r.URL.Query().Get("with") {
	case "":
	case "days":
		withDays = true
	default:
		writeJSON(w, http.StatusBadRequest, problem{Error: "with must be days (the last 14 days per site) or absent"})
		return
	}
	out := []SiteDashboard{}
	for _, study := range studies {
		d, err := s.Dashboards(r.Context(), study)
		if err == nil && withDays {
			d, err = s.addDays(r.Context(), study, d)
		}
		switch {
		case errors.Is(err, hotcache.ErrBadKey):
			writeJSON(w, http.StatusBadRequest, problem{Error: "study is not a valid id"})
			return
		case errors.Is(err, hotcache.ErrNotFound):
			if len(studies) == 1 {
				writeJSON(w, http.StatusNotFound, problem{Error: "no submissions for this study in the last 7 days"})
				return
			}
		case err != nil:
			s.log.Warn("site dashboards unavailable", "study_id", study, "err", err)
			writeJSON(w, http.StatusServiceUnavailable, problem{Error: "site dashboards cannot be computed right now"})
			return
		}
		out = append(out, d...)
	}
	writeJSON(w, http.StatusOK, out)
}

// Studies lists the studies with submissions, through the cache.
func (s *Sites) Studies(ctx context.Context) ([]string, error) {
	return s.studies.Get(ctx, "all", func(ctx context.Context) ([]string, error) {
		var out []string
		rows, err := s.conn.Query(ctx, "SELECT DISTINCT study_id FROM `"+s.db+"`.submissions ORDER BY study_id")
		if err != nil {
			return nil, fmt.Errorf("views: studies: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				return nil, fmt.Errorf("views: studies: %w", err)
			}
			out = append(out, id)
		}
		return out, rows.Err()
	})
}

// Dashboards returns a study's site dashboards, through the cache;
// hotcache.ErrNotFound when the study has no recent submissions.
func (s *Sites) Dashboards(ctx context.Context, study string) ([]SiteDashboard, error) {
	return s.dashboards.Get(ctx, study, func(ctx context.Context) ([]SiteDashboard, error) {
		return s.compute(ctx, study)
	})
}

const sitesSQL = `SELECT site_id,
    uniqExact(subject_id) AS active,
    countIf(toDate(submitted_at) = today()) AS today,
    uniqExactIf(subject_id, submitted_at >= now() - 86400) AS recent
FROM %[1]s.submissions
WHERE study_id = ? AND submitted_at >= now() - 7 * 86400
GROUP BY site_id ORDER BY site_id`

const enrolledSQL = `SELECT site_id, uniqExact(subject_id) AS enrolled FROM (
    SELECT site_id, subject_id FROM (
        SELECT argMax(site_id, revision) AS site_id, subject_id, toString(argMax(status, revision)) AS st
        FROM %[1]s.enrolments WHERE study_id = ? GROUP BY subject_id
    ) WHERE st = 'active'
    UNION ALL
    SELECT site_id, subject_id FROM %[1]s.submissions
    WHERE study_id = ? AND submitted_at >= now() - 7 * 86400
      AND subject_id NOT IN (SELECT subject_id FROM %[1]s.enrolments WHERE study_id = ?)
) GROUP BY site_id ORDER BY site_id`

const daysSQL = `SELECT site_id, toString(toDate(submitted_at, 'UTC')) AS day, uniqExact(subject_id) AS n
FROM %[1]s.submissions
WHERE study_id = ? AND submitted_at >= ?
GROUP BY site_id, day`

const openAlertsSQL = `SELECT site_id, toString(severity) AS sev, count() AS n
FROM %[1]s.alerts
WHERE study_id = ? AND raised_at >= now() - 7 * 86400
  AND alert_id NOT IN (SELECT alert_id FROM %[1]s.operator_commands WHERE study_id = ? AND kind = 'alert_acknowledged')
GROUP BY site_id, sev`

func (s *Sites) compute(ctx context.Context, study string) ([]SiteDashboard, error) {
	db := "`" + s.db + "`"
	rows, err := s.conn.Query(ctx, fmt.Sprintf(sitesSQL, db), study)
	if err != nil {
		return nil, fmt.Errorf("views: site dashboards: %w", err)
	}
	bySite := map[string]*SiteDashboard{}
	recent := map[string]uint64{}
	for rows.Next() {
		d := SiteDashboard{StudyID: study}
		var n uint64
		if err := rows.Scan(&d.SiteID, &d.ActiveSubjects, &d.ReportsToday, &n); err != nil {
			rows.Close()
			return nil, fmt.Errorf("views: site dashboards: %w", err)
		}
		bySite[d.SiteID], recent[d.SiteID] = &d, n
	}
	rows.Close()
	if err := s.addEnrolled(ctx, db, study, bySite); err != nil {
		return nil, err
	}
	out := make([]SiteDashboard, 0, len(bySite))
	for _, d := range bySite {
		if d.EnrolledSubjects > 0 {
			d.Compliance = float64(recent[d.SiteID]) / float64(d.EnrolledSubjects)
		}
		out = append(out, *d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].SiteID < out[j].SiteID })
	if len(out) == 0 {
		return nil, hotcache.ErrNotFound
	}
	return out, s.addOpenAlerts(ctx, db, study, out)
}

// addEnrolled counts each site's enrolled subjects, adding the sites whose
// subjects are enrolled but did not report in the last 7 days.
func (s *Sites) addEnrolled(ctx context.Context, db, study string, bySite map[string]*SiteDashboard) error {
	rows, err := s.conn.Query(ctx, fmt.Sprintf(enrolledSQL, db), study, study, study)
	if err != nil {
		return fmt.Errorf("views: enrolled subjects: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var site string
		var n uint64
		if err := rows.Scan(&site, &n); err != nil {
			return fmt.Errorf("views: enrolled subjects: %w", err)
		}
		d, ok := bySite[site]
		if !ok {
			d = &SiteDashboard{StudyID: study, SiteID: site}
			bySite[site] = d
		}
		d.EnrolledSubjects = n
	}
	return rows.Err()
}

// addDays returns d with each site's ReportedPerDay, through their cache.
func (s *Sites) addDays(ctx context.Context, study string, d []SiteDashboard) ([]SiteDashboard, error) {
	days, err := s.perDay.Get(ctx, study, func(ctx context.Context) (SiteDays, error) {
		sd, err := s.days(ctx, "`"+s.db+"`", study)
		if err != nil {
			return SiteDays{}, err
		}
		out := SiteDays{From: sd.dates[0], Sites: map[string][]uint64{}}
		for site := range sd.reported {
			out.Sites[site] = sd.of(site)
		}
		return out, nil
	})
	if err != nil {
		return nil, err
	}
	d = slices.Clone(d)
	for i := range d {
		d[i].DaysFrom, d[i].ReportedPerDay = days.From, days.Sites[d[i].SiteID]
		if d[i].ReportedPerDay == nil {
			d[i].ReportedPerDay = make([]uint64, complianceDays)
		}
	}
	return d, nil
}

// siteDays are the subjects who reported, per site and UTC day.
type siteDays struct {
	dates    []string // oldest first
	reported map[string]map[string]uint64
}

// of is one site's ReportedPerDay.
func (sd siteDays) of(site string) []uint64 {
	out := make([]uint64, len(sd.dates))
	for i, date := range sd.dates {
		out[i] = sd.reported[site][date]
	}
	return out
}

// days counts each site's reporting subjects on each of the last 14 UTC days.
func (s *Sites) days(ctx context.Context, db, study string) (siteDays, error) {
	today := time.Now().UTC().Truncate(24 * time.Hour)
	first := today.AddDate(0, 0, -(complianceDays - 1))
	sd := siteDays{reported: map[string]map[string]uint64{}}
	for d := first; !d.After(today); d = d.AddDate(0, 0, 1) {
		sd.dates = append(sd.dates, d.Format(time.DateOnly))
	}
	rows, err := s.conn.Query(ctx, fmt.Sprintf(daysSQL, db), study, first)
	if err != nil {
		return sd, fmt.Errorf("views: compliance per day: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var site, day string
		var n uint64
		if err := rows.Scan(&site, &day, &n); err != nil {
			return sd, fmt.Errorf("views: compliance per day: %w", err)
		}
		if sd.reported[site] == nil {
			sd.reported[site] = map[string]uint64{}
		}
		sd.reported[site][day] = n
	}
	return sd, rows.Err()
}

func (s *Sites) addOpenAlerts(ctx context.Context, db, study string, out []SiteDashboard) error {
	rows, err := s.conn.Query(ctx, fmt.Sprintf(openAlertsSQL, db), study, study)
	if err != nil {
		return fmt.Errorf("views: open alerts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var site, sev string
		var n uint64
		if err := rows.Scan(&site, &sev, &n); err != nil {
			return fmt.Errorf("views: open alerts: %w", err)
		}
		i := slices.IndexFunc(out, func(d SiteDashboard) bool { return d.SiteID == site })
		if i < 0 {
			continue // a site with alerts but no submission this week
		}
		switch sev {
		case codecs.SeverityUrgent:
			out[i].OpenUrgent = n
		case codecs.SeverityWarning:
			out[i].OpenWarning = n
		default:
			out[i].OpenInfo = n
		}
	}
	return rows.Err()
}

// Stats are the caches' counters: hits, misses and backing-store loads of
// the site dashboards and of the study list.
func (s *Sites) Stats() (dashboards, studies hotcache.Stats) {
	return s.dashboards.Stats(), s.studies.Stats()
}
