package subject

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/bsm/redislock"
	"github.com/lovoo/goka"

	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/rules"
)

// CommandSender sends a command to epro-commands; emitters.CommandEmitter is one.
type CommandSender interface {
	Emit(ctx context.Context, c codecs.Command) error
}

// Scheduler drives the time-driven rules: see the package documentation.
type Scheduler struct {
	View     *goka.View // of subject-table, with StateCodec
	Sender   CommandSender
	Locker   *redislock.Client
	LockKey  string // e.g. eprostream:{env}:lock:subject-schedule
	Interval time.Duration
	Rules    *rules.Registry
	Log      *slog.Logger
	Now      func() time.Time // time.Now when nil
}

// Run runs the view and sweeps every Interval until ctx ends.
func (s *Scheduler) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.View.Run(ctx) }()
	tick := time.NewTicker(s.Interval)
	defer tick.Stop()
	for {
		select {
		case err := <-errc:
			if err != nil {
				return fmt.Errorf("subject: schedule view: %w", err)
			}
			return nil
		case <-tick.C:
			if !s.View.Recovered() {
				continue
			}
			n, err := s.Sweep(ctx)
			if err != nil {
				s.Log.Warn("schedule sweep failed; next interval retries", "err", err)
			} else if n > 0 {
				s.Log.Info("schedule sweep", "checks_sent", n)
			}
		}
	}
}

// Sweep sends a check_schedule command for every silent subject, if this
// instance obtains the lock; it returns how many it sent.
func (s *Scheduler) Sweep(ctx context.Context) (int, error) {
	lock, err := s.Locker.Obtain(ctx, s.LockKey, s.Interval, nil)
	if errors.Is(err, redislock.ErrNotObtained) {
		return 0, nil // another instance sweeps this interval
	}
	if err != nil {
		return 0, fmt.Errorf("subject: schedule lock: %w", err)
	}
	// The lock is kept until it expires at the end of the interval: one sweep
	// per interval across all instances. It is released early only on failure,
	// so another instance can retry.
	release := func() { _ = lock.Release(context.WithoutCancel(ctx)) }
	now := time.Now().UTC()
	if s.Now != nil {
		now = s.Now().UTC()
	}
	slot := now.Truncate(s.Interval).Unix()
	it, err := s.View.Iterator()
	if err != nil {
		release()
		return 0, fmt.Errorf("subject: schedule iterate: %w", err)
	}
	defer it.Release()
	sent := 0
	for it.Next() {
		v, err := it.Value()
		st, ok := v.(codecs.SubjectState)
		if err != nil || !ok || st.LastAt == 0 {
			continue
		}
		limit := s.Rules.For(st.StudyID).SilenceLimit()
		if limit == 0 || now.Sub(codecs.Unix(st.LastAt)) <= limit {
			continue
		}
		cmd := codecs.Command{
			CommandID: fmt.Sprintf("schedule:%d", slot), Kind: codecs.CommandCheckSchedule,
			StudyID: st.StudyID, SubjectID: it.Key(), At: now, By: "scheduler",
		}
		if err := s.Sender.Emit(ctx, cmd); err != nil {
			release()
			return sent, fmt.Errorf("subject: schedule emit: %w", err)
		}
		sent++
	}
	return sent, it.Err()
}
