package loadgen

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"

	"github.com/eprostream/eprostream/codecs"
)

// malformation is a way a record can be wrong. Each one but outOfRange
// fails codecs.DecodeSubmission; outOfRange decodes (it is well-formed JSON
// with a valid envelope) and must be rejected by intake's instrument checks.
type malformation uint8

const (
	notJSON      malformation = iota
	truncated                 // a valid envelope cut short
	missingField              // a required field left out
	wrongType                 // e.g. "items": "x"
	outOfRange                // e.g. PAIN_SEVERITY 9
	noOffset                  // submitted_at without its offset
	badUTF8                   // free text in Latin-1
	malformations
)

var notJSONBodies = [...]string{
	"subject_id=%s&instrument=NRS-PAIN&PAIN_NRS=3",
	"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>",
	"",
	"PAIN_NRS;3;%s",
}

var requiredFields = [...]string{"message_id", "study_id", "site_id", "subject_id", "instrument", "submitted_at", "items"}

var wrongTypes = [...]struct{ field, raw string }{
	{"items", `"x"`},
	{"subject_id", `42`},
	{"submitted_at", `1795000000`},
	{"items", `[{"code":"PAIN_NRS","value":{"score":3}}]`},
}

// outOfRangeItems are answers outside their instrument's scale.
var outOfRangeItems = [...]struct {
	instrument instrument
	code       string
	value      float64
}{
	{proCTCAE, "PAIN_SEVERITY", 9},
	{proCTCAE, "FATIGUE_SEVERITY", -1},
	{proCTCAE, "NAUSEA_FREQUENCY", 2.5},
	{nrsPain, "PAIN_NRS", 14},
	{phq9, "PHQ9_4", 5},
}

// badText stands for the raw bytes spliced into a badUTF8 record after
// encoding: json.Marshal would have replaced invalid UTF-8.
const badText = "LOADGEN_RAW_BYTES"

// malformed builds a record that intake must reject, keyed by a real subject.
func (g *Generator) malformed() Record {
	s := &g.subjects[g.rng.IntN(len(g.subjects))]
	st := &g.sites[s.site]
	at := g.clock.In(st.zone)
	g.bad++
	env := g.badEnvelope(s, st, at)
	var b []byte
	switch malformation(g.rng.IntN(int(malformations))) {
	case notJSON:
		body := notJSONBodies[g.rng.IntN(len(notJSONBodies))]
		b = bytes.ReplaceAll([]byte(body), []byte("%s"), []byte(s.id))
	case truncated:
		b = marshalNative(&env)
		b = b[:1+g.rng.IntN(len(b)-1)]
	case missingField:
		b = editFields(&env, requiredFields[g.rng.IntN(len(requiredFields))], "")
	case wrongType:
		wt := wrongTypes[g.rng.IntN(len(wrongTypes))]
		b = editFields(&env, wt.field, wt.raw)
	case outOfRange:
		b = marshalNative(g.outOfRange(&env))
	case noOffset:
		env.SubmittedAt = at.Format("2006-01-02T15:04:05")
		b = marshalNative(&env)
	default:
		env.Instrument = diary.String()
		env.Items = []codecs.Item{{Code: "NOTES", Value: codecs.Text("Had coffee at the " + badText + ".")}}
		b = bytes.Replace(marshalNative(&env), []byte(badText), []byte("caf\xe9"), 1)
	}
	return Record{Key: s.id, Value: b, Kind: Malformed, SubmittedAt: at}
}

// badEnvelope is an ordinary NRS-PAIN report with its own id namespace, so a
// malformed record never shares a message_id with a valid one.
func (g *Generator) badEnvelope(s *subject, st *site, at time.Time) codecs.Submission {
	return codecs.Submission{
		MessageID: g.badPrefix + strconv.FormatUint(g.bad, 36),
		StudyID:   st.study, SiteID: st.id, SubjectID: s.id,
		Instrument: nrsPain.String(), InstrumentVersion: instrumentVersion,
		SubmittedAt: at.Format(time.RFC3339), Source: "app",
		Items: []codecs.Item{{Code: "PAIN_NRS", Value: codecs.Number(float64(g.rng.IntN(5)))}},
	}
}

// editFields removes field from the envelope, or sets it to raw JSON.
func editFields(env *codecs.Submission, field, raw string) []byte {
	var m map[string]json.RawMessage
	_ = json.Unmarshal(marshalNative(env), &m) // our own encoding: cannot fail
	if raw == "" {
		delete(m, field)
	} else {
		m[field] = json.RawMessage(raw)
	}
	b, _ := json.Marshal(m) // map keys are sorted: deterministic
	return b
}

// outOfRange turns env into a complete report of the instrument with one
// answer off its scale.
func (g *Generator) outOfRange(env *codecs.Submission) *codecs.Submission {
	bad := outOfRangeItems[g.rng.IntN(len(outOfRangeItems))]
	var codes []string
	switch bad.instrument {
	case proCTCAE:
		codes = ctcaeCodes[:]
	case phq9:
		codes = phqCodes[:]
	default:
		codes = []string{bad.code}
	}
	env.Instrument = bad.instrument.String()
	env.Items = make([]codecs.Item, len(codes))
	for k, code := range codes {
		v := float64(g.rng.IntN(2))
		if code == bad.code {
			v = bad.value
		} else if code == "PHQ9_9" {
			v = 0
		}
		env.Items[k] = codecs.Item{Code: code, Value: codecs.Number(v)}
	}
	return env
}
