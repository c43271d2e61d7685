// Package instruments knows the standard ePRO instruments eprostream scores:
// the valid range of each known item, the canonical unit of vitals and how
// to convert to it, and the instrument scores (the PHQ-9 total).
package instruments

import (
	"fmt"
	"math"
	"strings"
)

// Instrument names.
const (
	PROCTCAE = "PRO-CTCAE"
	PHQ9     = "PHQ-9"
	NRSPain  = "NRS-PAIN"
	Vitals   = "VITALS"
)

// Item codes the default rules read.
const (
	PainNRS         = "PAIN_NRS"
	BodyTemperature = "BODY_TEMPERATURE"
	BodyWeight      = "BODY_WEIGHT"
	PHQ9Item9       = "PHQ9_9"
	// PHQ9Total is the score intake adds to a PHQ-9 report.
	PHQ9Total = "PHQ9_TOTAL"
)

// Range is the closed interval of valid values of an item.
type Range struct {
	Min, Max float64
	Integer  bool
}

// Contains reports whether v is a valid value.
func (r Range) Contains(v float64) bool {
	if v < r.Min || v > r.Max {
		return false
	}
	return !r.Integer || v == math.Trunc(v)
}

func (r Range) String() string {
	if r.Integer {
		return fmt.Sprintf("a whole number from %g to %g", r.Min, r.Max)
	}
	return fmt.Sprintf("a number from %g to %g", r.Min, r.Max)
}

// RangeOf returns the valid range of a known item (after unit conversion),
// and false for items eprostream does not know (they pass unchecked).
func RangeOf(code string) (Range, bool) {
	switch {
	case IsPROCTCAE(code):
		return Range{0, 4, true}, true
	case strings.HasPrefix(code, "PHQ9_") && len(code) == 6 && code[5] >= '1' && code[5] <= '9':
		return Range{0, 3, true}, true
	case code == PHQ9Total:
		return Range{0, 27, true}, true
	case code == PainNRS:
		return Range{0, 10, true}, true
	case code == BodyTemperature:
		return Range{25, 45, false}, true
	case code == BodyWeight:
		return Range{1, 500, false}, true
	}
	return Range{}, false
}

// IsPROCTCAE reports whether code is a PRO-CTCAE attribute item
// (<SYMPTOM>_FREQUENCY, _SEVERITY, _INTERFERENCE, _AMOUNT).
func IsPROCTCAE(code string) bool {
	for _, s := range []string{"_FREQUENCY", "_SEVERITY", "_INTERFERENCE", "_AMOUNT"} {
		if strings.HasSuffix(code, s) && len(code) > len(s) {
			return true
		}
	}
	return false
}

// IsSeverityOrInterference reports whether a PRO-CTCAE item grades severity
// or interference (the items the severe-symptom rule reads).
func IsSeverityOrInterference(code string) bool {
	return strings.HasSuffix(code, "_SEVERITY") || strings.HasSuffix(code, "_INTERFERENCE")
}

// CanonicalUnit returns the UCUM unit an item is stored in, or "".
func CanonicalUnit(code string) string {
	switch code {
	case BodyTemperature:
		return "Cel"
	case BodyWeight:
		return "kg"
	}
	return ""
}

// Convert turns v in unit into the item's canonical unit. An empty unit
// means the canonical one. It fails for a unit it cannot convert.
func Convert(code string, v float64, unit string) (float64, string, error) {
	canon := CanonicalUnit(code)
	if canon == "" || unit == "" || unit == canon {
		if canon == "" {
			return v, unit, nil
		}
		return v, canon, nil
	}
	switch canon + "<-" + normaliseUnit(unit) {
	case "Cel<-Cel":
		return v, canon, nil
	case "Cel<-[degF]":
		return round((v-32)*5/9, 2), canon, nil
	case "Cel<-K":
		return round(v-273.15, 2), canon, nil
	case "kg<-kg":
		return v, canon, nil
	case "kg<-[lb_av]":
		return round(v*0.45359237, 3), canon, nil
	case "kg<-g":
		return round(v/1000, 3), canon, nil
	}
	return 0, "", fmt.Errorf("unit %q cannot be converted to %s", unit, canon)
}

// normaliseUnit maps common spellings onto UCUM codes.
func normaliseUnit(u string) string {
	switch strings.ToLower(strings.TrimSpace(u)) {
	case "cel", "°c", "c", "degc":
		return "Cel"
	case "[degf]", "°f", "f", "degf":
		return "[degF]"
	case "k":
		return "K"
	case "kg", "kilogram", "kilograms":
		return "kg"
	case "[lb_av]", "lb", "lbs", "pound", "pounds":
		return "[lb_av]"
	case "g", "gram", "grams":
		return "g"
	}
	return u
}

func round(v float64, places int) float64 {
	p := math.Pow(10, float64(places))
	return math.Round(v*p) / p
}

// Scores computes the instrument scores of one report from its item values:
// the PHQ-9 total when all nine items are answered.
func Scores(instrument string, values map[string]float64) map[string]float64 {
	if instrument != PHQ9 {
		return nil
	}
	total := 0.0
	for i := 1; i <= 9; i++ {
		v, ok := values[fmt.Sprintf("PHQ9_%d", i)]
		if !ok {
			return nil
		}
		total += v
	}
	return map[string]float64{PHQ9Total: total}
}
