package rules

import (
	"math"
	"slices"
	"sort"
	"time"

	"github.com/eprostream/eprostream/codecs"
)

// History bounds: each item keeps its last minRecent values, and the values
// inside the longest window of a rise_within rule reading it (at most maxRecent).
const (
	minRecent = 2
	maxRecent = 16
)

// finding is one rule's verdict on one item of one report.
type finding struct {
	rule     *Rule
	item     string
	holds    bool
	severity string
	evidence codecs.Evidence
}

// Apply folds one clean submission into st (mutated in place; callers clone)
// and returns the alerts it raises at raisedAt. A submission older than the
// subject's latest report still updates baselines and history but does not
// move LastAt backwards.
func (s *Set) Apply(st *codecs.SubjectState, c codecs.CleanSubmission, raisedAt time.Time) []codecs.Alert {
	if st.Items == nil {
		st.Items = map[string]*codecs.ItemHistory{}
	}
	if st.Open == nil {
		st.Open = map[string]codecs.OpenCondition{}
	}
	st.StudyID, st.SiteID, st.SubjectID = c.StudyID, c.SiteID, c.SubjectID
	at := c.SubmittedAt.Unix()
	var alerts []codecs.Alert
	values := c.Values()
	codes := make([]string, 0, len(values))
	for code := range values {
		codes = append(codes, code)
	}
	sort.Strings(codes) // deterministic alert order
	for _, code := range codes {
		v := values[code]
		for i := range s.Rules {
			r := &s.Rules[i]
			if r.Kind == KindMissed || !r.matches(c.Instrument, code) {
				continue
			}
			f := r.evaluate(st.Items[code], code, v, at)
			if a, ok := s.settle(st, f, c.MessageID, c.SubmittedAt, raisedAt); ok {
				alerts = append(alerts, a)
			}
		}
	}
	for _, code := range codes {
		s.record(st, c.Instrument, code, values[code], at)
	}
	// A report ends any missed-diary condition.
	for i := range s.Rules {
		if s.Rules[i].Kind == KindMissed {
			delete(st.Open, s.Rules[i].ID)
		}
	}
	st.Reports++
	if st.FirstAt == 0 || at < st.FirstAt {
		st.FirstAt = at
	}
	st.LastAt = max(st.LastAt, at)
	return alerts
}

// CheckSchedule evaluates the time-driven rules as of now; trigger names
// what asked (the command id), for the alert's id.
func (s *Set) CheckSchedule(st *codecs.SubjectState, now time.Time, raisedAt time.Time) []codecs.Alert {
	last, trigger := st.LastAt, "last:"
	if last == 0 {
		// Never reported: the silence counts from enrolment, when the
		// registry told the sweep of it.
		if last, trigger = st.EnrolledAt, "enrolled:"; last == 0 {
			return nil
		}
	}
	trigger += codecs.Unix(last).Format(time.RFC3339)
	if st.Open == nil {
		st.Open = map[string]codecs.OpenCondition{}
	}
	var alerts []codecs.Alert
	for i := range s.Rules {
		r := &s.Rules[i]
		if r.Kind != KindMissed {
			continue
		}
		gap := now.Sub(codecs.Unix(last))
		f := finding{rule: r, evidence: codecs.Evidence{
			Threshold: r.After.Hours(), Unit: "h", Values: []float64{math.Floor(gap.Hours())},
			Detail: "hours since the last report",
		}}
		switch {
		case r.EscalateAfter > 0 && gap > r.After+r.EscalateAfter:
			f.holds, f.severity = true, r.EscalateSev
			f.evidence.Threshold = (r.After + r.EscalateAfter).Hours()
		case gap > r.After:
			f.holds, f.severity = true, r.Severity
		}
		// The trigger is the last report's (or the enrolment's) time: the
		// same silence yields the same id.
		if a, ok := s.settle(st, f, trigger, codecs.Unix(last), raisedAt); ok {
			alerts = append(alerts, a)
		}
	}
	return alerts
}

