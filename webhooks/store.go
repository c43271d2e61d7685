package webhooks

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrNotFound: no subscription has this id (or it expired).
var ErrNotFound = errors.New("webhooks: subscription not found")

// Store reads and writes subscriptions, their status and dead letters.
// Safe for concurrent use; any process with a Store sees the same data.
type Store struct {
	rdb    redis.UniversalClient
	prefix string
	// SubscriptionTTL: a subscription neither updated nor delivered to for
	// this long expires (default 365 days).
	SubscriptionTTL time.Duration
	// StatusTTL: status and dead letters expire this long after their last
	// write (default 7 days).
	StatusTTL time.Duration
	// DeadLetterCap bounds the dead letters kept per subscription, newest
	// kept (default 1000).
	DeadLetterCap int64
	// RequireHTTPS refuses http:// URLs at Create; set it in production,
	// where alerts must not cross networks in clear.
	RequireHTTPS bool
	now          func() time.Time
}

// NewStore returns a store whose keys live under prefix ("eprostream:{env}:").
func NewStore(rdb redis.UniversalClient, prefix string) *Store {
	return &Store{rdb: rdb, prefix: prefix, SubscriptionTTL: 365 * 24 * time.Hour,
		StatusTTL: 7 * 24 * time.Hour, DeadLetterCap: 1000, now: time.Now}
}

func (s *Store) indexKey() string           { return s.prefix + "webhook:subs" }
func (s *Store) subKey(id string) string    { return s.prefix + "webhook:sub:" + id }
func (s *Store) statusKey(id string) string { return s.prefix + "webhook:status:" + id }
func (s *Store) deadKey(id string) string   { return s.prefix + "webhook:dead:" + id }

// Create stores a new subscription and returns it with its signing secret,
// which is shown only now.
func (s *Store) Create(ctx context.Context, spec Spec) (Subscription, string, error) {
	if err := spec.Validate(); err != nil {
		return Subscription{}, "", err
	}
	if s.RequireHTTPS && !strings.HasPrefix(spec.URL, "https://") {
		return Subscription{}, "", fmt.Errorf("%w: url: must be https:// here", ErrInvalid)
	}
	spec = spec.normalised()
	now := s.now().UTC().Truncate(time.Second)
	rec := record{Subscription: Subscription{ID: hex.EncodeToString(randomBytes(6)), Name: spec.Name,
		URL: spec.URL, Studies: spec.Studies, Sites: spec.Sites, MinSeverity: spec.MinSeverity,
		CreatedAt: now, UpdatedAt: now, Owner: spec.Owner},
		Secret: "whsec_" + base64.RawURLEncoding.EncodeToString(randomBytes(32))}
	if err := s.write(ctx, rec, "NX"); err != nil {
		return Subscription{}, "", fmt.Errorf("webhooks: create: %w", err)
	}
	return rec.Subscription, rec.Secret, nil
}

// SetPaused pauses or resumes a subscription.
func (s *Store) SetPaused(ctx context.Context, id string, paused bool) (Subscription, error) {
	rec, err := s.load(ctx, id)
	if err != nil {
		return Subscription{}, err
	}
	rec.Paused = paused
	rec.UpdatedAt = s.now().UTC().Truncate(time.Second)
	if err := s.write(ctx, rec, "XX"); err != nil {
		return Subscription{}, fmt.Errorf("webhooks: pause %s: %w", id, err)
	}
	return rec.Subscription, nil
}

// write stores rec with a fresh TTL; mode NX creates, XX updates. A key
// that was (not) there already is ErrNotFound for XX, a collision for NX.
func (s *Store) write(ctx context.Context, rec record, mode string) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	pipe := s.rdb.TxPipeline()
	set := pipe.SetArgs(ctx, s.subKey(rec.ID), b, redis.SetArgs{Mode: mode, TTL: s.SubscriptionTTL})
	pipe.SAdd(ctx, s.indexKey(), rec.ID)
	pipe.Expire(ctx, s.indexKey(), s.SubscriptionTTL)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return err
	}
	switch {
	case !errors.Is(set.Err(), redis.Nil):
		return set.Err()
	case mode == "XX":
		return ErrNotFound // deleted meanwhile; the index entry is cleaned up by List
	default:
		return errors.New("id collision, try again")
	}
}

// Get returns one subscription.
func (s *Store) Get(ctx context.Context, id string) (Subscription, error) {
	rec, err := s.load(ctx, id)
	return rec.Subscription, err
}

func (s *Store) load(ctx context.Context, id string) (record, error) {
	if !idPattern.MatchString(id) {
		return record{}, fmt.Errorf("%w: %q is not a subscription id", ErrNotFound, id)
	}
	b, err := s.rdb.Get(ctx, s.subKey(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return record{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return record{}, fmt.Errorf("webhooks: get %s: %w", id, err)
	}
	return decodeRecord(id, b)
}

func decodeRecord(id string, b []byte) (record, error) {
	var rec record
	if err := json.Unmarshal(b, &rec); err != nil {
		return record{}, fmt.Errorf("webhooks: subscription %s: %w", id, err)
	}
	return rec, nil
}

// List returns every subscription, oldest first.
func (s *Store) List(ctx context.Context) ([]Subscription, error) {
	recs, err := s.loadAll(ctx)
	if err != nil {
		return nil, err
	}
	subs := make([]Subscription, len(recs))
	for i, r := range recs {
		subs[i] = r.Subscription
	}
	return subs, nil
}

// loadAll reads every subscription in two round trips, dropping index
// entries whose subscription expired or was deleted.
func (s *Store) loadAll(ctx context.Context) ([]record, error) {
	ids, err := s.rdb.SMembers(ctx, s.indexKey()).Result()
	if err != nil {
		return nil, fmt.Errorf("webhooks: list: %w", err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = s.subKey(id)
	}
	vals, err := s.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, fmt.Errorf("webhooks: list: %w", err)
	}
	var recs []record
	var gone []any
	for i, v := range vals {
		str, ok := v.(string)
		if !ok {
			gone = append(gone, ids[i])
			continue
		}
		rec, err := decodeRecord(ids[i], []byte(str))
		if err != nil {
			return nil, err
		}
		recs = append(recs, rec)
	}
	if len(gone) > 0 {
		_ = s.rdb.SRem(ctx, s.indexKey(), gone...).Err() // best effort; retried on the next List
	}
	slices.SortFunc(recs, func(a, b record) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
	})
	return recs, nil
}

// Delete removes a subscription with its status and dead letters. A
// Deliverer stops delivering to it at its next refresh.
func (s *Store) Delete(ctx context.Context, id string) error {
	if !idPattern.MatchString(id) {
		return fmt.Errorf("%w: %q is not a subscription id", ErrNotFound, id)
	}
	pipe := s.rdb.TxPipeline()
	del := pipe.Del(ctx, s.subKey(id))
	pipe.Del(ctx, s.statusKey(id), s.deadKey(id))
	pipe.SRem(ctx, s.indexKey(), id)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("webhooks: delete %s: %w", id, err)
	}
	if del.Val() == 0 {
		return fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return nil
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return b
}
