package loadgen

import (
	"math"
	"strings"
	"testing"

	"github.com/eprostream/eprostream/codecs"
)

// ruleState is an independent reading of the default rules in docs/architecture.md, on
// values converted to °C and kg as intake does.
type ruleState struct {
	baseN   map[string]int
	baseSum map[string]float64
	lastNRS float64
	weights [][2]float64 // unix seconds, kg
}

func (st *ruleState) rulesMet(sub *codecs.Submission) []string {
	at, _ := codecs.ParseTime(sub.SubmittedAt)
	var met []string
	total := 0.0
	for _, it := range sub.Items {
		v := it.Value.Num
		switch {
		case sub.Instrument == "PRO-CTCAE":
			if (strings.HasSuffix(it.Code, "_SEVERITY") || strings.HasSuffix(it.Code, "_INTERFERENCE")) && v >= 3 {
				met = append(met, "severe-symptom")
			}
			if n := st.baseN[it.Code]; n >= 3 && v >= st.baseSum[it.Code]/3+2-1e-9 {
				met = append(met, "worsening")
			} else if n < 3 {
				st.baseN[it.Code]++
				st.baseSum[it.Code] += v
			}
		case it.Code == "PAIN_NRS":
			if v >= 7 && st.lastNRS >= 7 {
				met = append(met, "pain-streak")
			}
			st.lastNRS = v
		case it.Code == "BODY_TEMPERATURE":
			if it.Unit == unitFahrenheit {
				v = math.Round((v-32)*5/9*100) / 100
			}
			if v >= 38 {
				met = append(met, "fever")
			}
		case it.Code == "BODY_WEIGHT":
			if it.Unit == unitPound {
				v = math.Round(v*kgPerPound*1000) / 1000
			}
			for _, p := range st.weights {
				if float64(at.Unix())-p[0] <= 72*3600 && v-p[1] >= 2-1e-9 {
					met = append(met, "weight-gain")
					break
				}
			}
			st.weights = append(st.weights, [2]float64{float64(at.Unix()), v})
		case it.Code == "PHQ9_9" && v > 0:
			met = append(met, "phq9-self-harm")
		}
		total += v
	}
	if sub.Instrument == "PHQ-9" && total >= 20 {
		met = append(met, "phq9-total")
	}
	return met
}

func TestAbnormalMatchesTheRules(t *testing.T) {
	recs, _ := drain(t, trialConfig())
	states := map[string]*ruleState{}
	fired := map[string]int{}
	for i, r := range recs {
		if r.Kind != Valid {
			continue
		}
		st := states[r.Key]
		if st == nil {
			st = &ruleState{baseN: map[string]int{}, baseSum: map[string]float64{}}
			states[r.Key] = st
		}
		met := st.rulesMet(r.Submission)
		if (len(met) > 0) != r.Abnormal {
			t.Fatalf("record %d: Abnormal %v, rules met %v:\n%s", i, r.Abnormal, met, r.Value)
		}
		for _, m := range met {
			fired[m]++
		}
	}
	t.Logf("rules met: %v", fired)
	for _, rule := range []string{"severe-symptom", "worsening", "pain-streak", "fever", "weight-gain", "phq9-self-harm", "phq9-total"} {
		if fired[rule] == 0 {
			t.Errorf("no report meets %s", rule)
		}
	}
}
