// Package views serves the read side: typed goka views over the group
// tables, for the query API and dashboards.
package views

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/lovoo/goka"

	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/internal/config"
	"github.com/eprostream/eprostream/internal/kafka/kafkaconfig"
	"github.com/eprostream/eprostream/internal/kafka/topics"
	"github.com/eprostream/eprostream/processors/subject"
)

// ErrBadID is wrapped when a subject id is malformed.
var ErrBadID = errors.New("views: malformed subject id")

// Subjects is a read-only, local, eventually consistent copy of
// subject-table: it follows the table topic, so a state is visible here
// shortly after the subject group wrote it (Kafka's end-to-end latency).
type Subjects struct {
	view *goka.View
}

// NewSubjects returns a view of the subject table of cfg's environment,
// keeping its local copy under stateDir. Call Run to fill and follow it.
func NewSubjects(cfg config.Config, stateDir string, log *slog.Logger, opts ...goka.ViewOption) (*Subjects, error) {
	all := append(kafkaconfig.ViewOptions(cfg.Kafka(), "eprostream-views", stateDir, log), opts...)
	v, err := goka.NewView(cfg.KafkaBrokers, goka.Table(topics.NewNames(cfg.TopicPrefix).SubjectTable), subject.StateCodec{}, all...)
	if err != nil {
		return nil, fmt.Errorf("views: %w", err)
	}
	return &Subjects{view: v}, nil
}

// Run loads the table and follows it until ctx ends.
func (s *Subjects) Run(ctx context.Context) error {
	if err := s.view.Run(ctx); err != nil {
		return fmt.Errorf("views: subjects: %w", err)
	}
	return nil
}

// Recovered reports whether the view has loaded the table once.
func (s *Subjects) Recovered() bool { return s.view.Recovered() }

// Get returns a subject's state; false when the subject is unknown.
func (s *Subjects) Get(id string) (codecs.SubjectState, bool, error) {
	if err := codecs.CheckID(id); err != nil {
		return codecs.SubjectState{}, false, fmt.Errorf("%w: %v", ErrBadID, err)
	}
	v, err := s.view.Get(id)
	if err != nil {
		return codecs.SubjectState{}, false, fmt.Errorf("views: get %s: %w", id, err)
	}
	if u, bad := v.(codecs.UndecodableState); bad {
		return codecs.SubjectState{}, false, fmt.Errorf("views: get %s: %w", id, u)
	}
	st, ok := v.(codecs.SubjectState)
	return st, ok, nil
}
