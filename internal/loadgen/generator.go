package loadgen

import (
	"bytes"
	"cmp"
	"encoding/json"
	"github.com/eprostream/eprostream/fhir"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"github.com/eprostream/eprostream/codecs"
)

// pcgStream is the main stream's second PCG seed word ("eprostre").
const pcgStream = 0x6570726f73747265

// recentSize is how many past valid records a duplicate may re-send.
const recentSize = 256

// Generator yields a trial's records in the order a broker would receive
// them. It is not safe for concurrent use.
type Generator struct {
	cfg      Config
	rng      *rand.Rand // values, abnormal episodes, duplicates, malformations
	trig     triggers
	sites    []site
	subjects []subject
	start    int64 // cfg.Start in unix seconds
	end      int64 // cfg.End in unix seconds; 0: no cut

	idPrefix  string // "m-<seed>-"
	badPrefix string // message ids inside malformed payloads
	sent      uint64 // valid records so far
	bad       uint64 // malformed records so far

	planned                  int
	remValid, remDup, remBad int
	day, pos                 int
	events                   []event   // the current day's reports, by time
	clock                    time.Time // when the last valid record was sent
	recent                   []Record  // ring of recent valid records
	recentNext               int
	forms                    *fhirForms // with a FHIR share
	queued                   []Record   // the second Observation of a FHIR vitals report
	vitalsFlags              [2]bool    // the last vitals report: fever, weight gain
}

// event is one report due: subject subj sends instr at unix second at.
type event struct {
	at    int64
	subj  int32
	seq   uint8
	fhir  bool
	instr instrument
}

// New applies the defaults to cfg, validates it and lays out the trial.
func New(cfg Config) (*Generator, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	seed := strconv.FormatUint(cfg.Seed, 10)
	g := &Generator{
		cfg:       cfg,
		rng:       rand.New(rand.NewPCG(cfg.Seed, pcgStream)),
		trig:      newTriggers(cfg.AbnormalShare),
		start:     cfg.Start.Unix(),
		end:       endOf(cfg.End),
		idPrefix:  "m-" + seed + "-",
		badPrefix: "bad-" + seed + "-",
		sites:     newSites(cfg),
		recent:    make([]Record, 0, recentSize),
	}
	g.clock = time.Unix(g.start, 0).UTC()
	if cfg.FHIRShare > 0 {
		g.forms = newFHIRForms()
	}
	g.subjects = make([]subject, 0, len(g.sites)*cfg.SubjectsPerSite)
	for si := range g.sites {
		for n := 1; n <= cfg.SubjectsPerSite; n++ {
			g.subjects = append(g.subjects, newSubject(cfg, len(g.subjects), si, &g.sites[si], n))
		}
	}
	g.count()
	return g, nil
}

