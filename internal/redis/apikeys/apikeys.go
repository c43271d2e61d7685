// Package apikeys stores the gateway's API keys in Redis and authenticates
// requests with them.
//
// A key is shown once, at creation: "epk_<id>_<secret>". Redis keeps only the
// SHA-256 of the secret (the secret is 32 random bytes, so a fast hash is
// enough; a slow password hash would protect nothing more), the studies the
// key may act for and its roles. Revocation is a field on the record, so it
// takes effect on every gateway within CacheFor without a restart.
//
// Records live at {prefix}apikey:{id} with a TTL equal to the key's lifetime
// plus a week, so expired keys still show in `apikey list` for a while and
// then go away by themselves.
package apikeys

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Roles a key may hold.
const (
	// RoleSubmit may post submissions for the key's studies.
	RoleSubmit = "submit"
	// RoleOperate may adjust plans and acknowledge alerts for the key's studies.
	RoleOperate = "operate"
	// RoleRead may read the key's studies on the read side (subject views,
	// site dashboards, the alert stream).
	RoleRead = "read"
	// AllStudies in a key's studies lets it act for every study.
	AllStudies = "*"
)

// AuthError is an authentication failure. Public is the message a client
// is shown; it names no other key and no study.
type AuthError struct{ public string }

func (e *AuthError) Error() string { return "apikeys: " + e.public }

// Public returns the message for the client.
func (e *AuthError) Public() string { return e.public }

// Authentication failures: each is a 401 for the client that sent the key.
var (
	ErrMalformed = &AuthError{"malformed API key (want epk_<id>_<secret>)"}
	ErrUnknown   = &AuthError{"unknown API key"}
	ErrRevoked   = &AuthError{"API key revoked"}
	ErrExpired   = &AuthError{"API key expired"}
)

// ErrUnavailable: Redis cannot be reached and this key was not seen recently
// (a 503: the key may be good).
var ErrUnavailable = errors.New("apikeys: key store unavailable")

