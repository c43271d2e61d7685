// Package logging holds the one rule every component follows for its
// logger: nil means discard, never an error and never a panic.
package logging

import "log/slog"

// OrDiscard returns log, or a logger that discards everything when log is nil.
func OrDiscard(log *slog.Logger) *slog.Logger {
	if log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return log
}
