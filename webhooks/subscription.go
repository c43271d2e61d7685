package webhooks

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/eprostream/eprostream/codecs"
)

// ErrInvalid is wrapped by every refusal of a subscription's spec.
var ErrInvalid = errors.New("webhooks: invalid subscription")

// AllStudies in a subscription's studies matches every study.
const AllStudies = "*"

// Subscription is one subscriber's endpoint and filters, as stored, without
// its secret.
type Subscription struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	URL  string `json:"url"`
	// Studies the subscriber receives alerts of; AllStudies for every one.
	Studies []string `json:"studies"`
	// Sites narrows Studies to these sites; empty: every site.
	Sites []string `json:"sites,omitempty"`
	// MinSeverity is the lowest severity delivered (info, warning, urgent).
	MinSeverity string    `json:"min_severity"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
	// Paused subscriptions get nothing; their alerts are dead-lettered with
	// reason "paused".
	Paused bool `json:"paused"`
	// Owner is the id of the API key that created the subscription through
	// POST /v1/webhooks; empty for one an operator created with
	// `eprostream webhook create`. Every delivery re-checks an owner: once
	// its key is revoked, expired or no longer scoped to the alert's study,
	// its alerts are dead-lettered (reason "owner key not valid") instead.
	Owner string `json:"owner,omitempty"`
}

// Matches reports whether the subscription's filters select a. An alert of
// unknown severity matches nothing.
func (s Subscription) Matches(a codecs.Alert) bool {
	if !slices.Contains(s.Studies, AllStudies) && !slices.Contains(s.Studies, a.StudyID) {
		return false
	}
	if len(s.Sites) > 0 && !slices.Contains(s.Sites, a.SiteID) {
		return false
	}
	rank := codecs.SeverityRank(a.Severity)
	return rank > 0 && rank >= codecs.SeverityRank(s.MinSeverity)
}

// record is a subscription as kept in Redis: with its secret.
type record struct {
	Subscription
	Secret string `json:"secret"`
}

// Spec is what a new subscription asks for.
type Spec struct {
	Name    string
	URL     string
	Studies []string
	Sites   []string
	// MinSeverity defaults to info (everything).
	MinSeverity string
	// Owner is the creating API key's id (empty: an operator's).
	Owner string
}

const (
	maxURL     = 2048
	maxFilters = 1000
)

var (
	idPattern = regexp.MustCompile(`^[a-z0-9]{12}$`)
	// Same shape as study ids elsewhere (apikeys); site ids alike.
	refPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)
)

// Validate says everything that is wrong with s.
func (s Spec) Validate() error {
	var errs []error
	if strings.TrimSpace(s.Name) == "" || len(s.Name) > 200 {
		errs = append(errs, errors.New("name: 1 to 200 characters"))
	}
	if err := validateURL(s.URL); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, validateRefs("studies", s.Studies, true)...)
	errs = append(errs, validateRefs("sites", s.Sites, false)...)
	if s.MinSeverity != "" && codecs.SeverityRank(s.MinSeverity) == 0 {
		errs = append(errs, fmt.Errorf("min severity: %q is not %s, %s or %s",
			s.MinSeverity, codecs.SeverityInfo, codecs.SeverityWarning, codecs.SeverityUrgent))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalid, errors.Join(errs...))
	}
	return nil
}

func validateURL(raw string) error {
	if raw == "" {
		return errors.New("url: required")
	}
	if len(raw) > maxURL {
		return fmt.Errorf("url: longer than %d characters", maxURL)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("url: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Opaque != "" {
		return fmt.Errorf("url: %q is not an absolute http:// or https:// URL", raw)
	}
	if u.Hostname() == "" {
		return fmt.Errorf("url: %q has no host", raw)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("url: port %q is not in 1..65535", p)
		}
	}
	if u.User != nil {
		return errors.New("url: must not carry credentials (user:password@); receivers authenticate requests by their signature")
	}
	if u.Fragment != "" {
		return errors.New("url: must not have a #fragment (it is never sent)")
	}
	return nil
}

func validateRefs(field string, refs []string, required bool) []error {
	var errs []error
	if required && len(refs) == 0 {
		errs = append(errs, fmt.Errorf("%s: at least one, or %s for all", field, AllStudies))
	}
	if len(refs) > maxFilters {
		errs = append(errs, fmt.Errorf("%s: at most %d", field, maxFilters))
	}
	for _, r := range refs {
		if (r != AllStudies || field != "studies") && !refPattern.MatchString(r) {
			errs = append(errs, fmt.Errorf("%s: %q is not an id (letters, digits, . _ : -; up to 128)", field, r))
		}
	}
	return errs
}

// normalised returns the filters sorted, without duplicates, and the
// severity defaulted.
func (s Spec) normalised() Spec {
	s.Studies = slices.Compact(slices.Sorted(slices.Values(s.Studies)))
	if len(s.Sites) > 0 {
		s.Sites = slices.Compact(slices.Sorted(slices.Values(s.Sites)))
	}
	if s.MinSeverity == "" {
		s.MinSeverity = codecs.SeverityInfo
	}
	return s
}
