// Package loadgen simulates a clinical trial deterministically and produces
// the submission records its patients' apps would send to epro-submissions:
// daily PRO-CTCAE, NRS-PAIN and VITALS reports, weekly PHQ-9, occasional
// free-text diaries, with a share of clinically abnormal values, re-sent
// duplicates and malformed records. The same Config always yields the same
// records, byte for byte.
package loadgen

import (
	"errors"
	"fmt"
	"time"

	"github.com/eprostream/eprostream/codecs"
)

// Defaults of Config.
const (
	DefaultStudies         = 2
	DefaultSitesPerStudy   = 10
	DefaultSubjectsPerSite = 25
	DefaultDays            = 30
	DefaultAbnormalShare   = 0.05
	DefaultDuplicateRate   = 0.02
	DefaultMalformedRate   = 0.01
)

// Limits of Config that keep ids in their formats and a trial in memory.
const (
	MaxStudies         = 699 // ONC-301 … ONC-999
	MaxSitesPerStudy   = 999
	MaxSubjectsPerSite = 9999
	MaxDays            = 3650
	MaxSubjects        = 1_000_000
	MaxSubjectDays     = 50_000_000
)

// defaultStart is the first simulated day unless Config.Start says otherwise.
func defaultStart() time.Time { return time.Date(2026, time.November, 1, 0, 0, 0, 0, time.UTC) }

// Config describes the simulated trial. SetDefaults replaces zero fields by
// the defaults; because zero means "default", a rate is turned off with a
// negative value, which SetDefaults turns into 0.
type Config struct {
	Seed            uint64
	Studies         int       // study ids "ONC-301", "ONC-302", …
	SitesPerStudy   int       // site ids "SITE-001", … (unique within a study)
	SubjectsPerSite int       // subject ids "<study>-<site number>-<%04d>", e.g. "ONC-301-012-0042"
	Days            int       // simulated days
	Start           time.Time // first simulated day, a UTC midnight (default 2026-11-01)
	// End, when set, cuts the trial there: no report is dated at or after
	// it (a trial whose last day is today, with End now, sends nothing from
	// the future). Planned counts only what is sent.
	End time.Time
	// AbnormalShare is the approximate share of valid reports whose values
	// meet one of the default clinical rules (see Record.Abnormal). It is
	// close up to about 0.2; higher shares saturate (1 gives about 0.9).
	AbnormalShare float64
	// DuplicateRate is the share of records that re-send an earlier record.
	DuplicateRate float64
	// MalformedRate is the share of records that are malformed.
	MalformedRate float64
	// FHIRShare is the share of valid reports generated as FHIR R4
	// (LOINC-form QuestionnaireResponses; vitals as a transaction Bundle of
	// one Observation per reading, each a record of its own) and sent as
	// their mapping, as the gateway writes it (default 0).
	FHIRShare float64
}

// SetDefaults fills the zero fields with the defaults and turns negative
// rates into 0.
func (c *Config) SetDefaults() {
	setInt(&c.Studies, DefaultStudies)
	setInt(&c.SitesPerStudy, DefaultSitesPerStudy)
	setInt(&c.SubjectsPerSite, DefaultSubjectsPerSite)
	setInt(&c.Days, DefaultDays)
	if c.Start.IsZero() {
		c.Start = defaultStart()
	}
	setRate(&c.AbnormalShare, DefaultAbnormalShare)
	setRate(&c.DuplicateRate, DefaultDuplicateRate)
	setRate(&c.MalformedRate, DefaultMalformedRate)
	setRate(&c.FHIRShare, 0)
}

func setInt(p *int, def int) {
	if *p == 0 {
		*p = def
	}
}

func setRate(p *float64, def float64) {
	switch {
	case *p == 0:
		*p = def
	case *p < 0:
		*p = 0
	}
}

