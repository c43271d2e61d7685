package gateway_test

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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
	_, logPath := runBinary(t, f, env, args...)
	return logPath
}

// runBinary is startBinary that also returns the process.
func runBinary(t *testing.T, f *fixture, env []string, args ...string) (*exec.Cmd, string) {
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
	return cmd, logPath
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

// TestIngestServesHTTPSAndReloadsItsCertificate runs `eprostream ingest`
// with a certificate pair: it answers HTTPS, takes a new pair on SIGHUP
// without a restart, and refuses to start with a pair that does not load,
// naming the file.
func TestIngestServesHTTPSAndReloadsItsCertificate(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	at := time.Now().Add(-time.Minute)
	trust := x509.NewCertPool()
	trust.AddCert(testenv.CertificatePair(t, dir, 1, at))
	addr := freeAddr(t)
	cmd, _ := runBinary(t, f, []string{"EPRO_ENV=tls-" + strconv.FormatInt(time.Now().UnixNano()%1e9, 36), "ADMIN_ADDR=",
		"TLS_CERT_FILE=" + filepath.Join(dir, "tls.crt"), "TLS_KEY_FILE=" + filepath.Join(dir, "tls.key")}, "ingest", "--listen", addr)
	serial := func() (int64, error) {
		cl := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: trust}}}
		resp, err := cl.Get("https://" + addr + "/fhir/metadata")
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return 0, fmt.Errorf("status %d", resp.StatusCode)
		}
		return resp.TLS.PeerCertificates[0].SerialNumber.Int64(), nil
	}
	var got int64
	var err error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if got, err = serial(); err == nil {
			break
		}
	}
	if got != 1 {
		t.Fatalf("HTTPS: serial %d (%v), want 1", got, err)
	}
	if resp, err := http.Get("http://" + addr + "/fhir/metadata"); err == nil && resp.StatusCode == http.StatusOK {
		_ = resp.Body.Close()
		t.Error("plain HTTP was answered on the HTTPS port")
	}

	trust.AddCert(testenv.CertificatePair(t, dir, 2, at)) // the same file times: only SIGHUP tells
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if got, err = serial(); got == 2 {
			break
		}
	}
	if got != 2 {
		t.Fatalf("after SIGHUP: serial %d (%v), want 2", got, err)
	}

	bad := filepath.Join(t.TempDir(), "broken.crt")
	testenv.WriteFile(t, bad, []byte("not a certificate"), at)
	out, err := exec.Command(testenv.Binary(t), "ingest", "--listen", freeAddr(t), "--tls-cert", bad, "--tls-key", filepath.Join(dir, "tls.key")).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "broken.crt") {
		t.Errorf("ingest with a broken certificate: %v, output does not name the file:\n%s", err, out)
	}
}
