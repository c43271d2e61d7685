package views

import (
	"context"
	"crypto/tls"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/IBM/sarama"
	gorilla "github.com/gorilla/mux"
	"github.com/lovoo/goka/web/monitor"

	"golang.org/x/sync/errgroup"

	"github.com/eprostream/eprostream/internal/httpauth"
	"github.com/eprostream/eprostream/internal/logging"
	"github.com/eprostream/eprostream/internal/redis/apikeys"
	"github.com/eprostream/eprostream/rules"
)

//go:embed static
var static embed.FS

// Server is the read side's HTTP API: subject views, the live alert
// stream, the dashboard page and goka's monitor.
type Server struct {
	cfg      ServerConfig
	subjects *Subjects
	hub      *Hub
	lag      *lagMeter
	guard    *httpauth.Guard
	rules    *rules.Registry
	ack      http.Handler
	log      *slog.Logger
	extra    []func(Route)
}

// ServerConfig tunes a Server.
type ServerConfig struct {
	Addr string // host:port for Run; unused by Serve and Handler
	// RecheckEvery is how often an open alert stream checks its key again;
	// default 1 s.
	RecheckEvery time.Duration
	// TLS, when set, makes Serve answer HTTPS (tlsreload's Config).
	TLS *tls.Config
}

// ServerDeps are a Server's collaborators.
type ServerDeps struct {
	Subjects *Subjects
	Hub      *Hub
	// Client reads the table's high-water marks for the staleness headers.
	Client sarama.Client
	Keys   httpauth.Authenticator
	// Rules are the studies' rule sets, whose levels the timelines draw
	// (nil: the default set for every study).
	Rules *rules.Registry
	// Acknowledge, when set, serves POST /v1/alerts/{id}/ack for the page
	// (AckProxy: the ingest API decides and sends the command); without it
	// the page offers no acknowledge control.
	Acknowledge http.Handler
	Log         *slog.Logger // nil discards
}

// Route adds an authenticated route: the handler sees the caller's key
// through httpauth.KeyOf.
type Route func(pattern string, h http.HandlerFunc)

// NewServer serves deps.Subjects and deps.Hub to callers with a read key.
func NewServer(cfg ServerConfig, deps ServerDeps) (*Server, error) {
	if deps.Subjects == nil || deps.Hub == nil || deps.Client == nil || deps.Keys == nil {
		return nil, errors.New("views: ServerDeps.Subjects, Hub, Client and Keys are required")
	}
	if cfg.RecheckEvery <= 0 {
		cfg.RecheckEvery = time.Second
	}
	log := logging.OrDiscard(deps.Log)
	guard, err := httpauth.New(httpauth.Config{QueryToken: true}, httpauth.Deps{Keys: deps.Keys, Fail: fail, Log: log})
	if err != nil {
		return nil, fmt.Errorf("views: %w", err)
	}
	if deps.Rules == nil {
		deps.Rules = rules.NewRegistry()
	}
	return &Server{cfg: cfg, subjects: deps.Subjects, hub: deps.Hub, guard: guard, log: log, rules: deps.Rules, ack: deps.Acknowledge,
		lag: &lagMeter{view: deps.Subjects.view, client: deps.Client, topic: deps.Subjects.view.Topic()}}, nil
}

// Handle adds routes of more read models (e.g. the site dashboards).
func (s *Server) Handle(register func(Route)) { s.extra = append(s.extra, register) }

// Handler routes the API. The page at / holds no data: it asks for a key
// and reads everything through the authenticated API.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	route := func(pattern string, h http.HandlerFunc) {
		mux.HandleFunc(pattern, s.guard.Require(apikeys.RoleRead, h))
	}
	route("GET /v1/subjects/{id}", s.getSubject)
	route("GET /v1/alerts/stream", s.streamAlerts)
	mux.HandleFunc("GET /v1/me", s.guard.Require(httpauth.AnyRole, s.getMe))
	if s.ack != nil {
		mux.Handle("POST /v1/alerts/{id}/ack", s.ack)
	}
	page, _ := fs.Sub(static, "static")
	mux.Handle("GET /{$}", http.FileServerFS(page))
	for _, register := range s.extra {
		register(route)
	}
	return mux
}

// Monitor is goka's monitor of the subject view, for the admin endpoint
// (operators' port, like /metrics), mounted at /monitor/.
func (s *Server) Monitor() http.Handler {
	router := gorilla.NewRouter()
	monitor.NewServer("/monitor", router).AttachView(s.subjects.view)
	return router
}

// Run fills the view and the alert ring, then serves until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("views: listen: %w", err)
	}
	return s.Serve(ctx, ln)
}

// Serve is Run on a listener the caller opened.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	g, ctx := errgroup.WithContext(ctx)
	// The view is closed only after the lag meter stopped reading its
	// statistics: goka's View.Stats races with its close.
	viewCtx, stopView := context.WithCancel(context.WithoutCancel(ctx))
	lagDone := make(chan struct{})
	g.Go(func() error { return s.subjects.Run(viewCtx) })
	g.Go(func() error { return s.hub.Run(ctx) })
	g.Go(func() error {
		defer close(lagDone)
		s.lag.run(ctx, time.Second)
		return nil
	})
	g.Go(func() error {
		select {
		case <-ctx.Done():
		case <-viewCtx.Done(): // the view stopped by itself
		}
		<-lagDone
		stopView()
		return nil
	})
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 2 * time.Minute}
	g.Go(func() error {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	})
	scheme := "http"
	if s.cfg.TLS != nil {
		ln, scheme = tls.NewListener(ln, s.cfg.TLS), "https"
	}
	g.Go(func() error {
		s.log.Info("views listening", "addr", ln.Addr().String(), "scheme", scheme)
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("views: %w", err)
		}
		return nil
	})
	return g.Wait()
}
