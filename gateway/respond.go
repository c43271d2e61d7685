package gateway

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/eprostream/eprostream/codecs"
)

// Problem is the body of every error answer.
type Problem struct {
	Error  string         `json:"error"`
	Fields []FieldProblem `json:"fields,omitempty"`
}

// FieldProblem names one wrong field of a submission.
type FieldProblem struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

// Accepted is the body of a 202.
type Accepted struct {
	MessageID string `json:"message_id"`
	Status    string `json:"status"` // "accepted"
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	writeRaw(w, status, b)
}

func writeRaw(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

func fail(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, Problem{Error: msg})
}

// problemOf turns a decoding error into a 400 or 413 Problem.
func problemOf(err error) (int, Problem) {
	var fe codecs.FieldErrors
	switch {
	case errors.As(err, &fe):
		p := Problem{Error: "invalid submission: " + strconv.Itoa(len(fe)) + " field error(s)"}
		for _, f := range fe {
			p.Fields = append(p.Fields, FieldProblem{Path: f.Path, Reason: f.Reason})
		}
		return http.StatusBadRequest, p
	case errors.Is(err, codecs.ErrTooLarge):
		return http.StatusRequestEntityTooLarge, Problem{Error: trimPkg(err.Error())}
	default:
		return http.StatusBadRequest, Problem{Error: trimPkg(err.Error())}
	}
}

// trimPkg drops the "codecs: " prefix callers need not see.
func trimPkg(s string) string {
	if len(s) > 8 && s[:8] == "codecs: " {
		return s[8:]
	}
	return s
}
