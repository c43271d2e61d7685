package loadgen

import (
	"math"
	"strings"

	"github.com/eprostream/eprostream/codecs"
)

const instrumentVersion = "1.0"

// Item codes, units and conversion factors.
var (
	ctcaeCodes = [...]string{"PAIN_SEVERITY", "PAIN_INTERFERENCE", "NAUSEA_FREQUENCY", "NAUSEA_SEVERITY",
		"FATIGUE_SEVERITY", "FATIGUE_INTERFERENCE", "DIARRHEA_FREQUENCY"}
	// ctcaeSevere marks the severity and interference items of ctcaeCodes.
	ctcaeSevere = [...]bool{true, true, false, true, true, true, false}
	phqCodes    = [...]string{"PHQ9_1", "PHQ9_2", "PHQ9_3", "PHQ9_4", "PHQ9_5", "PHQ9_6", "PHQ9_7", "PHQ9_8", "PHQ9_9"}
)

const (
	unitCelsius    = "Cel"
	unitFahrenheit = "[degF]"
	unitKilogram   = "kg"
	unitPound      = "[lb_av]"
	kgPerPound     = 0.45359237
	weightWindow   = 72 * 3600 // "weight gain within 3 days"
)

// subject is one patient: fixed traits, then what the rules look back on.
type subject struct {
	id                          string
	site, dropDay               int32
	phqDay                      uint8
	skipper, fahrenheit, pounds bool

	base    [len(ctcaeCodes)]uint8 // usual PRO-CTCAE answers, 0 or 1
	nrsBase uint8                  // usual pain is nrsBase..nrsBase+2
	mood    float64                // chance of a PHQ-9 item at 1
	weight  float64                // kg

	ctcaeN             uint8                  // PRO-CTCAE reports so far, up to 3
	ctcaeSum           [len(ctcaeCodes)]uint8 // sum of the first 3 reports per item
	riseItem, riseLeft uint8                  // worsening episode: item, reports still raised
	nrsLeft, lastNRS   uint8                  // pain episode: reports still ≥ 7
	vitN               uint8                  // vitals of the last 72 h, newest last
	vitAt              [3]int64
	vitKg              [3]float64
}

// Abnormal episodes. A report that is not in an episode starts one with the
// instrument's trigger probability; the probabilities are set so that about
// AbnormalShare of all reports meet a rule, given how many reports an episode
// spans and how many of those meet a rule.
const (
	riseShare   = 0.4 // PRO-CTCAE episodes that are a gradual rise, when possible
	weightShare = 0.3 // VITALS episodes that are a weight gain, when possible
)

type triggers struct{ ctcae, nrs, vitals, phq float64 }

func newTriggers(share float64) triggers {
	perDay := 3 + 1.0/7 + diaryChance // reports per subject-day; diaries never meet a rule
	f := share * perDay / (perDay - diaryChance)
	return triggers{
		ctcae:  triggerProb(f, 1-riseShare+riseShare*1.5, 1-riseShare+riseShare*2.5),
		nrs:    triggerProb(f, 1.5, 2.5),
		vitals: triggerProb(f, 1, 1),
		phq:    triggerProb(f, 1, 1),
	}
}

// triggerProb solves f = p·flagged / (1 - p + p·span) for p.
func triggerProb(f, flagged, span float64) float64 {
	d := flagged - f*(span-1)
	if d <= 0 {
		return 1
	}
	return min(1, f/d)
}

func round1(x float64) float64 { return math.Round(x*10) / 10 }

// items draws one report's answers and says whether they meet a rule.
func (g *Generator) items(s *subject, in instrument, at int64) ([]codecs.Item, bool) {
	switch in {
	case proCTCAE:
		return g.ctcae(s)
	case nrsPain:
		return g.nrs(s)
	case vitals:
		return g.vitals(s, at)
	case phq9:
		return g.phq(s)
	default:
		return []codecs.Item{{Code: "NOTES", Value: codecs.Text(g.notes())}}, false
	}
}

