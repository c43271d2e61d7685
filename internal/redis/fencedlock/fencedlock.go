// Package fencedlock is a Redis lock that hands its holder a fencing token.
//
// The lock itself is bsm/redislock (SET key token NX PX ttl; refresh and
// release by compare-and-delete). The fencing token is an INCR on a counter
// beside the lock, drawn before the lock is taken: a holder's token is then
// lower than the token of every holder that takes the lock after it, even
// when the first one stalls past its TTL. The writer that receives a fenced
// command keeps the highest token it applied and refuses lower ones, so a
// holder whose lock expired cannot overwrite the work of the next holder.
//
// A token drawn by a caller that then fails to take the lock is simply
// skipped. Fencing counters are the only eprostream keys without a TTL: a
// counter that expired would restart at 1 and make every new token stale.
//
// A lock can also guard a small record (Lock.Store, Locker.Load): the last
// value a holder wrote, kept with its token, so the next holder reads what
// the previous one decided even before that decision has travelled anywhere
// else. A store with a token lower than the stored one is refused
// (ErrStale): a holder whose lock expired cannot overwrite its successor.
// Records have no TTL either; they are as durable as Redis is.
package fencedlock

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/bsm/redislock"
	"github.com/redis/go-redis/v9"
)

// ErrHeld is returned by Obtain when someone else holds the lock.
var ErrHeld = errors.New("fencedlock: held by another operation")

// ErrStale is returned by Store when a later holder already stored.
var ErrStale = errors.New("fencedlock: a later holder has stored since")

// Locker takes fenced locks under one key prefix (eprostream:{env}:).
type Locker struct {
	rdb    redis.Cmdable
	client *redislock.Client
	prefix string
}

// New returns a Locker whose keys are prefix+"lock:"+name,
// prefix+"fence:"+name and prefix+"record:"+name.
func New(rdb redis.UniversalClient, prefix string) *Locker {
	return &Locker{rdb: rdb, client: redislock.New(rdb), prefix: prefix}
}

// Lock is a held lock and its fencing token.
type Lock struct {
	lock   *redislock.Lock
	Fence  int64
	rdb    redis.Cmdable
	record string
}

// Obtain takes the lock called name for ttl without waiting: ErrHeld when
// another holder has it.
func (l *Locker) Obtain(ctx context.Context, name string, ttl time.Duration) (*Lock, error) {
	fence, err := l.rdb.Incr(ctx, l.prefix+"fence:"+name).Result()
	if err != nil {
		return nil, fmt.Errorf("fencedlock: fencing token for %s: %w", name, err)
	}
	lk, err := l.client.Obtain(ctx, l.prefix+"lock:"+name, ttl, &redislock.Options{
		Metadata: ":fence=" + strconv.FormatInt(fence, 10),
	})
	if errors.Is(err, redislock.ErrNotObtained) {
		return nil, ErrHeld
	}
	if err != nil {
		return nil, fmt.Errorf("fencedlock: obtain %s: %w", name, err)
	}
	return &Lock{lock: lk, Fence: fence, rdb: l.rdb, record: l.prefix + "record:" + name}, nil
}

// storeScript writes the record unless one with a higher token is there.
var storeScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], 'fence')
if cur and tonumber(cur) > tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'fence', ARGV[1], 'value', ARGV[2])
return 1`)

// Store keeps value as the record of the lock, with the holder's token.
func (k *Lock) Store(ctx context.Context, value []byte) error {
	ok, err := storeScript.Run(ctx, k.rdb, []string{k.record}, k.Fence, value).Int()
	if err != nil {
		return fmt.Errorf("fencedlock: store: %w", err)
	}
	if ok == 0 {
		return ErrStale
	}
	return nil
}

// Load returns the record last stored under the lock called name; false
// when none was.
func (l *Locker) Load(ctx context.Context, name string) ([]byte, bool, error) {
	v, err := l.rdb.HGet(ctx, l.prefix+"record:"+name, "value").Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("fencedlock: load %s: %w", name, err)
	}
	return v, true, nil
}

// Release gives the lock back if it is still ours; a lock that already
// expired is not an error (its fence still protects the write).
func (k *Lock) Release(ctx context.Context) error {
	err := k.lock.Release(ctx)
	if err != nil && !errors.Is(err, redislock.ErrLockNotHeld) {
		return fmt.Errorf("fencedlock: release: %w", err)
	}
	return nil
}

// Held reports whether the lock is still ours.
func (k *Lock) Held(ctx context.Context) (bool, error) {
	ttl, err := k.lock.TTL(ctx)
	if err != nil {
		return false, fmt.Errorf("fencedlock: ttl: %w", err)
	}
	return ttl > 0, nil
}
