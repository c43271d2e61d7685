package instruments

import "testing"

func TestConvert(t *testing.T) {
	cases := []struct {
		code, unit string
		in, want   float64
		wantUnit   string
		fail       bool
	}{
		{BodyTemperature, "Cel", 38, 38, "Cel", false},
		{BodyTemperature, "", 37.2, 37.2, "Cel", false},
		{BodyTemperature, "[degF]", 100.4, 38, "Cel", false},
		{BodyTemperature, "°F", 98.6, 37, "Cel", false},
		{BodyTemperature, "K", 311.15, 38, "Cel", false},
		{BodyWeight, "[lb_av]", 220.462, 100, "kg", false},
		{BodyWeight, "lb", 100, 45.359, "kg", false},
		{BodyWeight, "g", 72500, 72.5, "kg", false},
		{BodyWeight, "stone", 10, 0, "", true},
		{PainNRS, "", 7, 7, "", false},
	}
	for _, c := range cases {
		got, unit, err := Convert(c.code, c.in, c.unit)
		if (err != nil) != c.fail || (!c.fail && (got != c.want || unit != c.wantUnit)) {
			t.Errorf("Convert(%s, %v, %q) = %v %q %v; want %v %q fail=%v", c.code, c.in, c.unit, got, unit, err, c.want, c.wantUnit, c.fail)
		}
	}
}

func TestRanges(t *testing.T) {
	cases := []struct {
		code string
		v    float64
		ok   bool
	}{
		{"PAIN_SEVERITY", 4, true}, {"PAIN_SEVERITY", 5, false}, {"PAIN_SEVERITY", 2.5, false},
		{"NAUSEA_FREQUENCY", 0, true}, {"PHQ9_9", 3, true}, {"PHQ9_9", 4, false}, {"PAIN_NRS", 10, true},
		{"PAIN_NRS", -1, false}, {BodyTemperature, 45.1, false}, {BodyTemperature, 36.6, true}, {BodyWeight, 0, false},
	}
	for _, c := range cases {
		r, known := RangeOf(c.code)
		if !known || r.Contains(c.v) != c.ok {
			t.Errorf("%s %v: known %v contains %v, want %v", c.code, c.v, known, r.Contains(c.v), c.ok)
		}
	}
	if _, known := RangeOf("FAVOURITE_COLOUR"); known {
		t.Error("unknown item has a range")
	}
}

func TestPHQ9Total(t *testing.T) {
	v := map[string]float64{}
	for i, code := range []string{"PHQ9_1", "PHQ9_2", "PHQ9_3", "PHQ9_4", "PHQ9_5", "PHQ9_6", "PHQ9_7", "PHQ9_8"} {
		v[code] = float64(i % 4)
	}
	if s := Scores(PHQ9, v); s != nil {
		t.Fatalf("total of an incomplete PHQ-9: %v", s)
	}
	v["PHQ9_9"] = 3
	if s := Scores(PHQ9, v); s[PHQ9Total] != 15 {
		t.Fatalf("total %v, want 15", s)
	}
	if s := Scores(PROCTCAE, v); s != nil {
		t.Fatal("scores for PRO-CTCAE")
	}
}
