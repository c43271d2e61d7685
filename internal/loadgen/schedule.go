package loadgen

import (
	"fmt"
	"time"
)

// Who reports when is drawn from stateless per-key generators (seed, subject,
// day) rather than from the main stream: New can then count the whole trial's
// reports exactly for Planned without storing the schedule.

// splitMix is SplitMix64; math/rand/v2 sources would need an allocation per
// subject-day to be seeded by key.
type splitMix struct{ s uint64 }

func mix64(z uint64) uint64 {
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

func newSplitMix(seed, a, b uint64) splitMix {
	return splitMix{s: mix64(seed ^ mix64(a^mix64(b+0x9e3779b97f4a7c15)))}
}

func (r *splitMix) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	return mix64(r.s)
}

func (r *splitMix) float() float64 { return float64(r.next()>>11) / (1 << 53) }

func (r *splitMix) intn(n int) int { return int(r.next() % uint64(n)) }

// Domains of the keyed generators, far from any subject or day number.
const (
	keySubject = ^uint64(0)
	keySite    = ^uint64(1)
	keyFHIR    = ^uint64(2)
)

// Shape of the trial.
const (
	dropoutShare = 0.03 // subjects who stop reporting partway
	skipperShare = 0.30 // subjects who now and then skip a day
	skipChance   = 0.10 // per day, for a skipper
	diaryChance  = 0.05 // per subject-day
	maxReports   = 5    // PRO-CTCAE, NRS-PAIN, VITALS, PHQ-9, DIARY
	dayStart     = 7 * 3600
	sessionSpan  = 14 * 3600 // sessions start between 07:00 and 21:00 local
	maxGap       = 300       // seconds between two reports of a session
)

// Fixed offsets of the sites' devices.
var siteOffsets = [...]int{3600, 7200, -5 * 3600}

type site struct {
	study  string
	id     string
	number int
	zone   *time.Location
	offset int64 // seconds east of UTC
}

type instrument uint8

const (
	proCTCAE instrument = iota
	nrsPain
	vitals
	phq9
	diary
)

var instrumentNames = [...]string{"PRO-CTCAE", "NRS-PAIN", "VITALS", "PHQ-9", "DIARY"}

func (in instrument) String() string { return instrumentNames[in] }

// dayPlan is what one subject sends on one day, in order.
type dayPlan struct {
	n     int
	instr [maxReports]instrument
	at    [maxReports]int64 // unix seconds
	fhir  [maxReports]bool  // sent as FHIR
}

// records is how many records the plan sends: one per report, two for a
// FHIR vitals report (a Bundle of two Observations).
func (p dayPlan) records() int {
	n := p.n
	for k := range p.n {
		if p.fhir[k] && p.instr[k] == vitals {
			n++
		}
	}
	return n
}

func newSites(cfg Config) []site {
	zones := make([]*time.Location, len(siteOffsets))
	for i, off := range siteOffsets {
		zones[i] = time.FixedZone(fmt.Sprintf("UTC%+03d:00", off/3600), off)
	}
	sites := make([]site, 0, cfg.Studies*cfg.SitesPerStudy)
	for st := range cfg.Studies {
		for n := 1; n <= cfg.SitesPerStudy; n++ {
			r := newSplitMix(cfg.Seed, uint64(len(sites)), keySite)
			z := r.intn(len(siteOffsets))
			sites = append(sites, site{
				study: fmt.Sprintf("ONC-%03d", 301+st), id: fmt.Sprintf("SITE-%03d", n), number: n,
				zone: zones[z], offset: int64(siteOffsets[z]),
			})
		}
	}
	return sites
}

// newSubject draws a subject's fixed traits.
func newSubject(cfg Config, idx, siteIdx int, st *site, num int) subject {
	r := newSplitMix(cfg.Seed, uint64(idx), keySubject)
	s := subject{
		id:      fmt.Sprintf("%s-%03d-%04d", st.study, st.number, num),
		site:    int32(siteIdx),
		dropDay: int32(cfg.Days),
		phqDay:  uint8(r.intn(7)),
		skipper: r.float() < skipperShare,
	}
	if drop := r.float() < dropoutShare; drop && cfg.Days >= 2 {
		s.dropDay = int32(dropoutDay(cfg.Days, &r))
	}
	for k := range s.base {
		if r.float() < 0.35 {
			s.base[k] = 1
		}
	}
	s.nrsBase = uint8(r.intn(3))
	s.mood = 0.05 + 0.3*r.float()
	s.weight = 50 + 50*r.float()
	s.fahrenheit = r.float() < 0.10
	s.pounds = r.float() < 0.10
	return s
}

// dropoutDay leaves, when the trial is long enough, at least 5 silent days
// so the missed-diary rule escalates.
func dropoutDay(days int, r *splitMix) int {
	lo, hi := max(3, days/3), days-5
	if hi < lo {
		return 1 + r.intn(days-1)
	}
	return lo + r.intn(hi-lo+1)
}

// skipDraw is a subject-day's first draw; see plan.
func skipDraw(seed uint64, subj, day int) bool {
	r := newSplitMix(seed, uint64(subj), uint64(day))
	return r.float() < skipChance
}

// plan returns what subject i sends on day. Skipped days are never two in a
// row: a day is skipped only if its draw says so and the previous day's did not.
func (g *Generator) plan(i, day int) dayPlan {
	s := &g.subjects[i]
	if day >= int(s.dropDay) {
		return dayPlan{}
	}
	r := newSplitMix(g.cfg.Seed, uint64(i), uint64(day))
	skip := r.float() < skipChance
	if s.skipper && skip && (day == 0 || !skipDraw(g.cfg.Seed, i, day-1)) {
		return dayPlan{}
	}
	p := dayPlan{n: 3, instr: [maxReports]instrument{proCTCAE, nrsPain, vitals}}
	if day%7 == int(s.phqDay) {
		p.instr[p.n] = phq9
		p.n++
	}
	if r.float() < diaryChance {
		p.instr[p.n] = diary
		p.n++
	}
	if g.cfg.FHIRShare > 0 { // drawn apart, so the rest of the trial is the same with or without FHIR
		rf := newSplitMix(g.cfg.Seed^keyFHIR, uint64(i), uint64(day))
		for k := range p.n {
			p.fhir[k] = rf.float() < g.cfg.FHIRShare
		}
	}
	st := &g.sites[s.site]
	at := g.start + int64(day)*86400 - st.offset + dayStart + int64(r.intn(sessionSpan))
	for k := range p.n {
		p.at[k] = at
		at += 60 + int64(r.intn(maxGap-60+1))
	}
	for g.end > 0 && p.n > 0 && p.at[p.n-1] >= g.end { // not yet sent when the trial is cut
		p.n--
	}
	return p
}
