package codecs

import (
	"encoding/json"
	"time"
)

// QuestionnaireRecord is a FHIR Questionnaire a study added at run time
// (PUT /fhir/Questionnaire/{id}): the value of epro-questionnaires, keyed
// "id:<id>" and "url:<url>" (compacted), both holding the same record. The
// study owns the id and the url: another study's responses never map
// through it, and another study may not replace it.
type QuestionnaireRecord struct {
	V        int             `json:"v"`
	StudyID  string          `json:"study_id"`
	ID       string          `json:"id"`
	URL      string          `json:"url"`
	Resource json.RawMessage `json:"resource"` // the Questionnaire as put
	// Revision counts the puts of this id, from 1.
	Revision int       `json:"revision"`
	By       string    `json:"by"` // the API key id
	At       time.Time `json:"at"` // server time
}

func (q QuestionnaireRecord) wireVersion() int { return q.V }

// Validate checks the record's fields.
func (q QuestionnaireRecord) Validate() error {
	var errs FieldErrors
	checkID(&errs, "study_id", q.StudyID, true)
	if q.ID == "" {
		errs.add("id", "is required")
	}
	if q.URL == "" {
		errs.add("url", "is required")
	}
	if len(q.Resource) == 0 {
		errs.add("resource", "is required")
	}
	return errs.err()
}
