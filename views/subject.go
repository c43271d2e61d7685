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
	"github.com/eprostream/eprostream/internal/kafka/kafkaconfig"
	"github.com/eprostream/eprostream/internal/logging"
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

// SubjectsConfig says which table the view follows and where it keeps it.
type SubjectsConfig struct {
	Table    string // subject-table with its prefix (topics.Names.SubjectTable); required
	StateDir string // the local copy; required
}

// SubjectsDeps are the view's connections.
type SubjectsDeps struct {
	Kafka   kafkaconfig.Conn
	Log     *slog.Logger      // nil discards
	Options []goka.ViewOption // tests: goka's tester
}

// NewSubjects returns a view of cfg.Table. Call Run to fill and follow it.
func NewSubjects(cfg SubjectsConfig, deps SubjectsDeps) (*Subjects, error) {
	if cfg.Table == "" || cfg.StateDir == "" {
		return nil, errors.New("views: SubjectsConfig.Table and StateDir are required")
	}
	all := append(kafkaconfig.ViewOptions(deps.Kafka, "eprostream-views", cfg.StateDir, logging.OrDiscard(deps.Log)), deps.Options...)
	v, err := goka.NewView(deps.Kafka.Brokers, goka.Table(cfg.Table), subject.StateCodec{}, all...)
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
