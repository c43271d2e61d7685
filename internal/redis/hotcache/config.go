package hotcache

import (
	"fmt"
	"log/slog"
	"regexp"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eprostream/eprostream/internal/logging"
)

// Config says what a Cache keeps and for how long. Name and Valid are
// required; zero values of the others take the defaults.
type Config[T any] struct {
	// Name identifies the view ("site_dashboard"): keys live under
	// prefix+"hot:"+Name+":" and metrics carry it as the label cache.
	Name string
	// Valid rejects ids that cannot exist (wrong shape, unknown study)
	// before Redis or the store sees them; Get wraps its error in ErrBadKey.
	// It must be cheap and safe for concurrent use.
	Valid func(key string) error
	// Codec turns values into bytes for Redis; JSON[T] when nil.
	Codec Codec[T]

	// TTL is the base lifetime of a value (default 5 min). Each write draws
	// its own from TTL ± Jitter·TTL, Jitter in (0, 0.5] (default 0.15).
	TTL    time.Duration
	Jitter float64
	// NegativeTTL is how long the store's "not found" is kept (default 30 s).
	NegativeTTL time.Duration
	// LockTTL bounds one rebuild (default 10 s): the loader's context ends
	// after it, and a rebuilder that died frees the key after it.
	LockTTL time.Duration
	// Wait bounds how long a Get waits for another process's rebuild before
	// it queries the store itself (default LockTTL); Poll is how often it
	// looks for the value meanwhile (default 25 ms).
	Wait time.Duration
	Poll time.Duration
	// RedisTimeout bounds each Redis round trip (default 250 ms); past it
	// the lookup goes to the store.
	RedisTimeout time.Duration

	Registry prometheus.Registerer // may be nil
	Log      *slog.Logger          // discards when nil
}

var validName = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

func (c *Config[T]) setDefaults() {
	if c.Codec == nil {
		c.Codec = JSON[T]{}
	}
	if c.TTL == 0 {
		c.TTL = 5 * time.Minute
	}
	if c.Jitter == 0 {
		c.Jitter = 0.15
	}
	if c.NegativeTTL == 0 {
		c.NegativeTTL = 30 * time.Second
	}
	if c.LockTTL == 0 {
		c.LockTTL = 10 * time.Second
	}
	if c.Wait == 0 {
		c.Wait = c.LockTTL
	}
	if c.Poll == 0 {
		c.Poll = 25 * time.Millisecond
	}
	if c.RedisTimeout == 0 {
		c.RedisTimeout = 250 * time.Millisecond
	}
	c.Log = logging.OrDiscard(c.Log)
}

// Validate says what is wrong with c (after defaults).
func (c Config[T]) Validate() error {
	switch {
	case !validName.MatchString(c.Name):
		return fmt.Errorf("hotcache: name %q must match %s", c.Name, validName)
	case c.Valid == nil:
		return fmt.Errorf("hotcache: %s: a key validator (Valid) is required", c.Name)
	case c.Jitter <= 0 || c.Jitter > 0.5:
		return fmt.Errorf("hotcache: %s: jitter %v must be in (0, 0.5]", c.Name, c.Jitter)
	case c.TTL < time.Millisecond || c.NegativeTTL < time.Millisecond || c.LockTTL < time.Millisecond:
		return fmt.Errorf("hotcache: %s: TTL, NegativeTTL and LockTTL must be at least 1 ms", c.Name)
	case c.Poll <= 0 || c.Wait < c.Poll:
		return fmt.Errorf("hotcache: %s: poll %v must be positive and at most wait %v", c.Name, c.Poll, c.Wait)
	case c.RedisTimeout <= 0:
		return fmt.Errorf("hotcache: %s: Redis timeout %v must be positive", c.Name, c.RedisTimeout)
	}
	return nil
}
