package gateway

import (
	"context"
	"crypto/tls"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/eapache/go-resiliency/breaker"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/eprostream/eprostream/catalog"
	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/fhir"
	"github.com/eprostream/eprostream/internal/httpauth"
	"github.com/eprostream/eprostream/internal/logging"
	"github.com/eprostream/eprostream/internal/redis/apikeys"
	"github.com/eprostream/eprostream/internal/redis/fencedlock"
	"github.com/eprostream/eprostream/internal/redis/idempotency"
	"github.com/eprostream/eprostream/internal/redis/ratelimit"
)

// Config tunes the gateway.
type Config struct {
	Addr          string // host:port to listen on
	MaxBodyBytes  int    // one submission
	MaxBatch      int    // submissions per batch
	MaxBatchBytes int
	// KafkaTimeout bounds the wait for Kafka's acknowledgement; past it the
	// answer is 503.
	KafkaTimeout time.Duration
	// After three sends failed within KafkaTimeout+BreakerPause, sends are
	// refused at once (503) for that long, then tried again.
	BreakerPause time.Duration
	LockTTL      time.Duration // plan adjustments
	// ShutdownGrace bounds the wait for in-flight requests at shutdown.
	ShutdownGrace time.Duration
	TopicPrefix   string // scopes lock names, like topics
	// NoCoalesce makes every request do its own Redis round trips instead
	// of sharing them with the requests in flight beside it (for comparison).
	NoCoalesce bool
	Catalogue  *catalog.Catalogue
	// TLS, when set, makes Serve answer HTTPS (tlsreload's Config).
	TLS *tls.Config
}

// SetDefaults fills in what is unset.
func (c *Config) SetDefaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.MaxBodyBytes, codecs.MaxSubmissionBytes)
	def(&c.MaxBatch, 500)
	def(&c.MaxBatchBytes, 8<<20)
	defDur(&c.KafkaTimeout, 5*time.Second)
	defDur(&c.BreakerPause, 2*time.Second)
	defDur(&c.LockTTL, 10*time.Second)
	defDur(&c.ShutdownGrace, 15*time.Second)
	if c.Catalogue == nil {
		c.Catalogue, _ = catalog.Load("")
	}
}

// Validate says what is wrong with c.
func (c Config) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		errs = append(errs, fmt.Errorf("listen address %q: want host:port", c.Addr))
	}
	if c.MaxBodyBytes > codecs.MaxSubmissionBytes {
		errs = append(errs, fmt.Errorf("max body %d is above the submission limit %d", c.MaxBodyBytes, codecs.MaxSubmissionBytes))
	}
	if c.MaxBatch > 10_000 {
		errs = append(errs, fmt.Errorf("max batch %d is above 10000", c.MaxBatch))
	}
	if len(errs) > 0 {
		return fmt.Errorf("gateway: %w", errors.Join(errs...))
	}
	return nil
}

// Deps are the gateway's connections. Limiter and Idempotency may be nil
// (no limits, no replay), for benchmarks that measure their cost.
type Deps struct {
	Keys        *apikeys.Store
	Limiter     *ratelimit.Limiter
	Idempotency *idempotency.Store
	Locks       *fencedlock.Locker
	Producer    Producer
	Commands    CommandSender
	// Roster and Enrolments are the study registry: every submission and
	// command is checked against the subject's enrolment (Roster), and
	// enrolments are written through Enrolments.
	Roster     Roster
	Enrolments EnrolmentSender
	// Alerts is the alert index (epro-alert-index, written by the subject
	// group): an acknowledgement must name its alert's own subject.
	Alerts AlertIndex
	// Questionnaires and QuestionnaireSender keep the FHIR Questionnaires
	// studies add (epro-questionnaires); both nil: the catalogue's only.
	Questionnaires      QuestionnaireView
	QuestionnaireSender QuestionnaireSender
	Log                 *slog.Logger
	Registry            prometheus.Registerer
	Now                 func() time.Time
}

// Gateway serves the ingest API. Handler is safe for concurrent use.
type Gateway struct {
	cfg         Config
	deps        Deps
	log         *slog.Logger
	guard       *httpauth.Guard
	registrar   catalog.Registrar
	breaker     *breaker.Breaker
	metrics     *metrics
	batch       redisBatchers
	completions *completer
	fhir        *fhir.Mapper    // the catalogue's forms and the added ones
	added       *questionnaires // nil: none can be added
	now         func() time.Time
}

