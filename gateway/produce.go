package gateway

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/eapache/go-resiliency/breaker"
)

// Producer sends raw records to epro-submissions; emitters.SubmissionEmitter
// is one. EmitRawAsync must be safe for concurrent use and call done exactly
// once, with nil only when Kafka acknowledged the record (acks=all).
type Producer interface {
	EmitRawAsync(key string, value []byte, done func(error))
}

// errUnavailable is every way Kafka can fail to take a record in time.
var errUnavailable = errors.New("gateway: Kafka did not acknowledge")

type record struct {
	key   string
	value []byte
}

// produce sends recs and waits for every acknowledgement, at most
// cfg.KafkaTimeout. errs[i] is nil when recs[i] is stored. When Kafka keeps
// failing, the breaker answers at once instead of making callers wait.
func (g *Gateway) produce(ctx context.Context, recs []record) []error {
	errs := make([]error, len(recs))
	ctx, cancel := context.WithTimeout(ctx, g.cfg.KafkaTimeout)
	defer cancel()
	err := g.breaker.Run(func() error {
		acks := make(chan struct {
			i   int
			err error
		}, len(recs))
		for i, rec := range recs {
			g.deps.Producer.EmitRawAsync(rec.key, rec.value, func(err error) {
				acks <- struct {
					i   int
					err error
				}{i, err}
			})
		}
		pending := make([]bool, len(recs))
		for i := range pending {
			pending[i] = true
		}
		var last error
		for range recs {
			select {
			case a := <-acks:
				pending[a.i] = false
				if a.err != nil {
					errs[a.i] = fmt.Errorf("%w: %w", errUnavailable, a.err)
					last = errs[a.i]
				}
			case <-ctx.Done():
				// Records still pending may be stored later; their retries are
				// deduplicated by message_id downstream.
				for i, p := range pending {
					if p {
						errs[i] = fmt.Errorf("%w within %s", errUnavailable, g.cfg.KafkaTimeout)
					}
				}
				if errors.Is(ctx.Err(), context.Canceled) {
					return nil // the client went away: not Kafka's failure
				}
				return errs[firstPending(pending)]
			}
		}
		return last
	})
	if errors.Is(err, breaker.ErrBreakerOpen) {
		for i := range errs {
			errs[i] = fmt.Errorf("%w: Kafka is failing, the gateway pauses sends for %s", errUnavailable, g.cfg.KafkaTimeout+g.cfg.BreakerPause)
		}
	}
	return errs
}

func firstPending(p []bool) int {
	for i, v := range p {
		if v {
			return i
		}
	}
	return 0
}

// newBreaker opens after 3 failed sends within kafkaTimeout+pause (a window
// shorter than one send's timeout would never see three failures), stays
// open that long, then lets sends through again; one success closes it.
func newBreaker(kafkaTimeout, pause time.Duration) *breaker.Breaker {
	return breaker.New(3, 1, kafkaTimeout+pause)
}
