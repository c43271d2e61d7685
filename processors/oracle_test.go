package processors_test

import (
	"math"
	"sort"
	"strings"

	"github.com/eprostream/eprostream/codecs"
)

// oracle computes, independently of the rules package, what the default
// clinical rules of docs/architecture.md must yield for a sequence of submissions: the
// set of alerts (rule|subject|message|item|severity) and each subject's
// report count, first and last report time, and open conditions. It keeps
// whole histories instead of bounded ones, as a specification would.
type oracle struct {
	subjects map[string]*oracleSubject
	alerts   map[string]bool
}

type oracleSubject struct {
	seen          map[string]bool
	reports       int
	first, last   int64
	baseline      map[string][]float64
	prevPain      *float64
	weights       [][2]float64 // (unix seconds, kg)
	open          map[string]int
	study, subjID string
}

func newOracle() *oracle {
	return &oracle{subjects: map[string]*oracleSubject{}, alerts: map[string]bool{}}
}

func rank(sev string) int {
	return map[string]int{"": 0, "info": 1, "warning": 2, "urgent": 3}[sev]
}

func (o *oracle) apply(s codecs.Submission) {
	st := o.subjects[s.SubjectID]
	if st == nil {
		st = &oracleSubject{seen: map[string]bool{}, baseline: map[string][]float64{}, open: map[string]int{}, subjID: s.SubjectID}
		o.subjects[s.SubjectID] = st
	}
	if st.seen[s.MessageID] {
		return
	}
	st.seen[s.MessageID] = true
	at, _ := codecs.ParseTime(s.SubmittedAt)
	t := at.Unix()
	vals := numericValues(s)
	codes := make([]string, 0, len(vals))
	for c := range vals {
		codes = append(codes, c)
	}
	sort.Strings(codes)
	settle := func(rule, item, sev string) {
		key := rule + "/" + item
		if sev == "" {
			delete(st.open, key)
			return
		}
		if st.open[key] >= rank(sev) {
			return
		}
		st.open[key] = rank(sev)
		o.alerts[strings.Join([]string{rule, s.SubjectID, s.MessageID, item, sev}, "|")] = true
	}
	ctcae := strings.ToUpper(s.Instrument) == "PRO-CTCAE"
	for _, code := range codes {
		v := vals[code]
		severityItem := strings.HasSuffix(code, "_SEVERITY") || strings.HasSuffix(code, "_INTERFERENCE")
		anyCTCAE := severityItem || strings.HasSuffix(code, "_FREQUENCY") || strings.HasSuffix(code, "_AMOUNT")
		if ctcae && severityItem {
			settle("severe-symptom", code, pick(v >= 4, "urgent", pick(v >= 3, "warning", "")))
		}
		if ctcae && anyCTCAE {
			sev := ""
			if b := st.baseline[code]; len(b) >= 3 && v >= (b[0]+b[1]+b[2])/3+2-1e-9 {
				sev = "warning"
			}
			settle("worsening", code, sev)
		}
		switch code {
		case "PHQ9_9":
			settle("phq9-self-harm", code, pick(v > 0, "urgent", ""))
		case "PHQ9_TOTAL":
			settle("phq9-total", code, pick(v >= 20, "warning", ""))
		case "PAIN_NRS":
			settle("pain-streak", code, pick(st.prevPain != nil && *st.prevPain >= 7 && v >= 7, "warning", ""))
		case "BODY_TEMPERATURE":
			settle("fever", code, pick(v >= 38, "warning", ""))
		case "BODY_WEIGHT":
			low := math.Inf(1)
			for _, w := range st.weights {
				if w[0] < float64(t) && float64(t)-w[0] <= 72*3600 {
					low = math.Min(low, w[1])
				}
			}
			settle("weight-gain", code, pick(!math.IsInf(low, 1) && v-low >= 2-1e-9, "warning", ""))
		}
	}
	for _, code := range codes {
		v := vals[code]
		if ctcae && len(st.baseline[code]) < 3 && (strings.HasSuffix(code, "_SEVERITY") || strings.HasSuffix(code, "_INTERFERENCE") ||
			strings.HasSuffix(code, "_FREQUENCY") || strings.HasSuffix(code, "_AMOUNT")) {
			st.baseline[code] = append(st.baseline[code], v)
		}
		switch code {
		case "PAIN_NRS":
			st.prevPain = &v
		case "BODY_WEIGHT":
			st.weights = append(st.weights, [2]float64{float64(t), v})
		}
	}
	st.reports++
	if st.first == 0 || t < st.first {
		st.first = t
	}
	st.last = max(st.last, t)
}

func pick(cond bool, a, b string) string {
	if cond {
		return a
	}
	return b
}

// numericValues converts answers to canonical units (°C to 0.01, kg to
// 0.001) and adds the PHQ-9 total when all nine items are there.
func numericValues(s codecs.Submission) map[string]float64 {
	out := map[string]float64{}
	for _, it := range s.Items {
		code := strings.ToUpper(it.Code)
		var v float64
		switch it.Value.Kind {
		case codecs.KindNumber:
			v = it.Value.Num
		case codecs.KindBool:
			if it.Value.Bool {
				v = 1
			}
		default:
			continue
		}
		switch {
		case code == "BODY_TEMPERATURE" && (it.Unit == "[degF]" || it.Unit == "°F"):
			v = math.Round((v-32)*5/9*100) / 100
		case code == "BODY_WEIGHT" && (it.Unit == "[lb_av]" || it.Unit == "lb"):
			v = math.Round(v*0.45359237*1000) / 1000
		}
		out[code] = v
	}
	if strings.ToUpper(s.Instrument) == "PHQ-9" {
		total, n := 0.0, 0
		for i := 1; i <= 9; i++ {
			if v, ok := out["PHQ9_"+string(rune('0'+i))]; ok {
				total += v
				n++
			}
		}
		if n == 9 {
			out["PHQ9_TOTAL"] = total
		}
	}
	return out
}
