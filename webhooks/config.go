package webhooks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/eprostream/eprostream/internal/logging"
	"github.com/eprostream/eprostream/internal/redis/apikeys"
)

// Config tunes a Deliverer; zero fields take the defaults.
type Config struct {
	// QueueSize bounds the alerts waiting per subscription (default 1000).
	QueueSize int
	// Attempts is how many times an alert is tried before it is
	// dead-lettered for a subscriber (default 8).
	Attempts int
	// InitialBackoff is the wait after the first failed attempt; it doubles
	// after each failure up to MaxBackoff (defaults 1 s and 5 min), with
	// ±20 % jitter.
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	// RequestTimeout bounds one attempt, answer included (default 10 s).
	RequestTimeout time.Duration
	// Refresh is how often subscriptions are reloaded from Redis, so that
	// changes made by another process take effect (default 5 s).
	Refresh time.Duration
}

func (c *Config) setDefaults() {
	if c.QueueSize == 0 {
		c.QueueSize = 1000
	}
	if c.Attempts == 0 {
		c.Attempts = 8
	}
	if c.InitialBackoff == 0 {
		c.InitialBackoff = time.Second
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = 5 * time.Minute
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = 10 * time.Second
	}
	if c.Refresh == 0 {
		c.Refresh = 5 * time.Second
	}
}

// Validate says everything that is wrong with c (after defaults).
func (c Config) Validate() error {
	var errs []error
	if c.QueueSize < 1 || c.QueueSize > 1_000_000 {
		errs = append(errs, fmt.Errorf("queue size %d: must be in [1, 1000000]", c.QueueSize))
	}
	if c.Attempts < 1 || c.Attempts > 100 {
		errs = append(errs, fmt.Errorf("attempts %d: must be in [1, 100]", c.Attempts))
	}
	if c.InitialBackoff <= 0 {
		errs = append(errs, fmt.Errorf("initial backoff %s: must be positive", c.InitialBackoff))
	}
	if c.MaxBackoff < c.InitialBackoff {
		errs = append(errs, fmt.Errorf("max backoff %s: must be at least the initial backoff %s", c.MaxBackoff, c.InitialBackoff))
	}
	if c.RequestTimeout <= 0 {
		errs = append(errs, fmt.Errorf("request timeout %s: must be positive", c.RequestTimeout))
	}
	if c.Refresh <= 0 {
		errs = append(errs, fmt.Errorf("refresh %s: must be positive", c.Refresh))
	}
	if len(errs) > 0 {
		return fmt.Errorf("webhooks: config: %w", errors.Join(errs...))
	}
	return nil
}

// Deps are what a Deliverer needs from outside.
type Deps struct {
	Store *Store       // required
	Log   *slog.Logger // nil: discard
	// HTTP sends the requests; nil: a client of its own that does not
	// follow redirects. Each attempt is bounded by RequestTimeout anyway.
	HTTP *http.Client
	// Owners answers whether a subscription's owner key is still valid
	// (*apikeys.Store is one); nil: subscriptions with an owner get nothing.
	Owners Owners
}

// Owners looks API keys up by id as they are now.
type Owners interface {
	Current(ctx context.Context, id string) (apikeys.Key, error)
}

func (d *Deps) setDefaults() error {
	if d.Store == nil {
		return errors.New("webhooks: deps: a Store is required")
	}
	d.Log = logging.OrDiscard(d.Log)
	if d.HTTP == nil {
		d.HTTP = &http.Client{
			Transport: http.DefaultTransport.(*http.Transport).Clone(),
			// A redirect is an answer we do not follow: the signed body
			// must reach the registered URL or fail visibly.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	return nil
}