func (g *Generator) ctcae(s *subject) ([]codecs.Item, bool) {
	var v [len(ctcaeCodes)]int
	for k := range v {
		v[k] = int(s.base[k])
		if g.rng.Float64() < 0.1 {
			v[k] = 1 - v[k]
		}
	}
	switch {
	case s.riseLeft > 0:
		v[s.riseItem] = (int(s.ctcaeSum[s.riseItem]) + 8) / 3 // ⌈mean + 2⌉
		s.riseLeft--
	case g.rng.Float64() < g.trig.ctcae:
		g.ctcaeEpisode(s, &v)
	}
	abnormal := s.ctcaeRule(&v)
	items := make([]codecs.Item, len(v))
	for k, x := range v {
		items[k] = codecs.Item{Code: ctcaeCodes[k], Value: codecs.Number(float64(x))}
	}
	return items, abnormal
}

// ctcaeEpisode starts a gradual rise (once a baseline exists and leaves room
// for +2 within 0..4) or answers one severity or interference item with 3 or 4.
func (g *Generator) ctcaeEpisode(s *subject, v *[len(ctcaeCodes)]int) {
	k := g.rng.IntN(len(v))
	if s.ctcaeN >= 3 && s.ctcaeSum[k] < 6 && g.rng.Float64() < riseShare {
		v[k] = int(s.ctcaeSum[k])/3 + 1 // on the way up, still below mean + 2
		s.riseItem, s.riseLeft = uint8(k), uint8(1+g.rng.IntN(2))
		return
	}
	for {
		if k = g.rng.IntN(len(v)); ctcaeSevere[k] {
			v[k] = 3 + g.rng.IntN(2)
			return
		}
	}
}

// ctcaeRule checks severe symptom (≥ 3) and worsening (≥ mean of the first
// 3 reports + 2), then records the report in the baseline if it is one of
// the first 3.
func (s *subject) ctcaeRule(v *[len(ctcaeCodes)]int) bool {
	abnormal := false
	for k, x := range v {
		if ctcaeSevere[k] && x >= 3 || s.ctcaeN >= 3 && 3*x >= int(s.ctcaeSum[k])+6 {
			abnormal = true
		}
		if s.ctcaeN < 3 {
			s.ctcaeSum[k] += uint8(x)
		}
	}
	if s.ctcaeN < 3 {
		s.ctcaeN++
	}
	return abnormal
}

// nrs answers 0..4 normally; an episode is 2 or 3 reports at 7..10, of which
// all but the first meet the rule (≥ 7 on 2 consecutive reports).
func (g *Generator) nrs(s *subject) ([]codecs.Item, bool) {
	v := int(s.nrsBase) + g.rng.IntN(3)
	switch {
	case s.nrsLeft > 0:
		v = 7 + g.rng.IntN(4)
		s.nrsLeft--
	case g.rng.Float64() < g.trig.nrs:
		v = 7 + g.rng.IntN(4)
		s.nrsLeft = uint8(1 + g.rng.IntN(2))
	}
	abnormal := v >= 7 && s.lastNRS >= 7
	s.lastNRS = uint8(v)
	return []codecs.Item{{Code: "PAIN_NRS", Value: codecs.Number(float64(v))}}, abnormal
}

// vitals reports temperature 36.2..37.3 °C and weight within ±0.3 kg of the
// subject's own; an episode is a fever (38.2..39.8 °C, clear of 38.0 even
// after °F rounding) or a gain of 2.5..3.5 kg over a report of the last 60 h.
func (g *Generator) vitals(s *subject, at int64) ([]codecs.Item, bool) {
	c := round1(36.2 + 1.1*g.rng.Float64())
	kg := s.weight - 0.3 + 0.6*g.rng.Float64()
	if g.rng.Float64() < g.trig.vitals {
		last := int(s.vitN) - 1
		if last >= 0 && at-s.vitAt[last] <= 60*3600 && g.rng.Float64() < weightShare {
			kg = s.vitKg[last] + 2.5 + g.rng.Float64()
		} else {
			c = round1(38.2 + 1.6*g.rng.Float64())
		}
	}
	temp := codecs.Item{Code: "BODY_TEMPERATURE", Value: codecs.Number(c), Unit: unitCelsius}
	if s.fahrenheit {
		f := round1(c*9/5 + 32)
		temp.Value, temp.Unit = codecs.Number(f), unitFahrenheit
		c = (f - 32) * 5 / 9
	}
	weight := codecs.Item{Code: "BODY_WEIGHT", Value: codecs.Number(round1(kg)), Unit: unitKilogram}
	if s.pounds {
		lb := round1(kg / kgPerPound)
		weight.Value, weight.Unit = codecs.Number(lb), unitPound
		kg = lb * kgPerPound
	} else {
		kg = round1(kg)
	}
	fever, gain := c >= 38.0, s.weightGain(at, kg) >= 2.0
	g.vitalsFlags = [2]bool{fever, gain}
	s.pushVitals(at, kg)
	abnormal := fever || gain
	return []codecs.Item{temp, weight}, abnormal
}

