package codecs

import (
	"encoding/json"
	"log/slog"
	"time"
)

// CleanSubmission is what intake writes to epro-clean: a validated report
// with ids canonical, times in UTC (the device's offset kept), values in
// canonical units, and instrument scores.
type CleanSubmission struct {
	V                 int    `json:"v"`
	MessageID         string `json:"message_id"`
	StudyID           string `json:"study_id"`
	SiteID            string `json:"site_id"`
	SubjectID         string `json:"subject_id"`
	Instrument        string `json:"instrument"`
	InstrumentVersion string `json:"instrument_version,omitempty"`
	Source            string `json:"source,omitempty"`
	// Format is "native" or "fhir".
	Format      string    `json:"format"`
	SubmittedAt time.Time `json:"submitted_at"` // UTC
	// OffsetSeconds is the device's UTC offset at submission.
	OffsetSeconds int `json:"offset_s"`
	// ReceivedAt is the Kafka timestamp of the submission record.
	ReceivedAt time.Time                  `json:"received_at"`
	Items      []CleanItem                `json:"items"`
	Scores     map[string]float64         `json:"scores,omitempty"`
	Extra      map[string]json.RawMessage `json:"extra,omitempty"`
}

// CleanItem is one answer after normalisation. Num is set for numeric and
// boolean answers (true = 1); Text holds free text, which is never logged.
type CleanItem struct {
	Code string   `json:"code"`
	Num  *float64 `json:"num,omitempty"`
	Text string   `json:"text,omitempty"`
	Unit string   `json:"unit,omitempty"`
}

func (c CleanSubmission) wireVersion() int { return c.V }

// LogValue logs a clean submission by its ids only.
func (c CleanSubmission) LogValue() slog.Value {
	return slog.GroupValue(slog.String("message_id", c.MessageID), slog.String("subject_id", c.SubjectID),
		slog.String("instrument", c.Instrument))
}

// LogValue keeps answers out of logs.
func (c CleanItem) LogValue() slog.Value { return slog.StringValue(c.Code + "=[redacted]") }

// Values returns the numeric answers and scores by code.
func (c CleanSubmission) Values() map[string]float64 {
	out := make(map[string]float64, len(c.Items)+len(c.Scores))
	for _, it := range c.Items {
		if it.Num != nil {
			out[it.Code] = *it.Num
		}
	}
	for k, v := range c.Scores {
		out[k] = v
	}
	return out
}
