//go:build secure

// The secured tier: `make test` runs these against the stack that
// `DEVSTACK_SECURE=1 bash devstack/stack.sh up` starts (Kafka over
// SASL_SSL with SCRAM, Redis over TLS with an ACL user, ClickHouse on its
// secure port with a password), with the client settings `stack.sh env`
// prints in the environment.
package processors_test

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eprostream/eprostream/internal/loadgen"
	"github.com/eprostream/eprostream/internal/redis/apikeys"
	"github.com/eprostream/eprostream/internal/testenv"
)

// secured fails the test unless the environment is the secured stack's.
func secured(t *testing.T) {
	t.Helper()
	for _, v := range []string{"KAFKA_SASL_MECHANISM", "KAFKA_TLS_CA_FILE", "REDIS_TLS_CA_FILE", "REDIS_USERNAME", "CLICKHOUSE_TLS_CA_FILE"} {
		if os.Getenv(v) == "" {
			t.Fatalf("%s is not set: run the secured tier through `make test` (or with the environment of DEVSTACK_SECURE=1 bash devstack/stack.sh env)", v)
		}
	}
}

// secrets are the passwords the secured stack's environment configures.
func secrets(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, v := range []string{"KAFKA_SASL_PASSWORD", "REDIS_PASSWORD", "CLICKHOUSE_PASSWORD"} {
		b, err := os.ReadFile(os.Getenv(v + "_FILE"))
		if err != nil || len(b) < 8 {
			t.Fatalf("%s_FILE: %v (%d bytes): the secured stack's passwords are read from files", v, err, len(b))
		}
		out[v] = strings.TrimSpace(string(b))
	}
	return out
}

// A submission goes through every secured hop: HTTPS to the gateway, Kafka
// over SASL_SSL, the groups, ClickHouse over TLS; no configured secret
// shows in any log.
func TestSecureSubmissionThroughEveryHop(t *testing.T) {
	secured(t)
	pass := secrets(t)
	s := newStack(t, 3)
	var rec loadgen.Record
	for _, r := range trial(t, 20, 2, 200) {
		if r.Kind == loadgen.Valid && r.FHIR == nil {
			rec = r
			break
		}
	}
	if rec.Submission == nil {
		t.Fatal("the trial holds no valid native record")
	}
	rdb, _ := testenv.Redis(t) // over TLS, as the ACL user
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	env := "sec-" + hex.EncodeToString(b)
	_, token, err := apikeys.NewStore(rdb, "eprostream:"+env+":").Create(context.Background(), apikeys.Spec{Name: "secure-tier",
		Studies: []string{rec.Submission.StudyID}, Roles: []string{apikeys.RoleSubmit}, RatePerSec: 100, Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	trust := x509.NewCertPool()
	trust.AddCert(testenv.CertificatePair(t, dir, 1, time.Now()))
	addr := freePort(t)
	ingest := s.startCommand("ingest", []string{"EPRO_ENV=" + env,
		"TLS_CERT_FILE=" + filepath.Join(dir, "tls.crt"), "TLS_KEY_FILE=" + filepath.Join(dir, "tls.key")}, "ingest", "--listen", addr)
	all := s.start("all", "--group", "all", "--schedule-interval", "0", "--state-dir", t.TempDir())

	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: trust}}}
	status, body := 0, ""
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if !strings.Contains(readLog(t, ingest.log), "study registry loaded") {
			continue
		}
		req, _ := http.NewRequest(http.MethodPost, "https://"+addr+"/v1/submissions", strings.NewReader(string(rec.Value)))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			body = err.Error()
			continue
		}
		raw, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		status, body = resp.StatusCode, string(raw)
		if status != http.StatusServiceUnavailable {
			break
		}
	}
	if status != http.StatusAccepted {
		t.Fatalf("POST /v1/submissions over HTTPS: %d %s; ingest log:\n%s", status, body, tail(ingest.log))
	}

	var stored uint64
	for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline) && stored == 0; time.Sleep(500 * time.Millisecond) {
		stored = s.count("SELECT count() FROM {db}.submissions WHERE message_id = ?", rec.MessageID)
	}
	if stored != 1 {
		t.Fatalf("the submission is in ClickHouse %d times, want once; process log:\n%s", stored, tail(all.log))
	}
	all.stop(t)
	ingest.stop(t)
	for _, p := range []*proc{ingest, all} {
		logged := readLog(t, p.log)
		if logged == "" {
			t.Fatalf("%s wrote no log: the secret check would see nothing", p.log)
		}
		for name, secret := range pass {
			if strings.Contains(logged, secret) {
				t.Errorf("%s's log holds the value of %s", filepath.Base(p.log), name)
			}
		}
	}
	t.Logf("submission %s: HTTPS → Kafka (SASL_SSL, %s) → ClickHouse (TLS), stored once", rec.MessageID, os.Getenv("KAFKA_SASL_MECHANISM"))
}

