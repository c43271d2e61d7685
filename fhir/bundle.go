package fhir

import (
	"fmt"
	json "github.com/goccy/go-json"
	"strings"

	"github.com/eprostream/eprostream/codecs"
)

// Bundle types POST /fhir accepts.
const (
	BundleBatch       = "batch"
	BundleTransaction = "transaction"
	BundleCollection  = "collection"
)

// Entry is one resource of a Bundle.
type Entry struct {
	FullURL  string
	Resource json.RawMessage
	Type     string // its resourceType
}

type bundleDoc struct {
	ResourceType string `json:"resourceType"`
	Type         string `json:"type"`
	Entry        []struct {
		FullURL  string          `json:"fullUrl"`
		Resource json.RawMessage `json:"resource"`
		Request  *struct {
			Method string `json:"method"`
			URL    string `json:"url"`
		} `json:"request"`
	} `json:"entry"`
}

// ReadBundle reads a Bundle of QuestionnaireResponses and Observations, at
// most limit entries. The error lists every structural problem (as a
// codecs.FieldErrors with FHIRPath expressions); an entry's own content is
// the mapping's to check.
func ReadBundle(b []byte, limit int) (string, []Entry, error) {
	var doc bundleDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		return "", nil, codecs.FieldErrors{{Path: TypeBundle, Reason: "is malformed (" + typeProblem(err) + ")"}}
	}
	var errs codecs.FieldErrors
	switch doc.Type {
	case BundleBatch, BundleTransaction, BundleCollection:
	case "":
		errs = append(errs, codecs.FieldError{Path: "Bundle.type", Reason: "is required (batch, transaction or collection)"})
	default:
		errs = append(errs, codecs.FieldError{Path: "Bundle.type", Reason: fmt.Sprintf("is %s; POST /fhir takes batch, transaction or collection", codecs.QuoteID(doc.Type))})
	}
	switch {
	case len(doc.Entry) == 0:
		errs = append(errs, codecs.FieldError{Path: "Bundle.entry", Reason: "is empty"})
	case len(doc.Entry) > limit:
		errs = append(errs, codecs.FieldError{Path: "Bundle.entry", Reason: fmt.Sprintf("has %d entries, at most %d", len(doc.Entry), limit)})
		return doc.Type, nil, errs
	}
	entries := make([]Entry, len(doc.Entry))
	for i, e := range doc.Entry {
		p := fmt.Sprintf("Bundle.entry[%d]", i)
		entries[i] = Entry{FullURL: e.FullURL, Resource: e.Resource}
		rt, err := ResourceType(e.Resource)
		switch {
		case e.Resource == nil || err != nil:
			errs = append(errs, codecs.FieldError{Path: p + ".resource", Reason: "is required (a QuestionnaireResponse or an Observation)"})
			continue
		case rt != TypeQuestionnaireResponse && rt != TypeObservation:
			errs = append(errs, codecs.FieldError{Path: p + ".resource", Reason: fmt.Sprintf("is a %s; a Bundle here holds QuestionnaireResponses and Observations", codecs.QuoteID(rt))})
			continue
		}
		entries[i].Type = rt
		if doc.Type == BundleCollection || e.Request == nil {
			if doc.Type != BundleCollection {
				errs = append(errs, codecs.FieldError{Path: p + ".request", Reason: "is required in a " + doc.Type + " (method POST, url " + rt + ")"})
			}
			continue
		}
		url := strings.TrimPrefix(strings.TrimSuffix(e.Request.URL, "/"), "/")
		if e.Request.Method != "POST" || (url != rt && !strings.HasPrefix(url, rt+"?")) {
			errs = append(errs, codecs.FieldError{Path: p + ".request", Reason: fmt.Sprintf("is %s %s; only POST %s (create) is supported",
				codecs.QuoteID(e.Request.Method), codecs.QuoteID(e.Request.URL), rt)})
		}
	}
	if len(errs) > 0 {
		return doc.Type, nil, errs
	}
	return doc.Type, entries, nil
}

// InEntry rewrites an expression of an entry's resource into the Bundle's:
// QuestionnaireResponse.item[0] → Bundle.entry[2].resource.item[0].
func InEntry(i int, expr string) string {
	p := fmt.Sprintf("Bundle.entry[%d].resource", i)
	for _, rt := range []string{TypeQuestionnaireResponse, TypeObservation} {
		if rest, ok := strings.CutPrefix(expr, rt); ok && (rest == "" || rest[0] == '.') {
			return p + rest
		}
	}
	if expr == "" {
		return p
	}
	return p + "." + expr
}

// ResponseBundle is the answer to a Bundle: one entry per entry sent.
type ResponseBundle struct {
	ResourceType string          `json:"resourceType"`
	Type         string          `json:"type"` // batch-response or transaction-response
	Entry        []ResponseEntry `json:"entry"`
}

// ResponseEntry is one entry's outcome.
type ResponseEntry struct {
	FullURL  string        `json:"fullUrl,omitempty"`
	Response EntryResponse `json:"response"`
}

// EntryResponse is Bundle.entry.response.
type EntryResponse struct {
	Status   string            `json:"status"`
	Location string            `json:"location,omitempty"`
	Etag     string            `json:"etag,omitempty"`
	Outcome  *OperationOutcome `json:"outcome,omitempty"`
}
