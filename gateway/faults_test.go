//go:build faults

package gateway_test

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/eprostream/eprostream/gateway"
	"github.com/eprostream/eprostream/internal/redis/ratelimit"
)

type quietRedis struct{}

func (quietRedis) Printf(context.Context, string, ...any) {}

func stackCtl(t *testing.T, verb, service string) {
	t.Helper()
	out, err := exec.Command("bash", "../devstack/stack.sh", verb, service).CombinedOutput()
	if err != nil {
		t.Fatalf("stack.sh %s %s: %v\n%s", verb, service, err, out)
	}
}

// With Kafka stopped the gateway answers 503 and never 202; once three
// sends failed it answers at once. When Kafka is back it accepts again by
// itself, and every submission it accepted is on the topic.
func TestFaultKafkaStopped(t *testing.T) {
	redis.SetLogger(quietRedis{}) // dial failures are the point here
	f := newFixture(t, func(_ *fixture, c *gateway.Config, _ *gateway.Deps) {
		c.KafkaTimeout, c.BreakerPause = 3*time.Second, 2*time.Second
	})
	submit := func(id string) (reply, time.Duration) {
		start := time.Now()
		r := f.do(request{path: "/v1/submissions", token: f.submit, contentType: "application/json", body: native(id, nil)})
		return r, time.Since(start)
	}
	if r, _ := submit("k-0"); r.status != http.StatusAccepted {
		t.Fatalf("before the stop: %d %s", r.status, r.body)
	}
	accepted := []string{"k-0"}
	stackCtl(t, "down", "kafka")
	restarted := false
	defer func() {
		if !restarted {
			stackCtl(t, "up", "kafka")
		}
	}()
	var waits []time.Duration
	for i := range 12 {
		r, took := submit(fmt.Sprintf("k-down-%d", i))
		if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
			t.Fatalf("with Kafka stopped: %d %s", r.status, r.body)
		}
		if took > 3*time.Second+time.Second {
			t.Fatalf("a 503 took %s, beyond the Kafka timeout", took)
		}
		waits = append(waits, took)
	}
	slices.Sort(waits)
	t.Logf("503 while Kafka is down: fastest %s, median %s, slowest %s", waits[0], waits[len(waits)/2], waits[len(waits)-1])
	if waits[len(waits)/2] > 100*time.Millisecond {
		t.Errorf("median 503 took %s: the breaker does not answer at once", waits[len(waits)/2])
	}
	stackCtl(t, "up", "kafka")
	restarted = true
	back := time.Now()
	for i := 0; ; i++ {
		id := fmt.Sprintf("k-up-%d", i)
		r, _ := submit(id)
		if r.status == http.StatusAccepted {
			accepted = append(accepted, id)
			break
		}
		if r.status != http.StatusServiceUnavailable {
			t.Fatalf("while Kafka comes back: %d %s", r.status, r.body)
		}
		if time.Since(back) > 90*time.Second {
			t.Fatal("the gateway did not accept again within 90 s of Kafka's restart")
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Logf("accepting again %s after the broker was up", time.Since(back).Round(time.Millisecond))
	on := map[string]bool{}
	for _, v := range f.readAll(f.names.Submissions) {
		for _, id := range accepted {
			if strings.Contains(string(v), `"message_id":"`+id+`"`) {
				on[id] = true
			}
		}
	}
	for _, id := range accepted {
		if !on[id] {
			t.Fatalf("accepted submission %s is not on the topic", id)
		}
	}
}

// With Redis stopped, ingest goes on: a key seen before is trusted, the
// limit falls back to this instance's share (half of 20/s), and an unseen
// key gets 503, not 401, as does the first report of a new subject (its
// enrolment needs the registry lock). With Redis back the shared limit applies again.
func TestFaultRedisStopped(t *testing.T) {
	redis.SetLogger(quietRedis{})
	f := newFixture(t, func(f *fixture, _ *gateway.Config, d *gateway.Deps) {
		d.Limiter, _ = ratelimit.New(f.fast, f.prefix, ratelimit.Config{PerKey: 20, FallbackShare: 0.5})
	})
	post := func(token, id string) reply {
		return f.do(request{path: "/v1/submissions", token: token, contentType: "application/json", body: native(id, nil)})
	}
	if r := post(f.submit, "r-0"); r.status != http.StatusAccepted {
		t.Fatalf("before the stop: %d %s", r.status, r.body)
	}
	if r := post(f.all, "r-all-0"); r.status != http.StatusAccepted { // a second key, seen before the stop
		t.Fatalf("before the stop: %d %s", r.status, r.body)
	}
	unseen := f.key("ONC-301", "submit")
	time.Sleep(1100 * time.Millisecond) // the key's bucket refills
	stackCtl(t, "down", "redis")
	restarted := false
	defer func() {
		if !restarted {
			stackCtl(t, "up", "redis")
		}
	}()
	accepted, limited := 0, 0
	start := time.Now()
	for i := range 30 {
		switch r := post(f.submit, fmt.Sprintf("r-down-%d", i)); r.status {
		case http.StatusAccepted:
			accepted++
		case http.StatusTooManyRequests:
			limited++
		default:
			t.Fatalf("with Redis stopped: %d %s", r.status, r.body)
		}
	}
	t.Logf("Redis down: %d accepted, %d limited by the local fallback", accepted, limited)
	// half of the burst of 20, plus what refilled at half of 20/s meanwhile
	if most := 10 + int(10*time.Since(start).Seconds()) + 1; accepted < 10 || accepted > most || limited == 0 {
		t.Fatalf("fallback accepted %d of 30, want 10..%d (half of the burst of 20)", accepted, most)
	}
	if r := post(unseen, "r-unseen"); r.status != http.StatusServiceUnavailable {
		t.Fatalf("unseen key with Redis down: %d %s", r.status, r.body)
	}
	// A first report needs the registry lock: refused, not enrolled blind.
	if r := f.do(request{path: "/v1/submissions", token: f.all, contentType: "application/json",
		body: native("r-new-subject", map[string]any{"subject_id": "ONC-301-012-0900"})}); r.status != http.StatusServiceUnavailable {
		t.Fatalf("first report of a new subject with Redis down: %d %s, want 503", r.status, r.body)
	}
	stackCtl(t, "up", "redis")
	restarted = true
	time.Sleep(1100 * time.Millisecond)
	r := post(unseen, "r-after")
	if r.status != http.StatusAccepted || r.header.Get("RateLimit-Limit") != "20" {
		t.Fatalf("after Redis is back: %d %v %s", r.status, r.header, r.body)
	}
	if n := f.records(f.names.Submissions); n != int64(accepted+3) {
		t.Fatalf("%d records, want %d", n, accepted+3)
	}
}