// settle turns a finding into an alert when its condition newly holds or
// escalates, and re-arms the rule when it no longer holds.
func (s *Set) settle(st *codecs.SubjectState, f finding, trigger string, submittedAt, raisedAt time.Time) (codecs.Alert, bool) {
	key := f.rule.ID
	if f.item != "" {
		key += "/" + f.item
	}
	open, isOpen := st.Open[key]
	if !f.holds {
		delete(st.Open, key)
		return codecs.Alert{}, false
	}
	if isOpen && codecs.SeverityRank(open.Severity) >= codecs.SeverityRank(f.severity) {
		return codecs.Alert{}, false
	}
	id := codecs.AlertID(f.rule.ID, s.Version, st.SubjectID, trigger, f.item, f.severity)
	st.Open[key] = codecs.OpenCondition{Severity: f.severity, Since: submittedAt.Unix(), AlertID: id}
	f.evidence.Item = f.item
	return codecs.Alert{
		V: codecs.WireVersion, AlertID: id, RuleID: f.rule.ID, RuleVersion: s.Version,
		Severity: f.severity, StudyID: st.StudyID, SiteID: st.SiteID, SubjectID: st.SubjectID,
		MessageID: trigger, SubmittedAt: submittedAt.UTC(), RaisedAt: raisedAt.UTC(), Evidence: f.evidence,
	}, true
}

// evaluate judges value v of item code against r, given the item's history
// before this report.
func (r *Rule) evaluate(h *codecs.ItemHistory, code string, v float64, at int64) finding {
	f := finding{rule: r, item: code, evidence: codecs.Evidence{Values: []float64{v}, Unit: r.Unit}}
	switch r.Kind {
	case KindThreshold:
		best := 0
		for _, l := range r.Levels {
			if l.reached(v) && codecs.SeverityRank(l.Severity) > best {
				best = codecs.SeverityRank(l.Severity)
				f.holds, f.severity, f.evidence.Threshold = true, l.Severity, l.threshold()
			}
		}
		if !f.holds && len(r.Levels) > 0 {
			f.evidence.Threshold = r.Levels[0].threshold()
		}
	case KindBaselineRise:
		if h == nil || h.BaseN < r.BaselineReports {
			return f // no baseline yet: the condition cannot hold
		}
		base := h.BaseSum / float64(h.BaseN)
		f.evidence.Baseline, f.evidence.Threshold = &base, base+r.Rise
		f.holds, f.severity = v >= base+r.Rise-1e-9, r.Severity
	case KindStreak:
		f.evidence.Threshold, f.severity = r.AtLeast, r.Severity
		f.holds = v >= r.AtLeast
		need := r.Reports - 1
		if h == nil || len(h.Recent) < need {
			f.holds = false
		} else {
			f.evidence.Values = f.evidence.Values[:0]
			for _, p := range h.Recent[len(h.Recent)-need:] {
				f.holds = f.holds && p.V >= r.AtLeast
				f.evidence.Values = append(f.evidence.Values, p.V)
			}
			f.evidence.Values = append(f.evidence.Values, v)
		}
	case KindRiseWithin:
		f.severity = r.Severity
		low, found := math.Inf(1), false
		if h != nil {
			for _, p := range h.Recent {
				if p.T < at && at-p.T <= int64(r.Within/time.Second) && p.V < low {
					low, found = p.V, true
				}
			}
		}
		if found {
			f.evidence.Baseline, f.evidence.Threshold = &low, low+r.Rise
			f.holds = v-low >= r.Rise-1e-9
		}
	}
	return f
}

func (l Level) reached(v float64) bool {
	if l.AtLeast != nil {
		return v >= *l.AtLeast
	}
	return v > *l.Above
}

func (l Level) threshold() float64 {
	if l.AtLeast != nil {
		return *l.AtLeast
	}
	return *l.Above
}

// record adds v to the item's history if a rule reads the item.
func (s *Set) record(st *codecs.SubjectState, instrument, code string, v float64, at int64) {
	baseN, window, read := 0, time.Duration(0), false
	for _, r := range s.Rules {
		if r.Kind == KindMissed || !r.matches(instrument, code) {
			continue
		}
		read = true
		baseN = max(baseN, r.BaselineReports)
		if r.Kind == KindRiseWithin {
			window = max(window, r.Within)
		}
	}
	if !read {
		return
	}
	h := st.Items[code]
	if h == nil {
		h = &codecs.ItemHistory{}
		st.Items[code] = h
	}
	if h.BaseN < baseN {
		h.BaseN++
		h.BaseSum += v
	}
	h.Recent = append(h.Recent, codecs.Point{T: at, V: v})
	slices.SortStableFunc(h.Recent, func(a, b codecs.Point) int { return int(a.T - b.T) })
	keep := minRecent
	for i := len(h.Recent) - 1; i >= 0 && window > 0; i-- {
		if h.Recent[len(h.Recent)-1].T-h.Recent[i].T <= int64(window/time.Second) {
			keep = max(keep, len(h.Recent)-i)
		}
	}
	keep = min(keep, maxRecent)
	if len(h.Recent) > keep {
		h.Recent = slices.Clone(h.Recent[len(h.Recent)-keep:])
	}
}