// Key is one API key as stored (without its secret).
type Key struct {
	ID         string    `json:"id"`
	Name       string    `json:"name"`
	Hash       string    `json:"hash"` // hex SHA-256 of the secret
	Studies    []string  `json:"studies"`
	Roles      []string  `json:"roles"`
	RatePerSec int       `json:"rate_per_sec,omitempty"` // 0: the gateway's default
	CreatedAt  time.Time `json:"created_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	RevokedAt  time.Time `json:"revoked_at,omitzero"`
}

// MayActFor reports whether the key covers study.
func (k Key) MayActFor(study string) bool {
	return slices.Contains(k.Studies, AllStudies) || slices.Contains(k.Studies, study)
}

// Has reports whether the key holds role.
func (k Key) Has(role string) bool { return slices.Contains(k.Roles, role) }

// Spec is what `apikey create` asks for.
type Spec struct {
	Name       string
	Studies    []string
	Roles      []string
	RatePerSec int
	Lifetime   time.Duration
}

var (
	idPattern    = regexp.MustCompile(`^[a-z0-9]{12}$`)
	studyPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)
)

// Validate says everything that is wrong with s.
func (s Spec) Validate() error {
	var errs []error
	if strings.TrimSpace(s.Name) == "" || len(s.Name) > 200 {
		errs = append(errs, errors.New("name: 1 to 200 characters"))
	}
	if len(s.Studies) == 0 {
		errs = append(errs, errors.New("studies: at least one study, or * for all"))
	}
	for _, st := range s.Studies {
		if st != AllStudies && !studyPattern.MatchString(st) {
			errs = append(errs, fmt.Errorf("studies: %q is not a study id", st))
		}
	}
	if len(s.Roles) == 0 {
		errs = append(errs, fmt.Errorf("roles: at least one of %s, %s, %s", RoleSubmit, RoleOperate, RoleRead))
	}
	for _, r := range s.Roles {
		if r != RoleSubmit && r != RoleOperate && r != RoleRead {
			errs = append(errs, fmt.Errorf("roles: %q is not %s, %s or %s", r, RoleSubmit, RoleOperate, RoleRead))
		}
	}
	if s.RatePerSec < 0 {
		errs = append(errs, errors.New("rate: must not be negative"))
	}
	if s.Lifetime <= 0 || s.Lifetime > 5*365*24*time.Hour {
		errs = append(errs, errors.New("lifetime: must be in (0, 5 years]"))
	}
	if len(errs) > 0 {
		return fmt.Errorf("apikeys: %w", errors.Join(errs...))
	}
	return nil
}

// Store reads and writes API keys. Safe for concurrent use.
type Store struct {
	rdb      redis.Cmdable
	prefix   string
	cacheFor time.Duration
	staleFor time.Duration
	now      func() time.Time

	mu    sync.Mutex
	cache map[string]cached
}

type cached struct {
	key     Key
	fetched time.Time
}

// StoreConfig tunes a Store.
type StoreConfig struct {
	Prefix string // eprostream:{env}:
	// CacheFor is how long a looked-up key is trusted without asking Redis
	// again: the delay before a revocation takes effect. Default 2 s;
	// NoCache asks Redis at every lookup.
	CacheFor time.Duration
	NoCache  bool
	// StaleFor is how long a cached key is still trusted while Redis cannot
	// be reached, so ingest goes on through a Redis outage. Default 15 min.
	StaleFor time.Duration
}

// NewStore returns a store of keys under prefix ("eprostream:{env}:"),
// with the default cache.
func NewStore(rdb redis.Cmdable, prefix string) *Store {
	return NewStoreWith(StoreConfig{Prefix: prefix}, rdb)
}

// NewStoreWith returns a store configured by cfg.
func NewStoreWith(cfg StoreConfig, rdb redis.Cmdable) *Store {
	if cfg.CacheFor <= 0 {
		cfg.CacheFor = 2 * time.Second
	}
	if cfg.NoCache {
		cfg.CacheFor = 0
	}
	if cfg.StaleFor <= 0 {
		cfg.StaleFor = 15 * time.Minute
	}
	return &Store{rdb: rdb, prefix: cfg.Prefix, cacheFor: cfg.CacheFor, staleFor: cfg.StaleFor,
		now: time.Now, cache: map[string]cached{}}
}

// CacheFor is how long a revocation may take to reach this store's callers.
func (s *Store) CacheFor() time.Duration { return s.cacheFor }

func (s *Store) redisKey(id string) string { return s.prefix + "apikey:" + id }

// Create stores a new key and returns it with its token, which is shown
// only now.
func (s *Store) Create(ctx context.Context, spec Spec) (Key, string, error) {
	if err := spec.Validate(); err != nil {
		return Key{}, "", err
	}
	id, secret := hex.EncodeToString(randomBytes(6)), base64.RawURLEncoding.EncodeToString(randomBytes(32))
	now := s.now().UTC().Truncate(time.Second)
	k := Key{ID: id, Name: spec.Name, Hash: hashSecret(secret), Studies: spec.Studies, Roles: spec.Roles,
		RatePerSec: spec.RatePerSec, CreatedAt: now, ExpiresAt: now.Add(spec.Lifetime)}
	b, _ := json.Marshal(k)
	ok, err := s.rdb.SetNX(ctx, s.redisKey(id), b, spec.Lifetime+7*24*time.Hour).Result()
	if err != nil {
		return Key{}, "", fmt.Errorf("apikeys: create: %w", err)
	}
	if !ok {
		return Key{}, "", errors.New("apikeys: create: id collision, try again")
	}
	return k, "epk_" + id + "_" + secret, nil
}

// Revoke marks the key revoked; gateways stop accepting it within CacheFor.
func (s *Store) Revoke(ctx context.Context, id string) (Key, error) {
	k, err := s.fetch(ctx, id)
	if err != nil {
		return Key{}, err
	}
	if k.RevokedAt.IsZero() {
		k.RevokedAt = s.now().UTC().Truncate(time.Second)
	}
	b, _ := json.Marshal(k)
	if err := s.rdb.Set(ctx, s.redisKey(id), b, redis.KeepTTL).Err(); err != nil {
		return Key{}, fmt.Errorf("apikeys: revoke %s: %w", id, err)
	}
	return k, nil
}

// List returns every stored key, newest first.
func (s *Store) List(ctx context.Context) ([]Key, error) {
	var keys []Key
	iter := s.rdb.Scan(ctx, 0, s.prefix+"apikey:*", 500).Iterator()
	for iter.Next(ctx) {
		k, err := s.fetch(ctx, strings.TrimPrefix(iter.Val(), s.prefix+"apikey:"))
		if errors.Is(err, ErrUnknown) {
			continue // expired between SCAN and GET
		}
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	if err := iter.Err(); err != nil {
		return nil, fmt.Errorf("apikeys: list: %w", err)
	}
	slices.SortFunc(keys, func(a, b Key) int { return b.CreatedAt.Compare(a.CreatedAt) })
	return keys, nil
}

func (s *Store) fetch(ctx context.Context, id string) (Key, error) {
	b, err := s.rdb.Get(ctx, s.redisKey(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return Key{}, ErrUnknown
	}
	if err != nil {
		return Key{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	var k Key
	if err := json.Unmarshal(b, &k); err != nil {
		return Key{}, fmt.Errorf("apikeys: record %s: %w", id, err)
	}
	return k, nil
}

// Authenticate returns the key a token belongs to. It asks Redis at most
// once per CacheFor per key, and trusts its last answer for StaleFor when
// Redis cannot be reached.
func (s *Store) Authenticate(ctx context.Context, token string) (Key, error) {
	id, secret, ok := parseToken(token)
	if !ok {
		return Key{}, ErrMalformed
	}
	k, err := s.lookup(ctx, id)
	if err != nil {
		return Key{}, err
	}
	if subtle.ConstantTimeCompare([]byte(hashSecret(secret)), []byte(k.Hash)) != 1 {
		return Key{}, ErrUnknown
	}
	if err := s.usable(k); err != nil {
		return Key{}, err
	}
	return k, nil
}

// Current returns the key with id as it is now (through the same cache as
// Authenticate): ErrRevoked, ErrExpired or ErrUnknown when it no longer
// authenticates. A webhook delivery checks its subscription's owner so.
func (s *Store) Current(ctx context.Context, id string) (Key, error) {
	if !idPattern.MatchString(id) {
		return Key{}, ErrUnknown
	}
	k, err := s.lookup(ctx, id)
	if err != nil {
		return Key{}, err
	}
	if err := s.usable(k); err != nil {
		return Key{}, err
	}
	return k, nil
}

func (s *Store) usable(k Key) error {
	if !k.RevokedAt.IsZero() {
		return ErrRevoked
	}
	if !s.now().Before(k.ExpiresAt) {
		return ErrExpired
	}
	return nil
}

// lookup returns the stored key with id, asking Redis at most once per
// CacheFor and trusting its last answer for StaleFor while Redis is down.
func (s *Store) lookup(ctx context.Context, id string) (Key, error) {
	now := s.now()
	s.mu.Lock()
	c, hit := s.cache[id]
	s.mu.Unlock()
	if !hit || now.Sub(c.fetched) > s.cacheFor {
		k, err := s.fetch(ctx, id)
		switch {
		case err == nil:
			c = cached{key: k, fetched: now}
			s.mu.Lock()
			s.cache[id] = c
			s.mu.Unlock()
		case errors.Is(err, ErrUnavailable) && hit && now.Sub(c.fetched) <= s.staleFor:
			// Redis is down: go on with what we knew.
		case errors.Is(err, ErrUnknown):
			s.mu.Lock()
			delete(s.cache, id)
			s.mu.Unlock()
			return Key{}, ErrUnknown
		default:
			return Key{}, err
		}
	}
	return c.key, nil
}

func parseToken(token string) (id, secret string, ok bool) {
	rest, ok := strings.CutPrefix(token, "epk_")
	if !ok {
		return "", "", false
	}
	id, secret, ok = strings.Cut(rest, "_")
	if !ok || !idPattern.MatchString(id) || len(secret) < 32 || len(secret) > 64 {
		return "", "", false
	}
	return id, secret, true
}

func hashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return b
}