// New returns a gateway; cfg's unset fields get their defaults.
func New(cfg Config, deps Deps) (*Gateway, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Keys == nil || deps.Locks == nil || deps.Producer == nil || deps.Commands == nil || deps.Roster == nil || deps.Enrolments == nil || deps.Alerts == nil {
		return nil, errors.New("gateway: Keys, Locks, Producer, Commands, Roster, Enrolments and Alerts are required")
	}
	deps.Log = logging.OrDiscard(deps.Log)
	now := deps.Now
	if now == nil {
		now = time.Now
	}
	guard, err := httpauth.New(httpauth.Config{}, httpauth.Deps{Keys: deps.Keys, Fail: fail, Log: deps.Log})
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	m, err := newMetrics(deps.Registry)
	if err != nil {
		return nil, err
	}
	g := &Gateway{cfg: cfg, deps: deps, log: deps.Log, guard: guard, breaker: newBreaker(cfg.KafkaTimeout, cfg.BreakerPause),
		metrics: m, batch: newBatchers(deps), now: now}
	g.registrar = catalog.Registrar{Roster: deps.Roster, Sender: deps.Enrolments, Locks: deps.Locks,
		LockPrefix: cfg.TopicPrefix, LockTTL: cfg.LockTTL}
	if deps.Idempotency != nil {
		g.completions = newCompleter(g)
	}
	g.fhir = cfg.Catalogue.FHIR()
	if (deps.Questionnaires == nil) != (deps.QuestionnaireSender == nil) {
		return nil, errors.New("gateway: Questionnaires and QuestionnaireSender go together")
	}
	if deps.Questionnaires != nil {
		g.added = &questionnaires{view: deps.Questionnaires, set: cfg.Catalogue.Instruments(),
			own: map[string]codecs.QuestionnaireRecord{}, compiled: map[string]compiledForm{}}
		g.fhir = &fhir.Mapper{Library: g.fhir.Library.WithAdded(g.added), Uses: g.fhir.Uses, SubjectSystem: g.fhir.SubjectSystem}
	}
	return g, nil
}

// Handler routes the API.
func (g *Gateway) Handler() http.Handler {
	mux := http.NewServeMux()
	route := func(pattern string, h http.HandlerFunc) { mux.Handle(pattern, g.instrument(pattern, h)) }
	route("POST /v1/submissions", g.guard.Require(apikeys.RoleSubmit, g.postSubmission))
	route("POST /v1/submissions:batch", g.guard.Require(apikeys.RoleSubmit, g.postBatch))
	route("POST /v1/subjects/{id}/plan", g.guard.Require(apikeys.RoleOperate, g.postPlan))
	route("POST /v1/alerts/{id}/ack", g.guard.Require(apikeys.RoleOperate, g.postAck))
	route("POST /v1/subjects", g.guard.Require(apikeys.RoleOperate, g.postSubjects))
	route("POST /v1/subjects/{id}/transfer", g.guard.Require(apikeys.RoleOperate, g.postTransfer))
	route("POST /v1/subjects/{id}/withdraw", g.guard.Require(apikeys.RoleOperate, g.postWithdraw))
	fhirRoute := func(pattern string, h http.HandlerFunc) { mux.Handle(pattern, fhirAPI(g.instrument(pattern, h))) }
	fhirRoute("POST /fhir/QuestionnaireResponse", g.guard.Require(apikeys.RoleSubmit, g.postFHIRResource(fhir.TypeQuestionnaireResponse)))
	fhirRoute("POST /fhir/Observation", g.guard.Require(apikeys.RoleSubmit, g.postFHIRResource(fhir.TypeObservation)))
	fhirRoute("POST /fhir", g.guard.Require(apikeys.RoleSubmit, g.postFHIRBundle))
	fhirRoute("PUT /fhir/Questionnaire/{id}", g.guard.Require(apikeys.RoleOperate, g.putQuestionnaire))
	fhirRoute("GET /fhir/Questionnaire/{id}", g.guard.Require(apikeys.RoleSubmit, g.getQuestionnaire))
	fhirRoute("GET /fhir/metadata", func(w http.ResponseWriter, r *http.Request) { writeFHIR(w, http.StatusOK, fhir.Capability("1")) })
	fhirRoute("/fhir/", func(w http.ResponseWriter, r *http.Request) {
		fail(w, http.StatusNotFound, "no such FHIR endpoint: "+r.Method+" "+codecs.QuoteID(r.URL.Path)+"; see GET /fhir/metadata")
	})
	route("GET /openapi.json", serveOpenAPI)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fail(w, http.StatusNotFound, "no such endpoint: "+r.Method+" "+codecs.QuoteID(r.URL.Path)+"; see /openapi.json")
	})
	return mux
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (g *Gateway) instrument(route string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(sw, r)
		g.metrics.requests.WithLabelValues(route, strconv.Itoa(sw.status)).Inc()
		g.metrics.latency.WithLabelValues(route).Observe(time.Since(start).Seconds())
	})
}

// Run serves until ctx ends, then stops accepting, lets in-flight requests
// finish (at most ShutdownGrace) and returns. The caller closes the
// producer afterwards, which flushes it.
func (g *Gateway) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", g.cfg.Addr)
	if err != nil {
		return fmt.Errorf("gateway: listen: %w", err)
	}
	return g.Serve(ctx, ln)
}

// Serve is Run on a listener the caller opened.
func (g *Gateway) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: g.Handler(), ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second,
		IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10}
	scheme := "http"
	if g.cfg.TLS != nil {
		ln, scheme = tls.NewListener(ln, g.cfg.TLS), "https"
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	g.log.Info("gateway listening", "addr", ln.Addr().String(), "scheme", scheme)
	select {
	case err := <-errc:
		return fmt.Errorf("gateway: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), g.cfg.ShutdownGrace)
	defer cancel()
	err := srv.Shutdown(sctx)
	g.Close()
	if err != nil {
		return fmt.Errorf("gateway: shutdown: %w", err)
	}
	g.log.Info("gateway stopped; in-flight requests finished")
	return nil
}

// Close stores the idempotency outcomes still queued. Serve calls it; call
// it yourself when serving Handler some other way.
func (g *Gateway) Close() {
	if g.completions != nil {
		g.completions.close()
		g.completions = nil
	}
}
