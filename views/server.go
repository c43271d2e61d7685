package views

import (
	"context"
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

	"github.com/eprostream/eprostream/internal/redis/apikeys"
	"golang.org/x/sync/errgroup"
)

//go:embed static
var static embed.FS

// Server is the read side's HTTP API: subject views, the live alert
// stream, the dashboard page and goka's monitor.
type Server struct {
	addr     string
	subjects *Subjects
	hub      *Hub
	lag      *lagMeter
	keys     *apikeys.Store
	log      *slog.Logger
	extra    []func(Route)
}

// Route adds an authenticated route: the handler sees the caller's key
// through readerOf.
type Route func(pattern string, h http.HandlerFunc)

// NewServer serves subjects and hub on addr to callers with a read key of
// keys. client reads the table's high-water marks for the staleness headers.
func NewServer(addr string, subjects *Subjects, hub *Hub, client sarama.Client, keys *apikeys.Store, log *slog.Logger) *Server {
	return &Server{addr: addr, subjects: subjects, hub: hub, keys: keys, log: log,
		lag: &lagMeter{view: subjects.view, client: client, topic: subjects.view.Topic()}}
}

// Handle adds routes of more read models (e.g. the site dashboards).
func (s *Server) Handle(register func(Route)) { s.extra = append(s.extra, register) }

// Handler routes the API. The page at / holds no data: it asks for a key
// and reads everything through the authenticated API.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	route := func(pattern string, h http.HandlerFunc) { mux.HandleFunc(pattern, s.authenticate(h)) }
	route("GET /v1/subjects/{id}", s.getSubject)
	route("GET /v1/alerts/stream", s.streamAlerts)
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
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("views: listen: %w", err)
	}
	return s.Serve(ctx, ln)
}

// Serve is Run on a listener the caller opened.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.subjects.Run(ctx) })
	g.Go(func() error { return s.hub.Run(ctx) })
	g.Go(func() error { s.lag.run(ctx, time.Second); return nil })
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 2 * time.Minute}
	g.Go(func() error {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	})
	g.Go(func() error {
		s.log.Info("views listening", "addr", ln.Addr().String())
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("views: %w", err)
		}
		return nil
	})
	return g.Wait()
}
