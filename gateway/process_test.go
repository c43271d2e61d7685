package gateway_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/eprostream/eprostream/internal/clickhouse/schema"
	"github.com/eprostream/eprostream/internal/redis/apikeys"
	"github.com/eprostream/eprostream/internal/testenv"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startBinary runs `eprostream args...` with the fixture's topic prefix and
// env added to the environment; it is stopped with SIGTERM at cleanup, and
// its log (the returned path) is shown if the test failed.
func startBinary(t *testing.T, f *fixture, env []string, args ...string) string {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), args[0]+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(testenv.Binary(t), args...)
	cmd.Env = append(append(os.Environ(), "TOPIC_PREFIX="+f.cfg.TopicPrefix), env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		_ = logFile.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("%s log:\n%s", strings.Join(args, " "), b)
		}
	})
	return logPath
}

// startIngest runs `eprostream ingest` on addr with env.
func startIngest(t *testing.T, f *fixture, env, addr string, args ...string) {
	t.Helper()
	logPath := startBinary(t, f, []string{"EPRO_ENV=" + env, "ADMIN_ADDR="}, append([]string{"ingest", "--listen", addr}, args...)...)
	// Ready: listening, and the study registry loaded (until then
	// registry-dependent requests answer 503, as /readyz would say).
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/openapi.json")
		if err == nil {
			_ = resp.Body.Close()
			if b, _ := os.ReadFile(logPath); strings.Contains(string(b), "study registry loaded") {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("ingest on %s did not become ready: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Two gateway processes share one key's budget through Redis. The key
// allows 100 submissions/s with a burst of 100; over the run both together
// may accept burst + rate × elapsed, within 15 %. Two independent limits
// would accept about twice that.
func TestTwoGatewaysEnforceOneLimit(t *testing.T) {
	f := newFixture(t)
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	env := "gw-" + hex.EncodeToString(b)
	prefix := "eprostream:" + env + ":"
	t.Cleanup(func() {
		ctx := context.Background()
		iter := f.rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			f.rdb.Del(ctx, iter.Val())
		}
	})
	_, token, err := apikeys.NewStore(f.rdb, prefix).Create(context.Background(), apikeys.Spec{Name: "shared",
		Studies: []string{"ONC-301"}, Roles: []string{apikeys.RoleSubmit}, RatePerSec: 100, Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	addrs := []string{freeAddr(t), freeAddr(t)}
	for _, a := range addrs {
		startIngest(t, f, env, a)
	}
	var accepted, limited, other atomic.Int64
	var seq atomic.Int64
	const runFor = 3 * time.Second
	start := time.Now()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 10 * time.Second}
			for time.Since(start) < runFor {
				n := seq.Add(1)
				req, _ := http.NewRequest(http.MethodPost, "http://"+addrs[w%2]+"/v1/submissions",
					strings.NewReader(string(native(fmt.Sprintf("two-%d", n), nil))))
				req.Header.Set("Authorization", "Bearer "+token)
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					other.Add(1)
					continue
				}
				_ = resp.Body.Close()
				switch resp.StatusCode {
				case http.StatusAccepted:
					accepted.Add(1)
				case http.StatusTooManyRequests:
					limited.Add(1)
				default:
					other.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	want := 100 + 100*elapsed.Seconds()
	got := float64(accepted.Load())
	t.Logf("two gateways: %d accepted, %d limited, %d other in %s; one shared limit allows %.0f",
		accepted.Load(), limited.Load(), other.Load(), elapsed.Round(time.Millisecond), want)
	if other.Load() > 0 {
		t.Fatalf("%d answers were neither 202 nor 429", other.Load())
	}
	if limited.Load() == 0 || got < 0.85*want || got > 1.15*want {
		t.Fatalf("accepted %.0f, want %.0f ± 15%%", got, want)
	}
	if n := f.records(f.names.Submissions); n != accepted.Load() {
		t.Fatalf("%d records for %d accepted submissions", n, accepted.Load())
	}
}

// `eprostream serve` runs the gateway and the groups in one process behind
// one admin endpoint: its /metrics holds the gateway's metrics beside the
// groups', and its /readyz runs the gateway's checks (the study registry,
// the alert index) beside the groups'.
func TestServeHasOneAdminEndpointForBoth(t *testing.T) {
	f := newFixture(t)
	ch, db := testenv.ClickHouse(t)
	if err := schema.Migrate(context.Background(), ch, db, quiet); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	env := "serve-" + hex.EncodeToString(b)
	_, token, err := apikeys.NewStore(f.rdb, "eprostream:"+env+":").Create(context.Background(), apikeys.Spec{Name: "serve",
		Studies: []string{"ONC-301"}, Roles: []string{apikeys.RoleSubmit}, Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	addr, adminAddr := freeAddr(t), freeAddr(t)
	startBinary(t, f, []string{"EPRO_ENV=" + env, "ADMIN_ADDR=" + adminAddr, "CLICKHOUSE_DATABASE=" + db},
		"serve", "--listen", addr, "--state-dir", t.TempDir())
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + adminAddr + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		status, body := get("/readyz")
		if status == http.StatusOK {
			for _, check := range []string{"groups: ok", "registry: ok", "alert index: ok"} {
				if !strings.Contains(body, check) {
					t.Fatalf("/readyz lacks %q:\n%s", check, body)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not become ready: %d %s", status, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/v1/submissions", strings.NewReader(string(native("serve-1", nil))))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("submission: %d, want 202", resp.StatusCode)
	}
	status, metrics := get("/metrics")
	if status != http.StatusOK {
		t.Fatalf("/metrics: %d %s", status, metrics)
	}
	for _, name := range []string{`eprostream_gateway_requests_total{`, "eprostream_chsink_buffered_rows ", "go_goroutines "} {
		if !strings.Contains(metrics, name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
}
