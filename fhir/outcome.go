package fhir

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// OperationOutcome is FHIR's answer to a request that failed (or a warning
// beside one that did not).
type OperationOutcome struct {
	ResourceType string  `json:"resourceType"`
	Issue        []Issue `json:"issue"`
}

// Issue is one problem of an OperationOutcome.
type Issue struct {
	Severity    string   `json:"severity"` // fatal | error | warning | information
	Code        string   `json:"code"`     // the IssueType value set
	Diagnostics string   `json:"diagnostics,omitempty"`
	Expression  []string `json:"expression,omitempty"`
}

// Problem is one failed field: the FHIRPath of the element and why.
type Problem struct {
	Expression, Reason string
}

// Outcome is the OperationOutcome of an HTTP status and message, with an
// issue per field problem.
func Outcome(status int, msg string, fields []Problem) OperationOutcome {
	code := IssueCode(status)
	o := OperationOutcome{ResourceType: "OperationOutcome"}
	if len(fields) == 0 {
		o.Issue = []Issue{{Severity: "error", Code: code, Diagnostics: msg}}
		return o
	}
	for _, f := range fields {
		is := Issue{Severity: "error", Code: fieldCode(code, f.Reason), Diagnostics: f.Expression + ": " + f.Reason}
		if f.Expression != "" {
			is.Expression = []string{f.Expression}
		}
		o.Issue = append(o.Issue, is)
	}
	return o
}

// Information is an OperationOutcome of one informational issue, or of
// warnings when there are some.
func Information(msg string, warnings []string) OperationOutcome {
	o := OperationOutcome{ResourceType: "OperationOutcome", Issue: []Issue{{Severity: "information", Code: "informational", Diagnostics: msg}}}
	for _, w := range warnings {
		o.Issue = append(o.Issue, Issue{Severity: "warning", Code: "not-supported", Diagnostics: w})
	}
	return o
}

// IssueCode is the IssueType of an HTTP error status.
func IssueCode(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "invalid"
	case http.StatusUnauthorized:
		return "login"
	case http.StatusForbidden:
		return "forbidden"
	case http.StatusNotFound:
		return "not-found"
	case http.StatusConflict:
		return "conflict"
	case http.StatusRequestEntityTooLarge:
		return "too-costly"
	case http.StatusUnsupportedMediaType, http.StatusMethodNotAllowed, http.StatusNotAcceptable:
		return "not-supported"
	case http.StatusUnprocessableEntity:
		return "business-rule"
	case http.StatusTooManyRequests:
		return "throttled"
	case http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return "transient"
	}
	if status >= 500 {
		return "exception"
	}
	return "processing"
}

func fieldCode(code, reason string) string {
	switch {
	case code != "invalid":
		return code
	case strings.HasPrefix(reason, "is required"):
		return "required"
	case strings.Contains(reason, "is not a Questionnaire of this study"), strings.Contains(reason, "is not an item"),
		strings.Contains(reason, "not a measurement"), strings.Contains(reason, "is not one of the answers"):
		return "code-invalid"
	case strings.HasPrefix(reason, "is malformed"), strings.Contains(reason, "must be a JSON"):
		return "structure"
	}
	return "value"
}

// StatusLine is a Bundle entry's response.status: "201 Created".
func StatusLine(status int) string {
	return fmt.Sprintf("%d %s", status, http.StatusText(status))
}

// Encode is the JSON of a FHIR resource.
func Encode(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}
