package hotcache

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/bsm/redislock"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/singleflight"
)

var (
	// ErrBadKey: the key failed Config.Valid; neither Redis nor the store
	// was asked. The validator's error is wrapped too.
	ErrBadKey = errors.New("hotcache: invalid key")
	// ErrNotFound is what a loader returns (or wraps) when the store has no
	// such key; Get returns it for as long as the "not found" is cached.
	ErrNotFound = errors.New("hotcache: not found")
)

// Loader queries the backing store for one key. It returns ErrNotFound
// (possibly wrapped) when the store has no such key.
type Loader[T any] func(ctx context.Context) (T, error)

// Cache is safe for concurrent use.
type Cache[T any] struct {
	rdb     redis.UniversalClient
	locks   *redislock.Client
	keys    string // prefix + "hot:" + name + ":"
	cfg     Config[T]
	flights singleflight.Group
	n       counters
	down    atomic.Bool // Redis failed last time: log the change only
}

// New returns a cache whose keys are prefix+"hot:"+cfg.Name+":val:"+key and
// prefix+"hot:"+cfg.Name+":lock:"+key; prefix is "eprostream:{env}:".
// Use a client with short timeouts (connect.RedisFailFast) on request paths.
func New[T any](rdb redis.UniversalClient, prefix string, cfg Config[T]) (*Cache[T], error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if rdb == nil || prefix == "" {
		return nil, fmt.Errorf("hotcache: %s: a Redis client and a key prefix are required", cfg.Name)
	}
	c := &Cache[T]{rdb: rdb, locks: redislock.New(rdb), keys: prefix + "hot:" + cfg.Name + ":", cfg: cfg}
	if err := c.n.register(cfg.Registry, cfg.Name); err != nil {
		return nil, err
	}
	return c, nil
}

// Get returns the value of key: from Redis, or from load, whose result it
// then keeps in Redis. A key the store does not have gives ErrNotFound, an
// invalid key ErrBadKey. When Redis is down Get still answers, from load.
//
// Concurrent Gets of one key share one lookup and the first caller's load.
// A caller whose ctx ends gets ctx's error; the lookup goes on for the others.
func (c *Cache[T]) Get(ctx context.Context, key string, load Loader[T]) (T, error) {
	var zero T
	if err := c.check(key); err != nil {
		c.n.rejected.Add(1)
		return zero, err
	}
	if load == nil {
		return zero, fmt.Errorf("hotcache: get %s %s: nil loader", c.cfg.Name, key)
	}
	ch := c.flights.DoChan(key, func() (any, error) {
		return c.lookup(context.WithoutCancel(ctx), key, load), nil
	})
	select {
	case <-ctx.Done():
		return zero, fmt.Errorf("hotcache: get %s %s: %w", c.cfg.Name, key, ctx.Err())
	case r := <-ch:
		return c.deliver(key, r.Val.(*found[T]))
	}
}

// Invalidate drops what Redis holds for key, value or "not found", so the
// next Get asks the store. Call it after the store changed; a rebuild that
// read the store before the change may still write the old value, for at
// most one TTL.
func (c *Cache[T]) Invalidate(ctx context.Context, key string) error {
	if err := c.check(key); err != nil {
		return err
	}
	if err := c.rdb.Del(ctx, c.valueKey(key)).Err(); err != nil {
		return fmt.Errorf("hotcache: invalidate %s %s: %w", c.cfg.Name, key, err)
	}
	return nil
}

// Stats returns the counters so far.
func (c *Cache[T]) Stats() Stats { return c.n.stats() }

func (c *Cache[T]) check(key string) error {
	if key == "" {
		return fmt.Errorf("%w: empty", ErrBadKey)
	}
	if err := c.cfg.Valid(key); err != nil {
		return fmt.Errorf("%w: %w", ErrBadKey, err)
	}
	return nil
}

func (c *Cache[T]) valueKey(key string) string { return c.keys + "val:" + key }
func (c *Cache[T]) lockKey(key string) string  { return c.keys + "lock:" + key }

// found is what one lookup learned; the callers that shared it each get a
// result from it.
type found[T any] struct {
	how   outcome
	neg   bool   // the store has no such key
	data  []byte // the encoded value
	val   T      // data decoded (or the loader's value), for one caller
	taken atomic.Bool
	err   error
}

// deliver counts the caller's lookup and hands it its result. The value
// decoded during the lookup goes to the first caller; the others decode
// their own copy, so no two callers share memory.
func (c *Cache[T]) deliver(key string, f *found[T]) (T, error) {
	c.n.count(f.how)
	var zero T
	switch {
	case f.err != nil:
		return zero, f.err
	case f.neg:
		return zero, fmt.Errorf("%w: %s %s", ErrNotFound, c.cfg.Name, key)
	case f.taken.CompareAndSwap(false, true):
		return f.val, nil
	}
	v, err := c.cfg.Codec.Decode(f.data)
	if err != nil {
		return zero, fmt.Errorf("hotcache: decode %s %s: %w", c.cfg.Name, key, err)
	}
	return v, nil
}
