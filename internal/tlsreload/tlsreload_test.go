package tlsreload

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eprostream/eprostream/internal/testenv"
)

func pair(t *testing.T, dir string, n int64, at time.Time) *x509.Certificate {
	return testenv.CertificatePair(t, dir, n, at)
}

func write(t *testing.T, path string, b []byte, at time.Time) { testenv.WriteFile(t, path, b, at) }

func TestANewPairIsServedWithoutDroppingConnections(t *testing.T) {
	dir := t.TempDir()
	base := time.Now().Add(-time.Minute)
	trust := x509.NewCertPool()
	trust.AddCert(pair(t, dir, 1, base))
	c, err := Load(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go c.ReloadOnSIGHUP(ctx)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok")) })}
	go func() { _ = srv.Serve(tls.NewListener(ln, c.Config())) }()
	defer srv.Close()
	url := "https://" + ln.Addr().String() + "/"
	client := func() *http.Client {
		return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: trust}}}
	}
	serial := func(cl *http.Client) int64 {
		t.Helper()
		resp, err := cl.Get(url)
		if err != nil {
			t.Fatalf("GET: %v", err)
		}
		_, _ = io.Copy(io.Discard, resp.Body) // read to the end, so the connection is kept
		_ = resp.Body.Close()
		return resp.TLS.PeerCertificates[0].SerialNumber.Int64()
	}

	kept := client()
	if got := serial(kept); got != 1 {
		t.Fatalf("first connection: serial %d, want 1", got)
	}
	trust.AddCert(pair(t, dir, 2, base.Add(10*time.Second)))
	time.Sleep(checkEvery + 100*time.Millisecond) // the next handshake looks at the files again
	if got := serial(client()); got != 2 {
		t.Errorf("a new connection after the files changed: serial %d, want 2", got)
	}
	if got := serial(kept); got != 1 {
		t.Errorf("the open connection: serial %d, want still 1 (the same connection, not a new one)", got)
	}

	trust.AddCert(pair(t, dir, 3, base.Add(10*time.Second))) // same times: only SIGHUP tells
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	got := int64(0)
	for ; time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if got = serial(client()); got == 3 {
			break
		}
	}
	if got != 3 {
		t.Errorf("after SIGHUP: serial %d, want 3", got)
	}

	write(t, filepath.Join(dir, "tls.crt"), []byte("not a certificate"), base.Add(20*time.Second))
	time.Sleep(checkEvery + 100*time.Millisecond)
	if got := serial(client()); got != 3 {
		t.Errorf("after a broken certificate file: serial %d, want the previous 3", got)
	}
}

func TestABadPairFailsAtStartNamingTheFiles(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "tls.crt"), []byte("x"), time.Now())
	write(t, filepath.Join(dir, "tls.key"), []byte("y"), time.Now())
	_, err := Load(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"), nil)
	if err == nil || !strings.Contains(err.Error(), "tls.crt") {
		t.Errorf("Load = %v, want an error naming the certificate file", err)
	}
	if _, err := Load(filepath.Join(dir, "tls.crt"), "", nil); err == nil || !strings.Contains(err.Error(), "--tls-key") {
		t.Errorf("Load without a key = %v", err)
	}
}
