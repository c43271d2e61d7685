package ratelimit

import (
	"context"
	"time"

	"github.com/go-redis/redis_rate/v10"
)

// Request is one caller's claim on a key's budget.
type Request struct {
	Key    string
	PerSec int // the key's own limit; 0 for the default
	N      int
}

// AllowMany decides many requests with one GCRA call per distinct key and
// one for the overall limit, instead of two calls per request: the calls
// take the tokens of all their requests at once (AllowAtMost), and the
// requests of a key are admitted in order while its tokens last. Tokens
// taken for a request that then did not fit are not given back, so under
// contention a key gets slightly less than its limit, never more.
// err is only the reason decisions were made locally.
func (l *Limiter) AllowMany(ctx context.Context, reqs []Request) ([]Decision, error) {
	out := make([]Decision, len(reqs))
	ctx, cancel := context.WithTimeout(ctx, l.cfg.Timeout)
	defer cancel()
	order, groups := groupByKey(reqs)
	var admitted []int
	for _, key := range order {
		idx := groups[key]
		lim := l.perKey(reqs[idx[0]].PerSec)
		got, d, err := l.takeAtMost(ctx, "key:"+key, lim, reqs, idx)
		if err != nil {
			return l.allLocal(reqs), err
		}
		admitted = append(admitted, fill(out, idx, got, d, lim, reqs, false)...)
	}
	if l.cfg.Overall == 0 || len(admitted) == 0 {
		return out, nil
	}
	overall := redis_rate.Limit{Rate: l.cfg.Overall, Burst: l.cfg.Overall, Period: time.Second}
	got, d, err := l.takeAtMost(ctx, "overall", overall, reqs, admitted)
	if err != nil {
		return l.allLocal(reqs), err
	}
	var refused []int
	for _, i := range admitted {
		if got < reqs[i].N {
			refused = append(refused, i)
			continue
		}
		got -= reqs[i].N
		out[i].Remaining = min(out[i].Remaining, d.Remaining)
	}
	fill(out, refused, 0, d, overall, reqs, true)
	return out, nil
}

func groupByKey(reqs []Request) ([]string, map[string][]int) {
	groups := map[string][]int{}
	var order []string
	for i, r := range reqs {
		if _, ok := groups[r.Key]; !ok {
			order = append(order, r.Key)
		}
		groups[r.Key] = append(groups[r.Key], i)
	}
	return order, groups
}

func (l *Limiter) perKey(perSec int) redis_rate.Limit {
	if perSec <= 0 {
		return redis_rate.Limit{Rate: l.cfg.PerKey, Burst: l.cfg.PerKeyBurst, Period: time.Second}
	}
	return redis_rate.Limit{Rate: perSec, Burst: perSec, Period: time.Second}
}

// takeAtMost takes up to the tokens of reqs[idx] from one bucket.
func (l *Limiter) takeAtMost(ctx context.Context, key string, lim redis_rate.Limit, reqs []Request, idx []int) (int, Decision, error) {
	total := 0
	for _, i := range idx {
		total += reqs[i].N
	}
	res, err := l.shared.AllowAtMost(ctx, l.prefix+key, lim, total)
	if err != nil {
		return 0, Decision{}, err
	}
	return res.Allowed, Decision{Limit: lim.Rate, Remaining: res.Remaining, RetryAfter: res.RetryAfter, ResetAfter: max(res.ResetAfter, 0)}, nil
}

// fill admits reqs[idx] in order while got tokens last and refuses the
// rest; it returns the admitted indexes.
func fill(out []Decision, idx []int, got int, d Decision, lim redis_rate.Limit, reqs []Request, overall bool) []int {
	var admitted []int
	interval := lim.Period / time.Duration(lim.Rate)
	for _, i := range idx {
		out[i] = d
		out[i].Overall = overall
		if got >= reqs[i].N {
			got -= reqs[i].N
			out[i].Allowed = true
			out[i].RetryAfter = 0
			admitted = append(admitted, i)
			continue
		}
		out[i].Remaining = 0
		out[i].RetryAfter = max(d.RetryAfter, interval*time.Duration(reqs[i].N))
	}
	return admitted
}

func (l *Limiter) allLocal(reqs []Request) []Decision {
	out := make([]Decision, len(reqs))
	for i, r := range reqs {
		out[i] = l.allowLocal(r.Key, l.perKey(r.PerSec), r.N)
	}
	return out
}
