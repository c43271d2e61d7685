// Package instruments defines the ePRO instruments eprostream understands:
// each instrument's items with their type, range and canonical unit, the
// codes other systems use for them (LOINC, FHIR linkIds), and the scores to
// compute. Built in: PRO-CTCAE (the item library), PHQ-9, GAD-7, the 0–10
// pain NRS, home vitals and a free-text diary; a study may declare its own
// instruments in YAML (see catalog). An instrument or item that is not
// defined is refused, never passed through.
package instruments

import (
	"fmt"
	"math"
	"strings"
)

// Instrument codes.
const (
	PROCTCAE = "PRO-CTCAE"
	PHQ9     = "PHQ-9"
	GAD7     = "GAD-7"
	NRSPain  = "NRS-PAIN"
	Vitals   = "VITALS"
	Diary    = "DIARY"
)

// Item codes the default rules read, and the scores intake adds.
const (
	PainNRS         = "PAIN_NRS"
	BodyTemperature = "BODY_TEMPERATURE"
	BodyWeight      = "BODY_WEIGHT"
	HeartRate       = "HEART_RATE"
	SystolicBP      = "BP_SYSTOLIC"
	DiastolicBP     = "BP_DIASTOLIC"
	OxygenSat       = "SPO2"
	PHQ9Item9       = "PHQ9_9"
	PHQ9Total       = "PHQ9_TOTAL"
	GAD7Total       = "GAD7_TOTAL"
)

// LOINC is the LOINC code system's URI.
const LOINC = "http://loinc.org"

func loinc(code string) []Coding { return []Coding{{System: LOINC, Code: code}} }

// builtin returns fresh copies of the built-in definitions.
func builtin() []Definition {
	ctcae := Definition{Code: PROCTCAE, Version: "1.0", Name: "PRO-CTCAE item library"}
	for _, s := range proCTCAE {
		for i := 0; i < len(s.attrs); i++ {
			attr := proCTCAEAttributes[s.attrs[i]]
			it := Item{Code: s.code + "_" + attr, Text: s.term + ": " + strings.ToLower(attr), Type: Integer, Min: 0, Max: 4,
				Severity: attr == "SEVERITY" || attr == "INTERFERENCE"}
			if attr == "PRESENCE" {
				it.Max = 1
			}
			ctcae.Items = append(ctcae.Items, it)
		}
	}
	phq := Definition{Code: PHQ9, Version: "1.0", Name: "Patient Health Questionnaire-9", Codings: loinc("44249-1"),
		Scores: []Score{{Code: PHQ9Total}}}
	for i, l := range []string{"44250-9", "44255-8", "44259-0", "44254-1", "44251-7", "44258-2", "44252-5", "44253-3", "44260-8"} {
		code := fmt.Sprintf("PHQ9_%d", i+1)
		phq.Items = append(phq.Items, Item{Code: code, Type: Integer, Min: 0, Max: 3, Codings: loinc(l)})
		phq.Scores[0].Sum = append(phq.Scores[0].Sum, code)
	}
	phq.Items = append(phq.Items, Item{Code: PHQ9Total, Type: Integer, Min: 0, Max: 27, Codings: loinc("44261-6")})
	gad := Definition{Code: GAD7, Version: "1.0", Name: "Generalized Anxiety Disorder-7", Codings: loinc("69737-5"),
		Scores: []Score{{Code: GAD7Total}}}
	for i, l := range []string{"69725-0", "68509-9", "69733-4", "69734-2", "69735-9", "69689-8", "69736-7"} {
		code := fmt.Sprintf("GAD7_%d", i+1)
		gad.Items = append(gad.Items, Item{Code: code, Type: Integer, Min: 0, Max: 3, Codings: loinc(l)})
		gad.Scores[0].Sum = append(gad.Scores[0].Sum, code)
	}
	gad.Items = append(gad.Items, Item{Code: GAD7Total, Type: Integer, Min: 0, Max: 21, Codings: loinc("70274-6")})
	return []Definition{
		ctcae, phq, gad,
		{Code: NRSPain, Version: "1.0", Name: "Pain intensity, 0–10 numeric rating scale", Codings: loinc("72514-3"),
			Items: []Item{{Code: PainNRS, Type: Integer, Min: 0, Max: 10, Codings: loinc("72514-3")}}},
		{Code: Vitals, Version: "1.0", Name: "Home vital signs", Codings: loinc("85353-1"), Items: []Item{
			{Code: BodyTemperature, Type: Decimal, Min: 25, Max: 45, Unit: "Cel", Codings: loinc("8310-5")},
			{Code: BodyWeight, Type: Decimal, Min: 1, Max: 500, Unit: "kg", Codings: loinc("29463-7")},
			{Code: HeartRate, Type: Decimal, Min: 20, Max: 250, Unit: "/min", Codings: loinc("8867-4")},
			{Code: SystolicBP, Type: Decimal, Min: 50, Max: 260, Unit: "mm[Hg]", Codings: loinc("8480-6")},
			{Code: DiastolicBP, Type: Decimal, Min: 20, Max: 160, Unit: "mm[Hg]", Codings: loinc("8462-4")},
			{Code: OxygenSat, Type: Decimal, Min: 50, Max: 100, Unit: "%", Codings: []Coding{{LOINC, "59408-5"}, {LOINC, "2708-6"}}},
		}},
		{Code: Diary, Version: "1.0", Name: "Free-text diary", Items: []Item{{Code: "NOTES", Type: Text}}},
	}
}

// convert turns v in unit into canon. An empty unit means canon; an item
// without a canonical unit takes its value as sent.
func convert(canon string, v float64, unit string) (float64, string, error) {
	if canon == "" {
		return v, unit, nil
	}
	if unit == "" || unit == canon {
		return v, canon, nil
	}
	switch canon + "<-" + normaliseUnit(unit) {
	case "Cel<-Cel", "kg<-kg", "/min<-/min", "mm[Hg]<-mm[Hg]", "%<-%":
		return v, canon, nil
	case "Cel<-[degF]":
		return round((v-32)*5/9, 2), canon, nil
	case "Cel<-K":
		return round(v-273.15, 2), canon, nil
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
	case "/min", "bpm", "beats/min", "{beats}/min":
		return "/min"
	case "mm[hg]", "mmhg":
		return "mm[Hg]"
	case "%":
		return "%"
	}
	return u
}

func round(v float64, places int) float64 {
	p := math.Pow(10, float64(places))
	return math.Round(v*p) / p
}
