// Package tlsreload serves a TLS certificate from a pair of PEM files and
// picks up a new pair without a restart: when either file changes (looked
// at, at most once a second, by the next handshake) or on SIGHUP. A
// connection keeps the certificate it was opened with, so a reload drops
// none; a pair that does not load is logged and the previous one is kept.
package tlsreload

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/eprostream/eprostream/internal/logging"
)

// checkEvery is how often a handshake looks at the files' modification times.
const checkEvery = time.Second

// Certificate is a certificate pair reloaded from its files; safe for
// concurrent use.
type Certificate struct {
	certFile, keyFile string
	log               *slog.Logger
	mu                sync.Mutex
	cur               *tls.Certificate
	certMod, keyMod   time.Time
	checked           time.Time
}

// Load reads the pair; its error names the files and what is wrong.
func Load(certFile, keyFile string, log *slog.Logger) (*Certificate, error) {
	if certFile == "" || keyFile == "" {
		return nil, errors.New("tls: both a certificate (--tls-cert) and its key (--tls-key) are needed")
	}
	c := &Certificate{certFile: certFile, keyFile: keyFile, log: logging.OrDiscard(log)}
	if err := c.Reload(); err != nil {
		return nil, err
	}
	return c, nil
}

// Reload reads the pair again; on error the previous one stays in use.
func (c *Certificate) Reload() error {
	certMod, keyMod := modTime(c.certFile), modTime(c.keyFile)
	pair, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return fmt.Errorf("tls: certificate %s with key %s: %w", c.certFile, c.keyFile, err)
	}
	c.mu.Lock()
	c.cur, c.certMod, c.keyMod = &pair, certMod, keyMod
	c.mu.Unlock()
	return nil
}

func modTime(path string) time.Time {
	fi, err := os.Stat(path)
	if err != nil {
		return time.Time{}
	}
	return fi.ModTime()
}

// GetCertificate is tls.Config.GetCertificate: the current pair, reloaded
// first when a file changed since it was read.
func (c *Certificate) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	stale := false
	if now := time.Now(); now.Sub(c.checked) >= checkEvery {
		c.checked = now
		stale = !modTime(c.certFile).Equal(c.certMod) || !modTime(c.keyFile).Equal(c.keyMod)
	}
	c.mu.Unlock()
	if stale {
		if err := c.Reload(); err != nil {
			c.log.Warn("new TLS certificate not loaded; serving the previous one", "err", err)
			c.mu.Lock()
			c.certMod, c.keyMod = modTime(c.certFile), modTime(c.keyFile) // not again until the files change again
			c.mu.Unlock()
		} else {
			c.log.Info("TLS certificate reloaded", "cert", c.certFile)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur, nil
}

// Config is a server tls.Config serving c (TLS 1.2 at least).
func (c *Certificate) Config() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: c.GetCertificate}
}

// ReloadOnSIGHUP reloads the pair on every SIGHUP until ctx ends.
func (c *Certificate) ReloadOnSIGHUP(ctx context.Context) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGHUP)
	defer signal.Stop(sig)
	for {
		select {
		case <-ctx.Done():
			return
		case <-sig:
			if err := c.Reload(); err != nil {
				c.log.Warn("SIGHUP: new TLS certificate not loaded; serving the previous one", "err", err)
				continue
			}
			c.log.Info("SIGHUP: TLS certificate reloaded", "cert", c.certFile)
		}
	}
}
