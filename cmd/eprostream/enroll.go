package main

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/eprostream/eprostream/catalog"
	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/emitters"
	"github.com/eprostream/eprostream/internal/audit"
	"github.com/eprostream/eprostream/internal/connect"
	"github.com/eprostream/eprostream/internal/redis/fencedlock"
)

func newEnrollCmd(a *app) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "enroll --file roster.csv",
		Short: "Enrol subjects from a site roster (CSV: subject_id,study_id,site_id[,enrolled_at])",
		Long: `enroll reads a roster as sites export it, one subject a line with the header
subject_id,study_id,site_id and optionally enrolled_at (RFC 3339), checks every
line against the study catalogue (STUDIES_FILE), and enrols the subjects not
enrolled yet. A subject enrolled exactly so already is left as it is; one
enrolled elsewhere is reported and left as it is (a site change is a transfer:
POST /v1/subjects/{id}/transfer). Each enrolment records the operating-system
user as who made it. "-" reads standard input.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runEnroll(cmd.Context(), a, file) },
	}
	cmd.Flags().StringVar(&file, "file", "", "roster CSV (required; - for standard input)")
	_ = cmd.MarkFlagRequired("file")
	return cmd
}

func runEnroll(ctx context.Context, a *app, file string) error {
	in := io.Reader(os.Stdin)
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	rows, err := readRoster(in)
	if err != nil {
		return err
	}
	cat, err := catalog.Load(a.cfg.StudiesFile)
	if err != nil {
		return err
	}
	by := audit.CLI()
	r, dir, err := newRoster(a, "enroll")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	defer func() { stop(); <-done }()
	if err := catalog.WaitRecovered(ctx, r, 60*time.Second); err != nil {
		return err
	}
	em, err := emitters.NewEnrolmentEmitter(a.cfg.Emitters(), emitters.Deps{Log: a.log})
	if err != nil {
		return err
	}
	defer em.Close()
	rdb := connect.Redis(a.cfg)
	defer rdb.Close()
	reg := catalog.Registrar{Roster: r, Sender: em, Locks: fencedlock.New(rdb, a.cfg.RedisPrefix()), LockPrefix: a.cfg.TopicPrefix}
	var enrolled, unchanged, refused int
	for i, row := range rows {
		if errs := checkRosterRow(cat, row); errs != "" {
			fmt.Fprintf(a.stdout, "line %d: %s: %s\n", i+2, row.SubjectID, errs)
			refused++
			continue
		}
		now := time.Now().UTC()
		e := codecs.Enrolment{V: codecs.WireVersion, SubjectID: row.SubjectID, StudyID: row.StudyID, SiteID: row.SiteID,
			Status: codecs.EnrolmentActive, EnrolledAt: row.EnrolledAt, Revision: 1, By: by, At: now}
		if e.EnrolledAt.IsZero() {
			e.EnrolledAt = now
		}
		outcome, err := reg.Enrol(ctx, e)
		switch {
		case err != nil:
			return fmt.Errorf("line %d: %s: %w (lines before it are enrolled)", i+2, row.SubjectID, err)
		case outcome == catalog.Unchanged:
			unchanged++
		case outcome == catalog.Conflict:
			fmt.Fprintf(a.stdout, "line %d: %s: already enrolled elsewhere; left as it is\n", i+2, row.SubjectID)
			refused++
		default:
			enrolled++
		}
	}
	fmt.Fprintf(a.stdout, "enroll: %d enrolled, %d already enrolled so, %d refused\n", enrolled, unchanged, refused)
	if refused > 0 {
		return errors.New("enroll: some lines were refused (see above)")
	}
	return nil
}

type rosterRow struct {
	SubjectID, StudyID, SiteID string
	EnrolledAt                 time.Time
}

func readRoster(in io.Reader) ([]rosterRow, error) {
	recs, err := csv.NewReader(in).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("enroll: %w", err)
	}
	if len(recs) < 2 {
		return nil, errors.New("enroll: the roster needs a header line and at least one subject")
	}
	col := map[string]int{}
	for i, h := range recs[0] {
		col[strings.ToLower(strings.TrimSpace(h))] = i
	}
	for _, need := range []string{"subject_id", "study_id", "site_id"} {
		if _, ok := col[need]; !ok {
			return nil, fmt.Errorf("enroll: the header lacks %s (want subject_id,study_id,site_id[,enrolled_at])", need)
		}
	}
	var rows []rosterRow
	for n, rec := range recs[1:] {
		get := func(name string) string {
			if i, ok := col[name]; ok && i < len(rec) {
				return strings.TrimSpace(rec[i])
			}
			return ""
		}
		row := rosterRow{SubjectID: get("subject_id"), StudyID: get("study_id"), SiteID: get("site_id")}
		if at := get("enrolled_at"); at != "" {
			t, err := time.Parse(time.RFC3339, at)
			if err != nil {
				return nil, fmt.Errorf("enroll: line %d: enrolled_at %q is not an RFC 3339 time", n+2, at)
			}
			row.EnrolledAt = t.UTC()
		}
		rows = append(rows, row)
	}
	return rows, nil
}

func checkRosterRow(cat *catalog.Catalogue, row rosterRow) string {
	for name, v := range map[string]string{"subject_id": row.SubjectID, "study_id": row.StudyID, "site_id": row.SiteID} {
		if err := codecs.CheckID(v); err != nil {
			return name + " " + strings.TrimPrefix(err.Error(), "codecs: invalid submission: id: ")
		}
	}
	studyErr, siteErr := cat.Check(row.StudyID, row.SiteID)
	if studyErr != nil {
		return "study_id " + studyErr.Error()
	}
	if siteErr != nil {
		return "site_id " + siteErr.Error()
	}
	return ""
}
