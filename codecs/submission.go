// Package codecs holds eprostream's wire formats and their validation: the
// Submission envelope (native JSON or FHIR R4 QuestionnaireResponse), the
// CleanSubmission intake writes, the SubjectState of the subject table, the
// Alert and the Command. Each record on an internal topic carries a wire
// version ("v") so older records still decode.
package codecs

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	json "github.com/goccy/go-json"
)

// Limits of a submission.
const (
	MaxSubmissionBytes = 256 << 10
	MaxIDLen           = 128
	MaxItems           = 500
	MaxTextLen         = 4000
	// MaxFutureSkew is how far ahead of its receipt a submission may be dated.
	MaxFutureSkew = 10 * time.Minute
	// MaxAge is how old a submission may be when it is received.
	MaxAge = 400 * 24 * time.Hour
)

// Submission is the envelope a producer sends (native JSON), or what a FHIR
// QuestionnaireResponse maps onto.
type Submission struct {
	MessageID         string `json:"message_id"`
	StudyID           string `json:"study_id"`
	SiteID            string `json:"site_id"`
	SubjectID         string `json:"subject_id"`
	Instrument        string `json:"instrument"`
	InstrumentVersion string `json:"instrument_version,omitempty"`
	// SubmittedAt is RFC 3339 with the offset the device had.
	SubmittedAt string `json:"submitted_at"`
	Source      string `json:"source,omitempty"`
	Items       []Item `json:"items"`
	// Extra keeps the fields this version does not know, for the warehouse.
	// A native envelope may carry only extensions (names starting with x_);
	// a FHIR resource keeps its status here (x_fhir_status).
	Extra map[string]json.RawMessage `json:"-"`
	// Format is what ParseSubmission found the bytes to be. A Submission
	// built in Go (the emitters) is native.
	Format Format `json:"-"`
}

// Format is the shape a submission arrived in.
type Format string

// The formats ParseSubmission detects; "" counts as native.
const (
	FormatNative Format = "native"
	FormatFHIR   Format = "fhir"
)

// ExtensionPrefix starts the name of every field a producer adds to the
// native envelope; any other unknown name is refused as a likely typo.
const ExtensionPrefix = "x_"

// IsFHIR reports whether s was mapped from a FHIR resource.
func (s Submission) IsFHIR() bool { return s.Format == FormatFHIR }

// Origin is the format s first arrived in: fhir for a FHIR resource, also
// when the gateway mapped it onto a native envelope (x_fhir_resource).
func (s Submission) Origin() Format {
	if s.IsFHIR() || s.Extra[FHIRResourceExtension] != nil {
		return FormatFHIR
	}
	return FormatNative
}

// Item is one answer.
type Item struct {
	Code  string `json:"code"`
	Value Value  `json:"value"`
	Unit  string `json:"unit,omitempty"`
}

// ValueKind says which of Value's fields holds the answer.
type ValueKind uint8

// The kinds of answer.
const (
	KindNone ValueKind = iota
	KindNumber
	KindBool
	KindText
)

// Value is a number, a boolean or free text. Free text is PHI: it is kept
// and forwarded, never logged (LogValue redacts it).
type Value struct {
	Kind ValueKind
	Num  float64
	Bool bool
	Text string
}

// Number returns a numeric Value.
func Number(f float64) Value { return Value{Kind: KindNumber, Num: f} }

// Text returns a free-text Value.
func Text(s string) Value { return Value{Kind: KindText, Text: s} }

// MarshalJSON writes the value as a JSON number, boolean or string.
func (v Value) MarshalJSON() ([]byte, error) {
	switch v.Kind {
	case KindNumber:
		return strconv.AppendFloat(nil, v.Num, 'g', -1, 64), nil
	case KindBool:
		return strconv.AppendBool(nil, v.Bool), nil
	case KindText:
		return json.Marshal(v.Text)
	default:
		return []byte("null"), nil
	}
}

// UnmarshalJSON accepts a number, a boolean, a string or null.
func (v *Value) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) == 0 || string(b) == "null":
		*v = Value{}
	case b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*v = Text(s)
	case string(b) == "true" || string(b) == "false":
		*v = Value{Kind: KindBool, Bool: b[0] == 't'}
	default:
		f, err := strconv.ParseFloat(string(b), 64)
		if err != nil {
			return errBadValue
		}
		*v = Number(f)
	}
	return nil
}

// LogValue keeps answers out of logs.
func (v Value) LogValue() slog.Value { return slog.StringValue("[redacted]") }

// LogValue logs a submission by its ids only.
func (s Submission) LogValue() slog.Value {
	return slog.GroupValue(slog.String("message_id", s.MessageID), slog.String("study_id", s.StudyID),
		slog.String("subject_id", s.SubjectID), slog.String("instrument", s.Instrument))
}

var knownFields = map[string]bool{
	"message_id": true, "study_id": true, "site_id": true, "subject_id": true, "instrument": true,
	"instrument_version": true, "submitted_at": true, "source": true, "items": true,
}

