// Package idempotency keeps the first outcome of a request in Redis so that
// retries get the same answer without doing the work twice.
//
// A request claims its key with SET NX GET (one round trip): the winner does
// the work; later requests either replay the stored outcome or, while the
// winner is still working, wait for it (up to Wait) and then get
// ErrInProgress. The key is marked done only after the work succeeded
// (Complete); when the work fails the claim is dropped (Abort) so a retry
// can do it. Marking before the work would lose the message when the worker
// fails after marking.
//
// A claim whose owner died expires after Pending; the next retry then does
// the work again, which is why downstream consumers also deduplicate by
// message_id. Outcomes are kept for Keep (24 h).
package idempotency

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

var (
	// ErrInProgress: another request with this key is still being worked on.
	ErrInProgress = errors.New("idempotency: a request with this key is in progress")
	// ErrMismatch: the key was first used for a different request.
	ErrMismatch = errors.New("idempotency: key already used for a different request")
)

// Outcome is what the first request answered.
type Outcome struct {
	Status int
	Body   []byte
}

// Claim is the result of Begin: either Owned (do the work, then Complete or
// Abort), or a Replay of the stored outcome.
type Claim struct {
	key    string
	value  string // our pending value, when Owned
	Owned  bool
	Replay *Outcome
}

// Store is safe for concurrent use.
type Store struct {
	rdb    redis.UniversalClient
	prefix string
	// Pending bounds how long a claim blocks retries if its owner dies.
	Pending time.Duration
	// Keep is how long outcomes are replayed.
	Keep time.Duration
	// Wait is how long a duplicate waits for the owner before ErrInProgress.
	Wait time.Duration
	Poll time.Duration
}

// New returns a store whose keys are prefix+"idem:"+key.
func New(rdb redis.UniversalClient, prefix string) *Store {
	return &Store{rdb: rdb, prefix: prefix + "idem:", Pending: 30 * time.Second, Keep: 24 * time.Hour,
		Wait: 5 * time.Second, Poll: 10 * time.Millisecond}
}

// Begin claims key for a request whose content hashes to fingerprint.
func (s *Store) Begin(ctx context.Context, key, fingerprint string) (Claim, error) {
	c := s.newClaim(key, fingerprint)
	deadline := time.Now().Add(s.Wait)
	for {
		old, err := s.rdb.SetArgs(ctx, c.key, c.value, redis.SetArgs{Mode: "NX", Get: true, TTL: s.Pending}).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return Claim{}, fmt.Errorf("idempotency: claim: %w", err)
		}
		got, err := settle(c, old, errors.Is(err, redis.Nil), fingerprint)
		if !errors.Is(err, ErrInProgress) || time.Now().After(deadline) {
			return got, err
		}
		select {
		case <-ctx.Done():
			return Claim{}, ctx.Err()
		case <-time.After(s.Poll):
		}
	}
}

// BeginMany claims many keys in one round trip. A key another request is
// working on gets ErrInProgress at once, without waiting.
func (s *Store) BeginMany(ctx context.Context, keys, fingerprints []string) ([]Claim, []error, error) {
	claims := make([]Claim, len(keys))
	cmds := make([]*redis.StatusCmd, len(keys))
	pipe := s.rdb.Pipeline()
	for i, k := range keys {
		claims[i] = s.newClaim(k, fingerprints[i])
		cmds[i] = pipe.SetArgs(ctx, claims[i].key, claims[i].value, redis.SetArgs{Mode: "NX", Get: true, TTL: s.Pending})
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, nil, fmt.Errorf("idempotency: claim: %w", err)
	}
	errs := make([]error, len(keys))
	for i, cmd := range cmds {
		old, err := cmd.Result()
		claims[i], errs[i] = settle(claims[i], old, errors.Is(err, redis.Nil), fingerprints[i])
	}
	return claims, errs, nil
}

func (s *Store) newClaim(key, fingerprint string) Claim {
	return Claim{key: s.prefix + key, value: "p:" + fingerprint + ":" + randomOwner()}
}

// settle reads what SET NX GET returned: nothing (we own the key), a
// pending claim or a done outcome.
func settle(c Claim, old string, free bool, fingerprint string) (Claim, error) {
	if free {
		c.Owned = true
		return c, nil
	}
	state, rest, _ := strings.Cut(old, ":")
	fp, rest, _ := strings.Cut(rest, ":")
	if fp != fingerprint {
		return Claim{}, ErrMismatch
	}
	if state != "d" {
		return Claim{}, ErrInProgress
	}
	code, body, _ := strings.Cut(rest, ":")
	status, _ := strconv.Atoi(code)
	return Claim{Replay: &Outcome{Status: status, Body: []byte(body)}}, nil
}

// abort drops the claim if it is still ours.
const abortSrc = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`

var abort = redis.NewScript(abortSrc)

func (s *Store) doneValue(c Claim, out Outcome) string {
	fp, _, _ := strings.Cut(strings.TrimPrefix(c.value, "p:"), ":")
	return "d:" + fp + ":" + strconv.Itoa(out.Status) + ":" + string(out.Body)
}

// Complete marks an owned claim done with out. Call it only after the work
// succeeded.
//
// It is a plain SET, not a compare-and-set: the only claim it can
// overwrite is one taken after ours expired (a stall over Pending), by a
// request with the same key, whose work is then already done by ours; the
// stored outcome is the same either way. Abort, which deletes, does check.
func (s *Store) Complete(ctx context.Context, c Claim, out Outcome) error {
	return s.CompleteMany(ctx, []Claim{c}, []Outcome{out})
}

// CompleteMany marks owned claims done in one round trip; outs[i] belongs
// to claims[i], and claims that are not Owned are skipped.
func (s *Store) CompleteMany(ctx context.Context, claims []Claim, outs []Outcome) error {
	pipe := s.rdb.Pipeline()
	for i, c := range claims {
		if c.Owned {
			pipe.Set(ctx, c.key, s.doneValue(c, outs[i]), s.Keep)
		}
	}
	if pipe.Len() == 0 {
		return nil
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("idempotency: complete: %w", err)
	}
	return nil
}

// Abort drops an owned claim so that a retry does the work.
func (s *Store) Abort(ctx context.Context, c Claim) error {
	if !c.Owned {
		return nil
	}
	if err := abort.Run(ctx, s.rdb, []string{c.key}, c.value).Err(); err != nil {
		return fmt.Errorf("idempotency: abort: %w", err)
	}
	return nil
}

// AbortMany drops owned claims in one round trip.
func (s *Store) AbortMany(ctx context.Context, claims []Claim) error {
	pipe := s.rdb.Pipeline()
	n := 0
	for _, c := range claims {
		if c.Owned {
			pipe.Eval(ctx, abortSrc, []string{c.key}, c.value)
			n++
		}
	}
	if n == 0 {
		return nil
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("idempotency: abort: %w", err)
	}
	return nil
}

func randomOwner() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
