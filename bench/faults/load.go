package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const study = "FLT-100"

// retryFor is how long a client goes on retrying one submission.
const retryFor = 2 * time.Minute

var sites = []string{"SITE-001", "SITE-002", "SITE-003", "SITE-004"}

type subjectRef struct{ id, site string }

func roster(n int) []subjectRef {
	out := make([]subjectRef, n)
	for i := range out {
		site := sites[i%len(sites)]
		out[i] = subjectRef{id: fmt.Sprintf("%s-%03d-%04d", study, i%len(sites)+1, i), site: site}
	}
	return out
}

// attempt is one HTTP request and its answer.
type attempt struct {
	id     string
	n      int    // 1 for the first try of a submission
	status int    // 0: no answer (connection refused, reset, timeout)
	err    string // why there was no answer
	at     time.Time
	took   time.Duration
}

// loadResult is everything the client saw in one scenario.
type loadResult struct {
	attempts []attempt
	accepted map[string]time.Time // id → time of its first 202
	gaveUp   map[string]int       // id → last status of a submission never accepted
	start    time.Time
	loadEnd  time.Time // no new submission after this
	end      time.Time // the last retry ended
	offered  int       // submissions sent
	skipped  int       // ticks when every open slot was taken
}

// driveLoad offers rate submissions/s over conns connections until ctx
// ends. A submission that gets 409, 429, 5xx or no answer is sent again,
// the same bytes under the same message_id, as an app retries, until it is
// answered otherwise or retryFor has passed (a claim left by a killed
// gateway blocks its id for 30 s; a whole Kafka restart takes longer): so
// every accepted id is one the system promised to keep. A submission waiting to be retried does not hold a
// connection, so new ones go on meanwhile.
func driveLoad(ctx context.Context, url, token, tag string, rate, conns int, subjects []subjectRef) *loadResult {
	transport := &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns, IdleConnTimeout: 30 * time.Second}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: 10 * time.Second}
	res := &loadResult{accepted: map[string]time.Time{}, gaveUp: map[string]int{}, start: time.Now()}
	var mu sync.Mutex
	// At most conns requests are on the wire; at most maxOpen submissions
	// are open (sent or waiting for a retry). A tick that finds them all
	// open offers nothing: a stalled system sees fewer new submissions,
	// never a burst of queued ones afterwards.
	wire := make(chan struct{}, conns)
	maxOpen := int64(conns * 4)
	var open atomic.Int64
	var seq atomic.Int64
	var wg sync.WaitGroup
	one := func(id string, body []byte) {
		defer wg.Done()
		defer open.Add(-1)
		var tries []attempt
		accepted, last := false, 0
		first := time.Now()
		for n := 1; ; n++ {
			wire <- struct{}{}
			a := post(client, url, token, id, n, body)
			<-wire
			tries = append(tries, a)
			last = a.status
			if a.status == http.StatusAccepted {
				accepted = true
				break
			}
			if !retryable(a.status) || time.Since(first) > retryFor {
				break
			}
			time.Sleep(backoff(n))
		}
		mu.Lock()
		res.attempts = append(res.attempts, tries...)
		if accepted {
			res.accepted[id] = tries[len(tries)-1].at
		} else {
			res.gaveUp[id] = last
		}
		mu.Unlock()
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-tick.C:
		}
		if open.Load() >= maxOpen {
			res.skipped++
			continue
		}
		open.Add(1)
		res.offered++
		id := fmt.Sprintf("%s-%07d", tag, seq.Add(1))
		wg.Add(1)
		go one(id, submission(id, subjects[rng.IntN(len(subjects))], rng))
	}
	res.loadEnd = time.Now()
	wg.Wait()
	res.end = time.Now()
	return res
}

func retryable(status int) bool {
	return status == 0 || status == http.StatusConflict || status == http.StatusTooManyRequests || status >= 500
}

func backoff(n int) time.Duration {
	d := min(100*time.Millisecond<<min(n-1, 4), 2*time.Second)
	return d + time.Duration(rand.Int64N(int64(d/2)))
}

func post(client *http.Client, url, token, id string, n int, body []byte) attempt {
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(string(body)))
	a := attempt{id: id, n: n, at: time.Now()}
	if err != nil {
		a.err = err.Error()
		return a
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	a.took = time.Since(a.at)
	if err != nil {
		a.err = err.Error()
		return a
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	a.status = resp.StatusCode
	a.at = time.Now() // the answer's time: a 202 means stored from then on
	return a
}

// submission is a native JSON submission: a PRO-CTCAE report whose grades
// now and then reach the alert thresholds, so alerts flow too.
func submission(id string, s subjectRef, rng *rand.Rand) []byte {
	grade := func() int {
		if rng.IntN(20) == 0 {
			return 3 + rng.IntN(2)
		}
		return rng.IntN(3)
	}
	m := map[string]any{
		"message_id": id, "study_id": study, "site_id": s.site, "subject_id": s.id,
		"instrument": "PRO-CTCAE", "submitted_at": time.Now().UTC().Add(-time.Second).Format(time.RFC3339),
		"source": "app",
		"items": []map[string]any{
			{"code": "PAIN_SEVERITY", "value": grade()},
			{"code": "NAUSEA_FREQUENCY", "value": grade()},
			{"code": "FATIGUE_SEVERITY", "value": grade()},
		},
	}
	b, _ := json.Marshal(m)
	return b
}

// longestPause is the longest time between two consecutive 202s of the
// load (and from the start to the first, and the last to the end of the
// load).
func (r *loadResult) longestPause() time.Duration {
	var ts []time.Time
	for _, a := range r.attempts {
		if a.status == http.StatusAccepted {
			ts = append(ts, a.at)
		}
	}
	slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
	prev, longest := r.start, time.Duration(0)
	for _, t := range ts {
		longest = max(longest, t.Sub(prev))
		prev = t
	}
	return max(longest, r.loadEnd.Sub(prev))
}

// otherAnswers counts the attempts that were not 202, by status.
func (r *loadResult) otherAnswers() string {
	counts := map[string]int{}
	for _, a := range r.attempts {
		switch {
		case a.status == http.StatusAccepted:
		case a.status == 0:
			counts["no answer"]++
		default:
			counts[strconv.Itoa(a.status)]++
		}
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s ×%d", k, counts[k]))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func (r *loadResult) count(pred func(int) bool) int {
	n := 0
	for _, a := range r.attempts {
		if pred(a.status) {
			n++
		}
	}
	return n
}

// rates are the submissions offered and accepted per second of load.
func (r *loadResult) rates() string {
	secs := r.loadEnd.Sub(r.start).Seconds()
	return fmt.Sprintf("%.0f/s offered, %.0f/s accepted", float64(r.offered)/secs, float64(len(r.accepted))/secs)
}