// UnmarshalJSON decodes the envelope and keeps unknown fields in Extra.
func (s *Submission) UnmarshalJSON(b []byte) error {
	type plain Submission
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(b, &all); err != nil {
		return err
	}
	for k, raw := range all {
		if !knownFields[k] {
			for known := range knownFields {
				if strings.EqualFold(k, known) {
					// encoding/json matches names case-insensitively; a near-twin
					// would be read as the field and kept in Extra too.
					return errCaseVariant{key: k, field: known}
				}
			}
			if p.Extra == nil {
				p.Extra = map[string]json.RawMessage{}
			}
			p.Extra[k] = raw
		}
	}
	*s = Submission(p)
	return nil
}

// MarshalJSON writes the envelope with its extra fields.
func (s Submission) MarshalJSON() ([]byte, error) {
	type plain Submission
	b, err := json.Marshal(plain(s))
	if err != nil || len(s.Extra) == 0 {
		return b, err
	}
	extra, err := json.Marshal(s.Extra)
	if err != nil {
		return nil, err
	}
	// Splice {"extra fields"} into the object; Extra never holds a known
	// field's name in any letter case (UnmarshalJSON refuses those).
	out := append(b[:len(b)-1:len(b)-1], ',')
	return append(out, extra[1:]...), nil
}

// DecodeSubmission decodes a native envelope or a FHIR QuestionnaireResponse
// and validates it. now is the time the record was received (its Kafka
// timestamp), against which submitted_at is checked.
func DecodeSubmission(b []byte, now time.Time) (Submission, error) {
	s, err := ParseSubmission(b)
	if err != nil {
		return Submission{}, err
	}
	if err := s.Validate(now); err != nil {
		return Submission{}, err
	}
	return s, nil
}

