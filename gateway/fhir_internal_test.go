package gateway

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// Every error of the /fhir routes is an OperationOutcome, whatever wrote
// it: the gateway's own Problem, or a plain-text error of another handler.
func TestFHIRErrorsAreOperationOutcomesWhoeverWritesThem(t *testing.T) {
	cases := map[string]http.HandlerFunc{
		"Problem": func(w http.ResponseWriter, r *http.Request) { fail(w, http.StatusTooManyRequests, "over the limit") },
		"plain text": func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "over the limit", http.StatusTooManyRequests)
		},
	}
	for name, h := range cases {
		rec := httptest.NewRecorder()
		fhirAPI(h).ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/fhir/Observation", nil))
		body := rec.Body.String()
		if rec.Code != http.StatusTooManyRequests || !strings.HasPrefix(rec.Header().Get("Content-Type"), fhirJSON) ||
			!strings.Contains(body, `"resourceType":"OperationOutcome"`) || !strings.Contains(body, `"code":"throttled"`) ||
			!strings.Contains(body, "over the limit") {
			t.Errorf("%s: %d %q %s", name, rec.Code, rec.Header().Get("Content-Type"), body)
		}
	}
}
