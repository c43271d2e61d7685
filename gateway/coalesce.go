package gateway

import (
	"context"
	"errors"

	"github.com/eprostream/eprostream/gateway/internal/coalesce"
	"github.com/eprostream/eprostream/internal/redis/idempotency"
	"github.com/eprostream/eprostream/internal/redis/ratelimit"
)

// Concurrent requests share their Redis round trips: the rate checks of
// requests in flight together become one GCRA call per key (plus one for
// the overall limit) and their idempotency claims one pipeline; completions
// go in the background (see completer). With Config.NoCoalesce every request makes its own.
const maxCoalesced = 256

type limitOut struct {
	d   ratelimit.Decision
	err error
}

type claimIn struct{ key, fp string }

type claimOut struct {
	c   idempotency.Claim
	err error
}

type completeIn struct {
	c   idempotency.Claim
	out idempotency.Outcome
}

type redisBatchers struct {
	limits *coalesce.Batcher[ratelimit.Request, limitOut]
	claims *coalesce.Batcher[claimIn, claimOut]
}

func newBatchers(d Deps) redisBatchers {
	var b redisBatchers
	if d.Limiter != nil {
		b.limits = coalesce.New(maxCoalesced, func(ctx context.Context, in []ratelimit.Request) ([]limitOut, error) {
			ds, err := d.Limiter.AllowMany(ctx, in)
			out := make([]limitOut, len(in))
			for i := range out {
				out[i] = limitOut{d: ds[i], err: err}
			}
			return out, nil
		})
	}
	if d.Idempotency != nil {
		b.claims = coalesce.New(maxCoalesced, func(ctx context.Context, in []claimIn) ([]claimOut, error) {
			keys, fps := make([]string, len(in)), make([]string, len(in))
			for i, c := range in {
				keys[i], fps[i] = c.key, c.fp
			}
			claims, errs, err := d.Idempotency.BeginMany(ctx, keys, fps)
			if err != nil {
				return nil, err
			}
			out := make([]claimOut, len(in))
			for i := range out {
				out[i] = claimOut{c: claims[i], err: errs[i]}
			}
			return out, nil
		})
	}
	return b
}

func (g *Gateway) allow(ctx context.Context, key string, perSec, n int) (ratelimit.Decision, error) {
	if g.cfg.NoCoalesce {
		return g.deps.Limiter.Allow(ctx, key, perSec, n)
	}
	out, err := g.batch.limits.Do(ctx, ratelimit.Request{Key: key, PerSec: perSec, N: n})
	if err != nil {
		return g.deps.Limiter.Allow(ctx, key, perSec, n)
	}
	return out.d, out.err
}

// begin claims an idempotency key; a duplicate in progress waits for its
// answer on the one-by-one path.
func (g *Gateway) begin(ctx context.Context, key, fp string) (idempotency.Claim, error) {
	if g.cfg.NoCoalesce {
		return g.deps.Idempotency.Begin(ctx, key, fp)
	}
	out, err := g.batch.claims.Do(ctx, claimIn{key: key, fp: fp})
	switch {
	case err != nil:
		return idempotency.Claim{}, err
	case errors.Is(out.err, idempotency.ErrInProgress):
		return g.deps.Idempotency.Begin(ctx, key, fp)
	}
	return out.c, out.err
}

func (g *Gateway) complete(ctx context.Context, c idempotency.Claim, out idempotency.Outcome) error {
	if g.cfg.NoCoalesce {
		return g.deps.Idempotency.Complete(ctx, c, out)
	}
	g.completions.add(ctx, completeIn{c: c, out: out})
	return nil
}