// ParseSubmission decodes a native envelope or a FHIR QuestionnaireResponse
// without validating its fields; callers that add checks of their own call
// Validate and report every problem together.
func ParseSubmission(b []byte) (Submission, error) {
	if len(b) > MaxSubmissionBytes {
		return Submission{}, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(b), MaxSubmissionBytes)
	}
	if !utf8.Valid(b) {
		return Submission{}, FieldErrors{{Path: "$", Reason: "body is not valid UTF-8"}}
	}
	if trimmed := bytes.TrimSpace(b); len(trimmed) > 0 && trimmed[0] == '{' && !containsFold(b, "resourcetype") {
		// A native envelope (the common case): decoded once, without the probe.
		s := Submission{Format: FormatNative}
		if err := json.Unmarshal(b, &s); err != nil {
			var syntax *json.SyntaxError
			if errors.As(err, &syntax) {
				return Submission{}, fmt.Errorf("%w: %s", ErrNotJSON, jsonProblem(err))
			}
			return Submission{}, FieldErrors{{Path: "$", Reason: jsonProblem(err)}}
		}
		s.Format = FormatNative
		return s, nil
	}
	var probe struct {
		ResourceType *string `json:"resourceType"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return Submission{}, fmt.Errorf("%w: %s", ErrNotJSON, jsonProblem(err))
	}
	if trimmed := bytes.TrimSpace(b); len(trimmed) == 0 || trimmed[0] != '{' {
		return Submission{}, fmt.Errorf("%w: the body must be a JSON object", ErrNotJSON)
	}
	var s Submission
	if probe.ResourceType != nil {
		var err error
		if s, err = FromFHIR(b); err != nil {
			return Submission{}, err
		}
	} else if err := json.Unmarshal(b, &s); err != nil {
		return Submission{}, FieldErrors{{Path: "$", Reason: jsonProblem(err)}}
	} else {
		s.Format = FormatNative
	}
	return s, nil
}

// containsFold reports whether b holds lower (lowercase ASCII) in any
// letter case: JSON field names match case-insensitively here.
func containsFold(b []byte, lower string) bool {
	for i := 0; i+len(lower) <= len(b); i++ {
		if b[i]|0x20 == lower[0] && bytes.EqualFold(b[i:i+len(lower)], []byte(lower)) {
			return true
		}
	}
	return false
}

var errBadValue = errors.New("items[].value must be a finite number, a boolean or a string")

type errCaseVariant struct{ key, field string }

func (e errCaseVariant) Error() string {
	return fmt.Sprintf("field %q differs from %q only in case", truncate(e.key, 40), e.field)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// jsonProblem describes a decoding error without quoting the input.
func jsonProblem(err error) string {
	var cv errCaseVariant
	if errors.Is(err, errBadValue) {
		return errBadValue.Error()
	}
	if errors.As(err, &cv) {
		return cv.Error()
	}
	switch e := err.(type) {
	case *json.SyntaxError:
		return fmt.Sprintf("malformed JSON at byte %d", e.Offset)
	case *json.UnmarshalTypeError:
		field := e.Field
		if field == "" {
			field = "$"
		}
		return fmt.Sprintf("%s must be %s, not %s", field, jsonType(e.Type.Kind().String()), e.Value)
	default:
		return "malformed JSON"
	}
}

func jsonType(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "slice":
		return "an array"
	case "struct", "map":
		return "an object"
	default:
		return "a " + kind
	}
}

// validID reports whether v matches ^[A-Za-z0-9][A-Za-z0-9._:-]*$ and
// validCode whether it matches ^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$. They are
// loops rather than regular expressions because every id and item code of
// every submission passes here (a regexp was a sixth of the gateway's CPU).
func validID(v string) bool { return validChars(v, true) }

func validCode(v string) bool { return len(v) <= 64 && validChars(v, false) }

func validChars(v string, colon bool) bool {
	if v == "" || !alnum(v[0]) {
		return false
	}
	for i := 1; i < len(v); i++ {
		c := v[i]
		if !alnum(c) && c != '.' && c != '_' && c != '-' && (!colon || c != ':') {
			return false
		}
	}
	return true
}

func alnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' }

func checkID(errs *FieldErrors, path, v string, required bool) {
	switch {
	case v == "" && required:
		errs.add(path, "is required")
	case v == "":
	case len(v) > MaxIDLen:
		errs.add(path, "is %d characters, at most %d", len(v), MaxIDLen)
	case !validID(v):
		errs.add(path, "may hold only letters, digits and . _ : - (and must start with a letter or digit)")
	}
}

// CheckID reports why id is not a valid eprostream id (subject, study,
// site, message), or nil.
func CheckID(id string) error {
	var errs FieldErrors
	checkID(&errs, "id", id, true)
	return errs.err()
}

// Validate checks every field and reports all problems at once.
func (s Submission) Validate(now time.Time) error {
	var errs FieldErrors
	checkID(&errs, "message_id", s.MessageID, true)
	checkID(&errs, "study_id", s.StudyID, true)
	checkID(&errs, "site_id", s.SiteID, true)
	checkID(&errs, "subject_id", s.SubjectID, true)
	checkID(&errs, "instrument", s.Instrument, true)
	checkID(&errs, "instrument_version", s.InstrumentVersion, false)
	checkID(&errs, "source", s.Source, false)
	if t, err := ParseTime(s.SubmittedAt); err != nil {
		errs.add("submitted_at", "%v", err)
	} else if !now.IsZero() {
		switch {
		case t.After(now.Add(MaxFutureSkew)):
			errs.add("submitted_at", "is %s in the future (at most %s allowed)", t.Sub(now).Round(time.Second), MaxFutureSkew)
		case t.Before(now.Add(-MaxAge)):
			errs.add("submitted_at", "is more than %d days old", int(MaxAge.Hours()/24))
		}
	}
	switch {
	case len(s.Items) == 0:
		errs.add("items", "at least one item is required")
	case len(s.Items) > MaxItems:
		errs.add("items", "has %d items, at most %d", len(s.Items), MaxItems)
	}
	seen := make(map[string]bool, len(s.Items))
	for i, it := range s.Items {
		p := fmt.Sprintf("items[%d]", i)
		if !validCode(it.Code) {
			errs.add(p+".code", "must be 1-64 letters, digits, '_', '.' or '-'")
		} else if seen[it.Code] {
			errs.add(p+".code", "%s appears more than once", it.Code)
		}
		seen[it.Code] = true
		switch it.Value.Kind {
		case KindNone:
			errs.add(p+".value", "is required")
		case KindNumber:
			if math.IsNaN(it.Value.Num) || math.IsInf(it.Value.Num, 0) {
				errs.add(p+".value", "must be a finite number")
			}
		case KindText:
			if len(it.Value.Text) > MaxTextLen {
				errs.add(p+".value", "text is %d bytes, at most %d", len(it.Value.Text), MaxTextLen)
			}
		}
		if len(it.Unit) > 32 {
			errs.add(p+".unit", "is longer than 32 characters")
		}
	}
	s.checkExtensions(&errs)
	return errs.err()
}

// checkExtensions refuses unknown fields of a native envelope that are not
// extensions, in name order so the answer is stable.
func (s Submission) checkExtensions(errs *FieldErrors) {
	if s.IsFHIR() || len(s.Extra) == 0 {
		return
	}
	var unknown []string
	for name := range s.Extra {
		if !strings.HasPrefix(name, ExtensionPrefix) {
			unknown = append(unknown, name)
		}
	}
	slices.Sort(unknown)
	for _, name := range unknown {
		errs.add(QuoteID(name), "is not a field of the envelope (extensions must start with %s)", ExtensionPrefix)
	}
}

// QuoteID shows a caller's own id or field name back to it in a message:
// quoted, at most 64 bytes, valid UTF-8. Ids are not PHI; answers are never
// quoted.
func QuoteID(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return `"` + strings.ToValidUTF8(s, "?") + `"`
}

// ParseTime parses an RFC 3339 time that must carry its offset.
func ParseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, fmt.Errorf("is required")
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("must be an RFC 3339 time with an offset, e.g. 2026-11-20T08:15:00+01:00")
	}
	return t, nil
}
