// Package admin serves every long-running eprostream process's operational
// endpoints: /healthz (the process is alive), /readyz (its dependencies
// answer) and /metrics (Prometheus).
package admin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/eprostream/eprostream/internal/connect"
	"github.com/eprostream/eprostream/internal/logging"
)

// Server is the admin HTTP endpoint of one process.
type Server struct {
	addr         string
	checks       []connect.Check
	registry     *prometheus.Registry
	log          *slog.Logger
	checkTimeout time.Duration
	mounts       map[string]http.Handler
	also         []prometheus.Gatherer
}

// Also serves g's metrics on /metrics beside the registry's (another part
// of the process with a registry of its own; names must not repeat).
func (s *Server) Also(g prometheus.Gatherer) *Server {
	s.also = append(s.also, g)
	return s
}

// Mount serves h under pattern (e.g. "/monitor/" for goka's monitor).
func (s *Server) Mount(pattern string, h http.Handler) *Server {
	if s.mounts == nil {
		s.mounts = map[string]http.Handler{}
	}
	s.mounts[pattern] = h
	return s
}

// NewRegistry returns a registry with the Go runtime and process collectors,
// for the process's own metrics to join.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Config is where the admin endpoint listens.
type Config struct {
	Addr         string        // host:port
	CheckTimeout time.Duration // per /readyz check; default 3 s
}

// Deps are what the endpoint serves.
type Deps struct {
	Registry *prometheus.Registry // required: /metrics
	Checks   []connect.Check      // /readyz
	Log      *slog.Logger         // nil discards
}

// New returns a server on cfg.Addr that runs deps.Checks for /readyz.
func New(cfg Config, deps Deps) (*Server, error) {
	if cfg.CheckTimeout <= 0 {
		cfg.CheckTimeout = 3 * time.Second
	}
	if deps.Registry == nil {
		return nil, errors.New("admin: Deps.Registry is required")
	}
	return &Server{addr: cfg.Addr, checks: deps.Checks, registry: deps.Registry, log: logging.OrDiscard(deps.Log),
		checkTimeout: cfg.CheckTimeout}, nil
}

// Handler routes the admin endpoints.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", s.ready)
	// Profiles for operators, on the admin port only (never the public API's).
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	gather := prometheus.Gatherers{s.registry}
	gather = append(gather, s.also...)
	mux.Handle("GET /metrics", promhttp.HandlerFor(gather, promhttp.HandlerOpts{Registry: s.registry}))
	for pattern, h := range s.mounts {
		mux.Handle(pattern, h)
	}
	return mux
}

func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), s.checkTimeout)
	defer cancel()
	var body strings.Builder
	status := http.StatusOK
	for _, c := range s.checks {
		if err := c.Run(ctx); err != nil {
			status = http.StatusServiceUnavailable
			s.log.Warn("readiness check failed", "check", c.Name, "err", err)
			fmt.Fprintf(&body, "%s: %v\n", c.Name, err)
			continue
		}
		fmt.Fprintf(&body, "%s: ok\n", c.Name)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body.String())
}

// Run serves until ctx ends, then shuts down within 5 s.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("admin: listen %s: %w", s.addr, err)
	}
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 5 * time.Second}
	s.log.Info("admin endpoint listening", "addr", ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("admin: serve: %w", err)
	case <-ctx.Done():
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("admin: shutdown: %w", err)
		}
		return nil
	}
}
