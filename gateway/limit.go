package gateway

import (
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/eprostream/eprostream/internal/redis/apikeys"
)

// admit takes n submissions from the key's and the overall budget and sets
// the RateLimit-* headers; false means a 429 was written.
func (g *Gateway) admit(w http.ResponseWriter, r *http.Request, k apikeys.Key, n int) bool {
	if g.deps.Limiter == nil {
		return true
	}
	d, err := g.allow(r.Context(), k.ID, k.RatePerSec, n)
	if err != nil {
		g.metrics.degraded.WithLabelValues("ratelimit").Inc()
		g.log.Debug("rate limit decided locally", "err", err)
	}
	h := w.Header()
	h.Set("RateLimit-Limit", strconv.Itoa(d.Limit))
	h.Set("RateLimit-Remaining", strconv.Itoa(d.Remaining))
	h.Set("RateLimit-Reset", seconds(d.ResetAfter))
	if d.Allowed {
		return true
	}
	h.Set("Retry-After", seconds(d.RetryAfter))
	which := "this API key's"
	if d.Overall {
		which = "the gateway's overall"
	}
	g.metrics.limited.Inc()
	fail(w, http.StatusTooManyRequests, "over "+which+" rate limit of "+strconv.Itoa(d.Limit)+
		" submissions/s; retry after "+seconds(d.RetryAfter)+" s")
	return false
}

// seconds rounds up to whole seconds, at least 1 for a positive duration.
func seconds(d time.Duration) string {
	if d <= 0 {
		return "0"
	}
	return strconv.Itoa(int(math.Ceil(d.Seconds())))
}