// A wrong password or an untrusted certificate stops a process at start
// with a message that names the service, and never the secret.
func TestSecureRefusesAWrongPasswordOrAnUntrustedCertificate(t *testing.T) {
	secured(t)
	pass := secrets(t)
	other := t.TempDir()
	testenv.CertificatePair(t, other, 7, time.Now()) // a CA nobody's certificate leads to
	untrusted := filepath.Join(other, "tls.crt")
	const wrong = "not-the-password-0123456789"
	for _, c := range []struct {
		name    string
		env     map[string]string
		args    []string
		service string
		says    string
	}{
		{"kafka password", map[string]string{"KAFKA_SASL_PASSWORD": wrong}, []string{"process", "--group", "intake"}, "kafka", "SASL Authentication failed"},
		{"kafka certificate", map[string]string{"KAFKA_TLS_CA_FILE": untrusted}, []string{"process", "--group", "intake"}, "kafka", "certificate"},
		{"redis password", map[string]string{"REDIS_PASSWORD": wrong}, []string{"ingest", "--listen", "127.0.0.1:0"}, "redis", "WRONGPASS"},
		{"redis certificate", map[string]string{"REDIS_TLS_CA_FILE": untrusted}, []string{"ingest", "--listen", "127.0.0.1:0"}, "redis", "certificate"},
		{"clickhouse password", map[string]string{"CLICKHOUSE_PASSWORD": wrong}, []string{"process", "--group", "warehouse"}, "clickhouse", "password"},
		{"clickhouse certificate", map[string]string{"CLICKHOUSE_TLS_CA_FILE": untrusted}, []string{"process", "--group", "warehouse"}, "clickhouse", "certificate"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, testenv.Binary(t), append(c.args, "--state-dir", t.TempDir())...)
			if c.args[0] == "ingest" {
				cmd = exec.CommandContext(ctx, testenv.Binary(t), c.args...)
			}
			cmd.Env = withEnv(c.env, "ADMIN_ADDR=", "TOPIC_PREFIX=refuse-"+strings.ReplaceAll(c.name, " ", "-")+".")
			out, err := cmd.CombinedOutput()
			if ctx.Err() != nil {
				t.Fatalf("%v did not stop within a minute: a %s is waited for instead of refused; output:\n%s", c.args, c.name, out)
			}
			if err == nil {
				t.Fatalf("%v started with a wrong %s; output:\n%s", c.args, c.name, out)
			}
			text := string(out)
			if !strings.Contains(text, "cannot start: "+c.service+":") || !strings.Contains(strings.ToLower(text), strings.ToLower(c.says)) {
				t.Errorf("the refusal does not say %q about %s:\n%s", c.says, c.service, text)
			}
			for name, secret := range pass {
				if strings.Contains(text, secret) {
					t.Errorf("the output holds the value of %s", name)
				}
			}
			if strings.Contains(text, wrong) {
				t.Error("the output holds the wrong password it was given")
			}
		})
	}

	help, err := exec.Command(testenv.Binary(t), "process", "--help").CombinedOutput()
	if err != nil || !strings.Contains(string(help), "kafka-sasl-password") {
		t.Fatalf("process --help: %v\n%s", err, help)
	}
	for name, secret := range pass {
		if strings.Contains(string(help), secret) {
			t.Errorf("--help shows the value of %s", name)
		}
	}
}

// withEnv is the process environment with set's variables replaced (and
// their _FILE twins dropped), and extra added.
func withEnv(set map[string]string, extra ...string) []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := set[k]; ok {
			continue
		}
		if _, ok := set[strings.TrimSuffix(k, "_FILE")]; ok && strings.HasSuffix(k, "_FILE") {
			continue
		}
		out = append(out, kv)
	}
	for k, v := range set {
		out = append(out, fmt.Sprintf("%s=%s", k, v))
	}
	return append(out, extra...)
}
