package admin_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/eprostream/eprostream/internal/admin"
	"github.com/eprostream/eprostream/internal/connect"
)

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Code, rec.Body.String()
}

func TestEndpoints(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	healthy := connect.Check{Name: "kafka", Run: func(context.Context) error { return nil }}
	broken := connect.Check{Name: "redis", Run: func(context.Context) error { return errors.New("connection refused") }}

	ok := mustAdmin(t, "127.0.0.1:0", []connect.Check{healthy}, log).Handler()
	if code, body := get(t, ok, "/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz = %d %q", code, body)
	}
	if code, body := get(t, ok, "/readyz"); code != 200 || body != "kafka: ok\n" {
		t.Fatalf("/readyz = %d %q", code, body)
	}
	if code, body := get(t, ok, "/metrics"); code != 200 || !strings.Contains(body, "go_goroutines") {
		t.Fatalf("/metrics = %d, no go_goroutines", code)
	}

	notReady := mustAdmin(t, "127.0.0.1:0", []connect.Check{healthy, broken}, log).Handler()
	code, body := get(t, notReady, "/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "redis: connection refused") || !strings.Contains(body, "kafka: ok") {
		t.Fatalf("/readyz = %d %q", code, body)
	}
}

func TestRunStopsWithContext(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	srv := mustAdmin(t, "127.0.0.1:0", nil, log)
	go func() { done <- srv.Run(ctx) }()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestRunReportsBusyPort(t *testing.T) {
	busy := httptest.NewServer(http.NotFoundHandler())
	defer busy.Close()
	addr := strings.TrimPrefix(busy.URL, "http://")
	err := mustAdmin(t, addr, nil, slog.New(slog.NewTextHandler(io.Discard, nil))).Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "admin: listen "+addr) {
		t.Fatalf("Run = %v", err)
	}
}

func TestMount(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	h := mustAdmin(t, "127.0.0.1:0", nil, log).
		Mount("/monitor/", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "monitor") })).Handler()
	if code, body := get(t, h, "/monitor/"); code != 200 || body != "monitor" {
		t.Fatalf("/monitor/ = %d %q", code, body)
	}
}

func mustAdmin(t *testing.T, addr string, checks []connect.Check, log *slog.Logger) *admin.Server {
	t.Helper()
	s, err := admin.New(admin.Config{Addr: addr}, admin.Deps{Registry: admin.NewRegistry(), Checks: checks, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	return s
}
