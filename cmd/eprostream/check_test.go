package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The container healthcheck: 200 is ready, anything else or no answer is
// not, with what was answered.
func TestProbeReady(t *testing.T) {
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(status)
		_, _ = w.Write([]byte(`{"groups":"groups restarting after a failure: subject"}`))
	}))
	defer srv.Close()
	ctx := context.Background()
	if err := probeReady(ctx, srv.URL+"/readyz"); err != nil {
		t.Fatalf("200: %v", err)
	}
	status = http.StatusServiceUnavailable
	if err := probeReady(ctx, srv.URL+"/readyz"); err == nil || !strings.Contains(err.Error(), "503") || !strings.Contains(err.Error(), "subject") {
		t.Fatalf("503: %v, want the status and the body", err)
	}
	srv.Close()
	if err := probeReady(ctx, srv.URL+"/readyz"); err == nil {
		t.Fatal("no server: ready")
	}
}