func endOf(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

// count fixes how many records of each kind the trial sends, so that the
// rates hold exactly over the whole run and Planned is known upfront.
func (g *Generator) count() {
	for i := range g.subjects {
		for d := range g.cfg.Days {
			g.remValid += g.plan(i, d).records()
		}
	}
	q := 1 - g.cfg.DuplicateRate - g.cfg.MalformedRate
	g.remDup = int(math.Round(float64(g.remValid) * g.cfg.DuplicateRate / q))
	g.remBad = int(math.Round(float64(g.remValid) * g.cfg.MalformedRate / q))
	g.planned = g.remValid + g.remDup + g.remBad
}

// Planned returns how many records Next returns over the whole trial: exact,
// unless a trial without any valid report leaves nothing to duplicate.
func (g *Generator) Planned() int { return g.planned }

// Next returns the next record, or false when the trial is over. Kinds are
// interleaved at random; valid reports come in time order.
func (g *Generator) Next() (Record, bool) {
	if len(g.queued) > 0 { // right after its sibling, at the same time
		rec := g.queued[0]
		g.queued = g.queued[1:]
		g.remValid--
		return rec, true
	}
	for {
		total := g.remValid + g.remDup + g.remBad
		if total == 0 {
			return Record{}, false
		}
		n := g.rng.IntN(total)
		switch {
		case n < g.remBad:
			g.remBad--
			return g.malformed(), true
		case n < g.remBad+g.remDup && len(g.recent) > 0:
			g.remDup--
			return g.duplicate(), true
		case g.remValid > 0:
			if rec, ok := g.valid(); ok {
				g.remValid--
				return rec, true
			}
			g.remValid = 0 // not reached: count and the schedule agree
		default:
			g.remDup = 0 // nothing was ever sent that could be re-sent
		}
	}
}

func (g *Generator) valid() (Record, bool) {
	ev, ok := g.nextEvent()
	if !ok {
		return Record{}, false
	}
	s := &g.subjects[ev.subj]
	st := &g.sites[s.site]
	at := time.Unix(ev.at, 0).In(st.zone)
	items, abnormal := g.items(s, ev.instr, ev.at)
	g.sent++
	sub := &codecs.Submission{
		MessageID: g.idPrefix + strconv.FormatUint(g.sent, 36),
		StudyID:   st.study, SiteID: st.id, SubjectID: s.id,
		Instrument: ev.instr.String(), InstrumentVersion: instrumentVersion,
		SubmittedAt: at.Format(time.RFC3339), Source: "app", Items: items,
	}
	if ev.fhir && ev.instr == vitals {
		return g.fhirVitals(s.id, sub, at, abnormal), true
	}
	var b, resource []byte
	if ev.fhir {
		resource = g.forms.response(sub)
		m, err := g.forms.mapped(resource, sub)
		if err != nil {
			panic("loadgen: a generated FHIR report does not map: " + err.Error()) // the tests map every kind
		}
		*sub = m
		b, _ = json.Marshal(m) // cannot fail: finite numbers, valid strings
	} else {
		sub.Format = codecs.FormatNative
		b = marshalNative(sub)
	}
	rec := Record{Key: s.id, Value: b, MessageID: sub.MessageID, Kind: Valid,
		SubmittedAt: at, Submission: sub, Abnormal: abnormal, FHIR: resource}
	g.remember(rec)
	g.clock = at
	return rec, true
}

// fhirVitals sends a vitals report as a device hub does: a transaction
// Bundle of two Observations (temperature, weight), each mapped onto a
// submission of its own; the first is returned, the second queued.
func (g *Generator) fhirVitals(key string, sub *codecs.Submission, at time.Time, abnormal bool) Record {
	bundle := g.forms.vitalsBundle(sub)
	_, entries, err := fhir.ReadBundle(bundle, 10)
	if err != nil {
		panic("loadgen: a generated Bundle does not read: " + err.Error())
	}
	recs := make([]Record, len(entries))
	for i, e := range entries {
		m, err := g.forms.mapped(e.Resource, sub)
		if err != nil {
			panic("loadgen: a generated Observation does not map: " + err.Error())
		}
		b, _ := json.Marshal(m)
		recs[i] = Record{Key: key, Value: b, MessageID: m.MessageID, Kind: Valid, SubmittedAt: at,
			Submission: &m, Abnormal: abnormal && g.vitalsFlags[i], FHIR: e.Resource}
		g.remember(recs[i])
	}
	g.clock = at
	g.queued = append(g.queued, recs[1:]...)
	return recs[0]
}

func (g *Generator) remember(rec Record) {
	if len(g.recent) < recentSize {
		g.recent = append(g.recent, rec)
		return
	}
	g.recent[g.recentNext] = rec
	g.recentNext = (g.recentNext + 1) % recentSize
}

// duplicate re-sends a recent valid record as its device would on a retry:
// same key, same bytes, later.
func (g *Generator) duplicate() Record {
	orig := g.recent[g.rng.IntN(len(g.recent))]
	return Record{
		Key: orig.Key, Value: bytes.Clone(orig.Value), MessageID: orig.MessageID, Kind: Duplicate,
		SubmittedAt: g.clock.In(orig.SubmittedAt.Location()), Submission: orig.Submission,
	}
}

func (g *Generator) nextEvent() (event, bool) {
	for g.pos >= len(g.events) {
		if g.day >= g.cfg.Days {
			return event{}, false
		}
		g.loadDay(g.day)
		g.day++
	}
	ev := g.events[g.pos]
	g.pos++
	return ev, true
}

// loadDay puts every report of a day in time order; ties go by subject.
func (g *Generator) loadDay(day int) {
	g.events, g.pos = g.events[:0], 0
	for i := range g.subjects {
		p := g.plan(i, day)
		for k := range p.n {
			g.events = append(g.events, event{at: p.at[k], subj: int32(i), seq: uint8(k), instr: p.instr[k], fhir: p.fhir[k]})
		}
	}
	slices.SortFunc(g.events, func(a, b event) int {
		return cmp.Or(cmp.Compare(a.at, b.at), cmp.Compare(a.subj, b.subj), cmp.Compare(a.seq, b.seq))
	})
}

// Roster returns the trial's enrolments: every subject, active at its site
// from the first simulated day, as the study registry would hold them.
func (g *Generator) Roster() []codecs.Enrolment {
	start := time.Unix(g.start, 0).UTC()
	out := make([]codecs.Enrolment, len(g.subjects))
	for i, s := range g.subjects {
		st := g.sites[s.site]
		out[i] = codecs.Enrolment{V: codecs.WireVersion, SubjectID: s.id, StudyID: st.study, SiteID: st.id,
			Status: codecs.EnrolmentActive, EnrolledAt: start, Revision: 1, By: "loadgen", At: start}
	}
	return out
}
