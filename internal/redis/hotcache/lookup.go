package hotcache

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/bsm/redislock"
	"github.com/redis/go-redis/v9"
)

// Entries in Redis are a tag byte, then the encoded value for tagValue.
const (
	tagValue    = 'v'
	tagNotFound = 'n'
)

// lookup is one flight of Get: read Redis, on a miss rebuild or wait for
// the rebuild elsewhere, on a Redis failure go to the store.
func (c *Cache[T]) lookup(ctx context.Context, key string, load Loader[T]) *found[T] {
	f, err := c.read(ctx, key)
	switch {
	case err != nil:
		f = c.load(ctx, key, load, false)
		f.how = fallback
	case f == nil:
		f = c.fill(ctx, key, load)
		f.how = miss
	case f.neg:
		f.how = negativeHit
	default:
		f.how = hit
	}
	return f
}

// fill gets key into Redis after a miss: under the rebuild lock, or by
// waiting for whoever holds it. A holder that dies frees the lock after
// LockTTL and the next attempt here takes it over.
func (c *Cache[T]) fill(ctx context.Context, key string, load Loader[T]) *found[T] {
	deadline := time.Now().Add(c.cfg.Wait)
	for {
		lk, err := c.lock(ctx, key)
		if err != nil {
			return c.load(ctx, key, load, false)
		}
		if lk != nil {
			return c.rebuild(ctx, key, lk, load)
		}
		time.Sleep(c.cfg.Poll) // ctx cannot end: the flight serves other callers
		f, err := c.read(ctx, key)
		switch {
		case err != nil:
			return c.load(ctx, key, load, false)
		case f != nil:
			return f
		case time.Now().After(deadline):
			c.n.waitTimeouts.Add(1)
			c.cfg.Log.Warn("hotcache: rebuild elsewhere ran past wait; querying the store",
				"cache", c.cfg.Name, "key", key, "wait", c.cfg.Wait)
			return c.load(ctx, key, load, true)
		}
	}
}

// rebuild loads key and writes it while holding its lock. The value goes
// into Redis before the lock is released, so a waiter that takes the lock
// next finds it on its second look.
func (c *Cache[T]) rebuild(ctx context.Context, key string, lk *redislock.Lock, load Loader[T]) *found[T] {
	defer c.unlock(ctx, key, lk)
	// The previous holder may have written the key between our read and
	// our lock.
	f, err := c.read(ctx, key)
	if f != nil {
		return f
	}
	return c.load(ctx, key, load, err == nil)
}

// load queries the store, and when store is set keeps the answer in Redis:
// a value with a jittered TTL, "not found" for NegativeTTL, an error not at
// all.
func (c *Cache[T]) load(ctx context.Context, key string, load Loader[T], store bool) *found[T] {
	c.n.loads.Add(1)
	v, err := c.call(ctx, load)
	switch {
	case errors.Is(err, ErrNotFound):
		if store {
			c.write(ctx, key, []byte{tagNotFound}, c.cfg.NegativeTTL)
		}
		return &found[T]{neg: true}
	case err != nil:
		return &found[T]{err: fmt.Errorf("hotcache: load %s %s: %w", c.cfg.Name, key, err)}
	}
	data, err := c.cfg.Codec.Encode(v)
	if err != nil {
		return &found[T]{err: fmt.Errorf("hotcache: encode %s %s: %w", c.cfg.Name, key, err)}
	}
	if store {
		c.write(ctx, key, append([]byte{tagValue}, data...), c.ttl())
	}
	return &found[T]{data: data, val: v}
}

// call runs the loader for at most LockTTL. A panic becomes an error: it
// would otherwise surface in singleflight's goroutine and end the process.
func (c *Cache[T]) call(ctx context.Context, load Loader[T]) (v T, err error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.LockTTL)
	defer cancel()
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("loader panicked: %v", p)
		}
	}()
	return load(ctx)
}

// ttl draws a value's lifetime from TTL ± Jitter·TTL, in whole milliseconds.
func (c *Cache[T]) ttl() time.Duration {
	spread := (2*rand.Float64() - 1) * c.cfg.Jitter * float64(c.cfg.TTL)
	return max((c.cfg.TTL + time.Duration(spread)).Round(time.Millisecond), time.Millisecond)
}

// read returns what Redis holds for key, or nil when it holds nothing
// usable; a value that no longer decodes is treated as absent and rebuilt.
func (c *Cache[T]) read(ctx context.Context, key string) (*found[T], error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RedisTimeout)
	defer cancel()
	b, err := c.rdb.Get(ctx, c.valueKey(key)).Bytes()
	if errors.Is(err, redis.Nil) {
		c.redisOK()
		return nil, nil
	}
	if err != nil {
		c.redisFailed("read", key, err)
		return nil, err
	}
	c.redisOK()
	switch {
	case len(b) == 1 && b[0] == tagNotFound:
		return &found[T]{neg: true}, nil
	case len(b) > 0 && b[0] == tagValue:
		v, err := c.cfg.Codec.Decode(b[1:])
		if err == nil {
			return &found[T]{data: b[1:], val: v}, nil
		}
		c.cfg.Log.Warn("hotcache: cached value does not decode; rebuilding", "cache", c.cfg.Name, "key", key, "err", err)
	default:
		c.cfg.Log.Warn("hotcache: cached entry has an unknown format; rebuilding", "cache", c.cfg.Name, "key", key)
	}
	return nil, nil
}

func (c *Cache[T]) write(ctx context.Context, key string, entry []byte, ttl time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RedisTimeout)
	defer cancel()
	if err := c.rdb.Set(ctx, c.valueKey(key), entry, ttl).Err(); err != nil {
		c.redisFailed("write", key, err)
		return
	}
	c.redisOK()
}

// lock takes key's rebuild lock without waiting: nil, nil when another
// holder has it.
func (c *Cache[T]) lock(ctx context.Context, key string) (*redislock.Lock, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RedisTimeout)
	defer cancel()
	lk, err := c.locks.Obtain(ctx, c.lockKey(key), c.cfg.LockTTL, nil)
	if errors.Is(err, redislock.ErrNotObtained) {
		c.redisOK()
		return nil, nil
	}
	if err != nil {
		c.redisFailed("lock", key, err)
		return nil, err
	}
	c.redisOK()
	return lk, nil
}

// unlock releases the lock if it is still ours; when it fails, LockTTL
// frees the key.
func (c *Cache[T]) unlock(ctx context.Context, key string, lk *redislock.Lock) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RedisTimeout)
	defer cancel()
	if err := lk.Release(ctx); err != nil && !errors.Is(err, redislock.ErrLockNotHeld) {
		c.redisFailed("unlock", key, err)
	}
}

// redisFailed counts a failed round trip and logs when Redis turns
// unavailable, not on every lookup while it stays so.
func (c *Cache[T]) redisFailed(op, key string, err error) {
	c.n.redisErrors.Add(1)
	if c.down.CompareAndSwap(false, true) {
		c.cfg.Log.Warn("hotcache: Redis failed; lookups go to the store until it answers",
			"cache", c.cfg.Name, "op", op, "key", key, "err", err)
	}
}

func (c *Cache[T]) redisOK() {
	if c.down.Load() && c.down.CompareAndSwap(true, false) {
		c.cfg.Log.Info("hotcache: Redis answers again", "cache", c.cfg.Name)
	}
}
