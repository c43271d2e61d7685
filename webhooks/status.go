package webhooks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Reasons an alert is dead-lettered for a subscriber.
const (
	ReasonAttempts  = "attempts exhausted"
	ReasonQueueFull = "queue full"
	ReasonPaused    = "paused"
	ReasonOwner     = "owner key not valid"
)

// Status is a subscription's delivery record, shared by every process.
type Status struct {
	ID             string    `json:"id"`
	Delivered      int64     `json:"delivered"`
	FailedAttempts int64     `json:"failed_attempts"`
	DeadLettered   int64     `json:"dead_lettered"`
	LastSuccessAt  time.Time `json:"last_success_at,omitzero"`
	LastFailureAt  time.Time `json:"last_failure_at,omitzero"`
	LastError      string    `json:"last_error,omitempty"` // of the last failed attempt
}

// DeadLetter is an alert given up on for one subscriber.
type DeadLetter struct {
	AlertID string `json:"alert_id"`
	Reason  string `json:"reason"` // one of the Reason constants
	// LastStatus is the HTTP status of the last attempt; 0 when there was
	// no answer or no attempt.
	LastStatus int       `json:"last_status,omitempty"`
	LastError  string    `json:"last_error,omitempty"`
	Attempts   int       `json:"attempts"`
	At         time.Time `json:"at"`
}

// Hash fields of webhook:status:{id}.
const (
	fDelivered   = "delivered"
	fFailed      = "failed_attempts"
	fDead        = "dead_lettered"
	fLastSuccess = "last_success_at"
	fLastFailure = "last_failure_at"
	fLastError   = "last_error"
)

// Status returns a subscription's counters and last outcomes.
func (s *Store) Status(ctx context.Context, id string) (Status, error) {
	if !idPattern.MatchString(id) {
		return Status{}, fmt.Errorf("%w: %q is not a subscription id", ErrNotFound, id)
	}
	pipe := s.rdb.Pipeline()
	exists := pipe.Exists(ctx, s.subKey(id))
	fields := pipe.HGetAll(ctx, s.statusKey(id))
	if _, err := pipe.Exec(ctx); err != nil {
		return Status{}, fmt.Errorf("webhooks: status %s: %w", id, err)
	}
	if exists.Val() == 0 {
		return Status{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	f := fields.Val()
	st := Status{ID: id, LastError: f[fLastError]}
	st.Delivered, _ = strconv.ParseInt(f[fDelivered], 10, 64)
	st.FailedAttempts, _ = strconv.ParseInt(f[fFailed], 10, 64)
	st.DeadLettered, _ = strconv.ParseInt(f[fDead], 10, 64)
	st.LastSuccessAt, _ = time.Parse(time.RFC3339Nano, f[fLastSuccess])
	st.LastFailureAt, _ = time.Parse(time.RFC3339Nano, f[fLastFailure])
	return st, nil
}

// DeadLetters returns up to limit of a subscription's dead letters, newest
// first.
func (s *Store) DeadLetters(ctx context.Context, id string, limit int) ([]DeadLetter, error) {
	if limit <= 0 {
		return nil, nil
	}
	raw, err := s.rdb.LRange(ctx, s.deadKey(id), 0, int64(limit)-1).Result()
	if err != nil {
		return nil, fmt.Errorf("webhooks: dead letters %s: %w", id, err)
	}
	out := make([]DeadLetter, 0, len(raw))
	for _, r := range raw {
		var dl DeadLetter
		if err := json.Unmarshal([]byte(r), &dl); err != nil {
			return nil, fmt.Errorf("webhooks: dead letters %s: %w", id, err)
		}
		out = append(out, dl)
	}
	return out, nil
}

// recordDelivered counts a success and keeps the subscription alive.
func (s *Store) recordDelivered(ctx context.Context, id string, at time.Time) error {
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HIncrBy(ctx, s.statusKey(id), fDelivered, 1)
		p.HSet(ctx, s.statusKey(id), fLastSuccess, at.UTC().Format(time.RFC3339Nano))
		p.Expire(ctx, s.statusKey(id), s.StatusTTL)
		// Refresh only what exists: a subscription deleted meanwhile stays deleted.
		p.Expire(ctx, s.subKey(id), s.SubscriptionTTL)
		p.Expire(ctx, s.indexKey(), s.SubscriptionTTL)
		return nil
	})
	return wrapRecord(err, id)
}

// recordFailure counts one failed attempt.
func (s *Store) recordFailure(ctx context.Context, id string, at time.Time, msg string) error {
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HIncrBy(ctx, s.statusKey(id), fFailed, 1)
		p.HSet(ctx, s.statusKey(id), fLastFailure, at.UTC().Format(time.RFC3339Nano), fLastError, msg)
		p.Expire(ctx, s.statusKey(id), s.StatusTTL)
		return nil
	})
	return wrapRecord(err, id)
}

// recordDeadLetter counts a dead letter and keeps it in the capped list.
func (s *Store) recordDeadLetter(ctx context.Context, id string, dl DeadLetter) error {
	b, err := json.Marshal(dl)
	if err != nil {
		return wrapRecord(err, id)
	}
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HIncrBy(ctx, s.statusKey(id), fDead, 1)
		p.Expire(ctx, s.statusKey(id), s.StatusTTL)
		p.LPush(ctx, s.deadKey(id), b)
		p.LTrim(ctx, s.deadKey(id), 0, s.DeadLetterCap-1)
		p.Expire(ctx, s.deadKey(id), s.StatusTTL)
		return nil
	})
	return wrapRecord(err, id)
}

func wrapRecord(err error, id string) error {
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("webhooks: record status of %s: %w", id, err)
	}
	return nil
}