// Validate reports every field that is out of range; each error names its field.
func (c Config) Validate() error {
	errs := []error{
		checkCount("Studies", c.Studies, MaxStudies),
		checkCount("SitesPerStudy", c.SitesPerStudy, MaxSitesPerStudy),
		checkCount("SubjectsPerSite", c.SubjectsPerSite, MaxSubjectsPerSite),
		checkCount("Days", c.Days, MaxDays),
		checkRate("AbnormalShare", c.AbnormalShare, true),
		checkRate("DuplicateRate", c.DuplicateRate, false),
		checkRate("MalformedRate", c.MalformedRate, false),
		checkRate("FHIRShare", c.FHIRShare, true),
	}
	if c.Start.IsZero() {
		errs = append(errs, errors.New("loadgen: Start is required"))
	} else if !c.Start.Equal(c.Start.UTC().Truncate(24 * time.Hour)) {
		errs = append(errs, fmt.Errorf("loadgen: Start %s is not a UTC midnight", c.Start.Format(time.RFC3339)))
	} else if !c.End.IsZero() && !c.End.After(c.Start) {
		errs = append(errs, fmt.Errorf("loadgen: End %s is not after Start %s", c.End.Format(time.RFC3339), c.Start.Format(time.RFC3339)))
	}
	if c.DuplicateRate+c.MalformedRate >= 1 {
		errs = append(errs, fmt.Errorf("loadgen: DuplicateRate %g + MalformedRate %g must stay below 1",
			c.DuplicateRate, c.MalformedRate))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	// Only now are the counts known to be small enough to multiply.
	if n := c.Studies * c.SitesPerStudy * c.SubjectsPerSite; n > MaxSubjects {
		return fmt.Errorf("loadgen: Studies×SitesPerStudy×SubjectsPerSite = %d subjects, at most %d", n, MaxSubjects)
	}
	if n := c.Studies * c.SitesPerStudy * c.SubjectsPerSite * c.Days; n > MaxSubjectDays {
		return fmt.Errorf("loadgen: subjects×Days = %d, at most %d", n, MaxSubjectDays)
	}
	return nil
}

func checkCount(field string, v, limit int) error {
	if v < 1 || v > limit {
		return fmt.Errorf("loadgen: %s %d is outside [1,%d]", field, v, limit)
	}
	return nil
}

func checkRate(field string, v float64, closed bool) error {
	switch {
	case closed && !(v >= 0 && v <= 1):
		return fmt.Errorf("loadgen: %s %g is outside [0,1]", field, v)
	case !closed && !(v >= 0 && v < 1):
		return fmt.Errorf("loadgen: %s %g is outside [0,1)", field, v)
	}
	return nil
}

// Kind says what a record is.
type Kind uint8

// The kinds of record.
const (
	// Valid is a new report that decodes and validates.
	Valid Kind = iota + 1
	// Duplicate re-sends an earlier Valid record byte for byte.
	Duplicate
	// Malformed must be rejected by intake (sent to the DLQ).
	Malformed
)

func (k Kind) String() string {
	switch k {
	case Valid:
		return "valid"
	case Duplicate:
		return "duplicate"
	case Malformed:
		return "malformed"
	default:
		return fmt.Sprintf("Kind(%d)", uint8(k))
	}
}

// Record is one message to produce to epro-submissions. The generator keeps
// a Valid record's Value and Submission to re-send them later as duplicates
// (each Duplicate gets its own copy of Value but shares Submission): treat
// both as read-only.
type Record struct {
	// Key is the subject id (for malformed records too, so they partition
	// like real ones).
	Key string
	// Value is the exact bytes to produce.
	Value []byte
	// MessageID is the report's message_id; "" for malformed records.
	MessageID string
	Kind      Kind
	// SubmittedAt is when the simulated device sent this record: use it as the
	// Kafka timestamp. Across the sequence it never decreases. For a Valid
	// record it equals the envelope's submitted_at (in the site's offset); a
	// Duplicate is re-sent later, so its Submission keeps the original time.
	SubmittedAt time.Time
	// Submission is the decoded envelope (Source and Format "fhir" for a
	// report sent as FHIR: the mapping of FHIR); nil for malformed records.
	Submission *codecs.Submission
	// FHIR is the QuestionnaireResponse a report sent as FHIR was generated
	// as (Value is its mapped envelope, as the gateway writes it); nil
	// otherwise.
	FHIR []byte
	// Abnormal reports that this Valid record's values, applied once, meet one
	// of the default clinical rules of docs/architecture.md (severe symptom, worsening
	// over the mean of the first 3 reports, self-harm or PHQ-9 total, pain ≥ 7
	// on 2 consecutive reports, fever, weight gain ≥ 2.0 kg against a report
	// of the previous 72 h). Always false for duplicates and malformed records.
	Abnormal bool
}
