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

// Locker takes fenced locks under one key prefix (eprostream:{env}:).
type Locker struct {
	rdb    redis.Cmdable
	client *redislock.Client
	prefix string
}

// New returns a Locker whose keys are prefix+"lock:"+name and
// prefix+"fence:"+name.
func New(rdb redis.UniversalClient, prefix string) *Locker {
	return &Locker{rdb: rdb, client: redislock.New(rdb), prefix: prefix}
}

// Lock is a held lock and its fencing token.
type Lock struct {
	lock  *redislock.Lock
	Fence int64
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
	return &Lock{lock: lk, Fence: fence}, nil
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