// weightGain is kg minus the lowest weight reported in the last 72 h.
func (s *subject) weightGain(at int64, kg float64) float64 {
	gain := 0.0
	for i := range int(s.vitN) {
		if at-s.vitAt[i] <= weightWindow {
			gain = max(gain, kg-s.vitKg[i])
		}
	}
	return gain
}

func (s *subject) pushVitals(at int64, kg float64) {
	if int(s.vitN) == len(s.vitAt) {
		copy(s.vitAt[:], s.vitAt[1:])
		copy(s.vitKg[:], s.vitKg[1:])
		s.vitN--
	}
	s.vitAt[s.vitN], s.vitKg[s.vitN] = at, kg
	s.vitN++
}

// phq answers items 1..8 with 0 or 1 (rarely 2) and item 9 with 0; an
// episode is item 9 above 0 or a total of 20 or more.
func (g *Generator) phq(s *subject) ([]codecs.Item, bool) {
	var v [len(phqCodes)]int
	for k := range len(v) - 1 {
		switch r := g.rng.Float64(); {
		case r < 0.03:
			v[k] = 2
		case r < s.mood:
			v[k] = 1
		}
	}
	if g.rng.Float64() < g.trig.phq {
		if g.rng.Float64() < 0.5 {
			v[8] = 1 + g.rng.IntN(3)
		} else {
			g.phqHigh(&v)
		}
	}
	total := 0
	items := make([]codecs.Item, len(v))
	for k, x := range v {
		total += x
		items[k] = codecs.Item{Code: phqCodes[k], Value: codecs.Number(float64(x))}
	}
	return items, v[8] > 0 || total >= 20
}

// phqHigh answers items 1..8 with 2 or 3 for a total of 20..24.
func (g *Generator) phqHigh(v *[len(phqCodes)]int) {
	total := 0
	for k := range len(v) - 1 {
		v[k] = 2 + g.rng.IntN(2)
		total += v[k]
	}
	for total < 20 {
		if k := g.rng.IntN(len(v) - 1); v[k] < 3 {
			v[k]++
			total++
		}
	}
}

// diarySentences are synthetic; none describes a real person.
var diarySentences = [...]string{
	"Slept badly after the evening dose.",
	"Felt a bit sick in the morning, better after breakfast.",
	"Walked to the café and back without a break.",
	"Tired most of the afternoon.",
	"Mouth sores made eating harder today.",
	"Took the dog out twice, no problems.",
	"Headache in the evening, took paracetamol.",
	"Good day, gardened for an hour.",
	"Appetite was low, ate half of dinner.",
	"Hands felt numb and tingly in the cold.",
	"Visited family at the weekend, felt fine.",
	"Some diarrhoea after lunch, settled by night.",
	"Forgot the morning tablet, took it at noon.",
	"Knee pain when climbing the stairs.",
	"Felt anxious before the clinic appointment.",
	"Read in the garden, mood was good.",
}

func (g *Generator) notes() string {
	n := 1 + g.rng.IntN(3)
	parts := make([]string, n)
	for i := range parts {
		parts[i] = diarySentences[g.rng.IntN(len(diarySentences))]
	}
	return strings.Join(parts, " ")
}
