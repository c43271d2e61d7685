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
	log      *slog.Logger
	extra    []func(*http.ServeMux)
}

// NewServer serves subjects and hub on addr. client reads the table's
// high-water marks for the staleness headers.
func NewServer(addr string, subjects *Subjects, hub *Hub, client sarama.Client, log *slog.Logger) *Server {
	return &Server{addr: addr, subjects: subjects, hub: hub, log: log,
		lag: &lagMeter{view: subjects.view, client: client, topic: subjects.view.Topic()}}
}

// Handle adds routes of another package (e.g. cached site dashboards).
func (s *Server) Handle(register func(*http.ServeMux)) { s.extra = append(s.extra, register) }

// Handler routes the API.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/subjects/{id}", s.getSubject)
	mux.HandleFunc("GET /v1/alerts/stream", s.streamAlerts)
	page, _ := fs.Sub(static, "static")
	mux.Handle("GET /{$}", http.FileServerFS(page))
	router := gorilla.NewRouter()
	mon := monitor.NewServer("/monitor", router)
	mon.AttachView(s.subjects.view)
	mux.Handle("GET /monitor/", router)
	for _, register := range s.extra {
		register(mux)
	}
	return mux
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
