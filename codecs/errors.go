package codecs

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors; a *FieldErrors or one of these is what every decoder returns.
var (
	ErrTooLarge       = errors.New("codecs: record exceeds the size limit")
	ErrNotJSON        = errors.New("codecs: not a JSON object")
	ErrUnknownVersion = errors.New("codecs: unknown wire version")
)

// FieldError says which field is wrong and why. Reasons never quote a
// patient's answer.
type FieldError struct {
	Path   string // e.g. "items[2].value"
	Reason string
}

func (e FieldError) Error() string { return e.Path + ": " + e.Reason }

// FieldErrors is every problem found in one record.
type FieldErrors []FieldError

func (e FieldErrors) Error() string {
	parts := make([]string, len(e))
	for i, fe := range e {
		parts[i] = fe.Error()
	}
	return "codecs: invalid submission: " + strings.Join(parts, "; ")
}

func (e *FieldErrors) add(path, format string, a ...any) {
	*e = append(*e, FieldError{Path: path, Reason: fmt.Sprintf(format, a...)})
}

func (e FieldErrors) err() error {
	if len(e) == 0 {
		return nil
	}
	return e
}
