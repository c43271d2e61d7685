package instruments

import (
	"strings"
	"testing"

	"github.com/eprostream/eprostream/codecs"
)

func TestConvert(t *testing.T) {
	cases := []struct {
		canon, unit string
		in, want    float64
		wantUnit    string
		fail        bool
	}{
		{"Cel", "Cel", 38, 38, "Cel", false},
		{"Cel", "", 37.2, 37.2, "Cel", false},
		{"Cel", "[degF]", 100.4, 38, "Cel", false},
		{"Cel", "°F", 98.6, 37, "Cel", false},
		{"Cel", "K", 311.15, 38, "Cel", false},
		{"kg", "[lb_av]", 220.462, 100, "kg", false},
		{"kg", "lb", 100, 45.359, "kg", false},
		{"kg", "g", 72500, 72.5, "kg", false},
		{"kg", "stone", 10, 0, "", true},
		{"/min", "bpm", 72, 72, "/min", false},
		{"", "", 7, 7, "", false},
	}
	for _, c := range cases {
		got, unit, err := convert(c.canon, c.in, c.unit)
		if (err != nil) != c.fail || (!c.fail && (got != c.want || unit != c.wantUnit)) {
			t.Errorf("convert(%s, %v, %q) = %v %q %v; want %v %q fail=%v", c.canon, c.in, c.unit, got, unit, err, c.want, c.wantUnit, c.fail)
		}
	}
}

func TestBuiltinDefinitions(t *testing.T) {
	s, err := NewSet()
	if err != nil {
		t.Fatal(err)
	}
	ctcae, _ := s.Lookup(PROCTCAE)
	if n := len(ctcae.Items); n != 124 {
		t.Errorf("PRO-CTCAE has %d items, want the library's 124", n)
	}
	for _, code := range []string{"PAIN_SEVERITY", "NAUSEA_FREQUENCY", "FATIGUE_INTERFERENCE", "DIARRHEA_FREQUENCY", "HAIR_LOSS_AMOUNT", "RASH_PRESENCE"} {
		if _, ok := ctcae.Item(code); !ok {
			t.Errorf("PRO-CTCAE lacks %s", code)
		}
	}
	for _, invented := range []string{"X1_SEVERITY", "DIARRHEA_SEVERITY", "FAVOURITE_COLOUR"} {
		if _, ok := ctcae.Item(invented); ok {
			t.Errorf("PRO-CTCAE accepts the invented item %s", invented)
		}
	}
}

func TestCheckRangesTypesAndUnknowns(t *testing.T) {
	s := Builtin()
	sub := func(instr string, items ...codecs.Item) codecs.Submission {
		return codecs.Submission{StudyID: "ONC-301", Instrument: instr, Items: items}
	}
	num := func(code string, v float64) codecs.Item { return codecs.Item{Code: code, Value: codecs.Number(v)} }
	cases := []struct {
		name string
		s    codecs.Submission
		want string // "" accepted, else a part of the first error
	}{
		{"in range", sub(PROCTCAE, num("PAIN_SEVERITY", 4), num("NAUSEA_FREQUENCY", 0)), ""},
		{"over range", sub(PROCTCAE, num("NAUSEA_SEVERITY", 9)), "items[0].value: NAUSEA_SEVERITY must be a whole number from 0 to 4"},
		{"negative", sub(PROCTCAE, num("NAUSEA_SEVERITY", -1)), "whole number from 0 to 4"},
		{"huge", sub(PROCTCAE, num("NAUSEA_SEVERITY", 1e308)), "whole number from 0 to 4"},
		{"fraction", sub(PROCTCAE, num("PAIN_SEVERITY", 2.5)), "whole number"},
		{"text for a grade", sub(PROCTCAE, codecs.Item{Code: "NAUSEA_SEVERITY", Value: codecs.Text("seven")}), "not text"},
		{"invented item", sub(PROCTCAE, num("X1_SEVERITY", 4)), `items[0].code: "X1_SEVERITY" is not an item of PRO-CTCAE`},
		{"item of another instrument", sub(PROCTCAE, num("PHQ9_9", 1)), "is not an item of PRO-CTCAE"},
		{"unknown instrument", sub("EQ-5D-5L", num("MOBILITY", 1)), `instrument: "EQ-5D-5L" is not an instrument eprostream knows`},
		{"PHQ-9 item 9", sub(PHQ9, num("PHQ9_9", 4)), "PHQ9_9 must be a whole number from 0 to 3"},
		{"fahrenheit", sub(Vitals, codecs.Item{Code: BodyTemperature, Value: codecs.Number(100.6), Unit: "[degF]"}), ""},
		{"unit it cannot convert", sub(Vitals, codecs.Item{Code: BodyWeight, Value: codecs.Number(10), Unit: "stone"}), "cannot be converted"},
		{"presence as a boolean", sub(PROCTCAE, codecs.Item{Code: "RASH_PRESENCE", Value: codecs.Value{Kind: codecs.KindBool, Bool: true}}), ""},
		{"diary text", sub(Diary, codecs.Item{Code: "NOTES", Value: codecs.Text("a good day")}), ""},
		{"number for text", sub(Diary, num("NOTES", 3)), "must be text"},
	}
	for _, c := range cases {
		errs := s.Check(c.s, nil)
		switch {
		case c.want == "" && len(errs) > 0:
			t.Errorf("%s: refused: %v", c.name, errs)
		case c.want != "" && (len(errs) == 0 || !strings.Contains(errs.Error(), c.want)):
			t.Errorf("%s: %v, want %q", c.name, errs, c.want)
		}
	}
	notUsed := s.Check(sub(GAD7, num("GAD7_1", 1)), func(instr string) bool { return instr == PROCTCAE })
	if len(notUsed) != 1 || !strings.Contains(notUsed.Error(), "GAD-7 is not an instrument of study") {
		t.Errorf("an instrument the study does not use: %v", notUsed)
	}
}

func TestScores(t *testing.T) {
	phq, _ := Builtin().Lookup(PHQ9)
	v := map[string]float64{}
	for i := 1; i <= 8; i++ {
		v["PHQ9_"+string(rune('0'+i))] = float64(i % 4)
	}
	if s := phq.ComputeScores(v); s != nil {
		t.Fatalf("total of an incomplete PHQ-9: %v", s)
	}
	v["PHQ9_9"] = 3
	if s := phq.ComputeScores(v); s[PHQ9Total] != 15 {
		t.Fatalf("total %v, want 15", s)
	}
}
