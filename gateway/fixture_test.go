package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/lovoo/goka"
	"github.com/redis/go-redis/v9"

	"github.com/eprostream/eprostream/catalog"
	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/emitters"
	"github.com/eprostream/eprostream/gateway"
	"github.com/eprostream/eprostream/internal/config"
	"github.com/eprostream/eprostream/internal/connect"
	"github.com/eprostream/eprostream/internal/kafka/kafkaconfig"
	"github.com/eprostream/eprostream/internal/kafka/keyview"
	"github.com/eprostream/eprostream/internal/kafka/topics"
	"github.com/eprostream/eprostream/internal/redis/apikeys"
	"github.com/eprostream/eprostream/internal/redis/fencedlock"
	"github.com/eprostream/eprostream/internal/redis/idempotency"
	"github.com/eprostream/eprostream/internal/redis/ratelimit"
	"github.com/eprostream/eprostream/internal/testenv"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

const studies = `
studies:
  - id: ONC-301
    sites: [SITE-001, SITE-012]
  - id: CAR-200
    sites: [SITE-001]
  - id: REQ-100
    sites: [SITE-001, SITE-002]
    enrollment: required
`

// fixture is one gateway on the real Kafka and Redis, in its own topic
// prefix and Redis key prefix, with keys for the usual callers.
type fixture struct {
	t         *testing.T
	cfg       config.Config
	names     topics.Names
	rdb       *redis.Client // the test's own client
	fast      *redis.Client // the gateway's
	prefix    string
	keys      *apikeys.Store
	locks     *fencedlock.Locker
	srv       *httptest.Server
	gw        *gateway.Gateway
	producer  gateway.Producer
	router    routers.Router
	catalogue *catalog.Catalogue // the gateway's
	roster    *catalog.Roster
	alerts    *keyview.View[codecs.AlertOwner]
	gcfg      gateway.Config
	deps      gateway.Deps

	submit, operate, all, other string // tokens: ONC-301 submit, ONC-301 operate, * submit, CAR-200 submit
}

type option func(*fixture, *gateway.Config, *gateway.Deps)

func newFixture(t *testing.T, opts ...option) *fixture {
	t.Helper()
	f := &fixture{t: t, cfg: testenv.KafkaTopics(t, 3)}
	f.rdb, f.prefix = testenv.Redis(t)
	f.names = topics.NewNames(f.cfg.TopicPrefix)
	subs, err := emitters.NewSubmissionEmitter(f.cfg.Emitters(), emitters.Deps{Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	cmds, err := emitters.NewCommandEmitter(f.cfg.Emitters(), emitters.Deps{Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	enrols, err := emitters.NewEnrolmentEmitter(f.cfg.Emitters(), emitters.Deps{Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = subs.Close(); _ = cmds.Close(); _ = enrols.Close() })
	f.roster = startRoster(t, f.cfg, "gateway-test")
	f.alerts = startAlertIndex(t, f.cfg)
	qs := startView[codecs.QuestionnaireRecord](t, f.cfg, f.names.Questionnaires, "gateway-test-questionnaires", codecs.JSON[codecs.QuestionnaireRecord]{})
	qsOut, err := emitters.NewQuestionnaireEmitter(f.cfg.Emitters(), emitters.Deps{Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = qsOut.Close() })
	cat, err := catalog.Parse([]byte(studies))
	if err != nil {
		t.Fatal(err)
	}
	fast := connect.RedisFailFast(f.cfg)
	f.fast = fast // the gateway's own client, as `eprostream ingest` makes it
	t.Cleanup(func() { _ = fast.Close() })
	f.keys = apikeys.NewStoreWith(apikeys.StoreConfig{Prefix: f.prefix, NoCache: true}, fast) // revocations show at once
	f.locks = fencedlock.New(fast, f.prefix)
	limiter, err := ratelimit.New(fast, f.prefix, ratelimit.Config{PerKey: 5000})
	if err != nil {
		t.Fatal(err)
	}
	gcfg := gateway.Config{Addr: "127.0.0.1:0", MaxBatch: 50, KafkaTimeout: 3 * time.Second, Catalogue: cat,
		TopicPrefix: f.cfg.TopicPrefix, LockTTL: 5 * time.Second}
	deps := gateway.Deps{Keys: f.keys, Limiter: limiter, Idempotency: idempotency.New(fast, f.prefix), Locks: f.locks,
		Producer: subs, Commands: cmds, Roster: f.roster, Enrolments: enrols, Alerts: f.alerts, Log: quiet,
		Questionnaires: qs, QuestionnaireSender: qsOut}
	for _, o := range opts {
		o(f, &gcfg, &deps)
	}
	f.producer, f.catalogue, f.gcfg, f.deps = deps.Producer, gcfg.Catalogue, gcfg, deps
	if f.gw, err = gateway.New(gcfg, deps); err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewServer(f.gw.Handler())
	t.Cleanup(f.srv.Close)
	f.submit = f.key("ONC-301", apikeys.RoleSubmit)
	f.operate = f.key("ONC-301", apikeys.RoleOperate)
	f.all = f.key(apikeys.AllStudies, apikeys.RoleSubmit)
	f.other = f.key("CAR-200", apikeys.RoleSubmit)
	f.router = openAPIRouter(t)
	return f
}

// twin is a second gateway process on the same Kafka topics and Redis,
// reading the roster through wrap; it answers on its own server.
func (f *fixture) twin(wrap func(gateway.Roster) gateway.Roster) *fixture {
	f.t.Helper()
	deps := f.deps
	deps.Roster = wrap(deps.Roster)
	gw, err := gateway.New(f.gcfg, deps)
	if err != nil {
		f.t.Fatal(err)
	}
	t := *f
	t.gw, t.srv, t.deps = gw, httptest.NewServer(gw.Handler()), deps
	f.t.Cleanup(t.srv.Close)
	return &t
}

func (f *fixture) key(study, role string) string {
	_, token, err := f.keys.Create(context.Background(), apikeys.Spec{Name: "test " + role, Studies: []string{study},
		Roles: []string{role}, Lifetime: time.Hour})
	if err != nil {
		f.t.Fatal(err)
	}
	return token
}

var loadOnce sync.Once
var openAPIDoc *openapi3.T

func openAPIRouter(t *testing.T) routers.Router {
	loadOnce.Do(func() {
		doc, err := openapi3.NewLoader().LoadFromData(gateway.OpenAPI)
		if err != nil {
			t.Fatalf("openapi.json does not load: %v", err)
		}
		if err := doc.Validate(context.Background()); err != nil {
			t.Fatalf("openapi.json is not a valid OpenAPI 3 document: %v", err)
		}
		openAPIDoc = doc
	})
	doc := *openAPIDoc
	doc.Servers = nil // the test server listens on a port of its own
	r, err := legacy.NewRouter(&doc)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// reply is one answer of the gateway.
type reply struct {
	status int
	header http.Header
	body   []byte
}

func (r reply) problem() gateway.Problem {
	var p gateway.Problem
	_ = json.Unmarshal(r.body, &p)
	return p
}

type request struct {
	method, path, token, contentType string
	body                             []byte
	header                           map[string]string
}

// do sends req and checks the answer against the OpenAPI document: its
// status must be documented for the route and its body must match.
func (f *fixture) do(req request) reply {
	f.t.Helper()
	if req.method == "" {
		req.method = http.MethodPost
	}
	hr, err := http.NewRequest(req.method, f.srv.URL+req.path, bytes.NewReader(req.body))
	if err != nil {
		f.t.Fatal(err)
	}
	if req.token != "" {
		hr.Header.Set("Authorization", "Bearer "+req.token)
	}
	if req.contentType != "" {
		hr.Header.Set("Content-Type", req.contentType)
	}
	for k, v := range req.header {
		hr.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		f.t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	f.checkSpec(hr, resp, body)
	return reply{status: resp.StatusCode, header: resp.Header, body: body}
}

func (f *fixture) checkSpec(hr *http.Request, resp *http.Response, body []byte) {
	f.t.Helper()
	route, params, err := f.router.FindRoute(hr)
	if err != nil {
		if resp.StatusCode != http.StatusNotFound {
			f.t.Errorf("%s %s is not in openapi.json: %v", hr.Method, hr.URL.Path, err)
		}
		return
	}
	in := &openapi3filter.RequestValidationInput{Request: hr, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode,
		Header: resp.Header, Body: io.NopCloser(bytes.NewReader(body)),
		Options: &openapi3filter.Options{IncludeResponseStatus: true}}
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		f.t.Errorf("%s %s answered %d, which openapi.json does not describe: %v\n%s", hr.Method, hr.URL.Path, resp.StatusCode, err, body)
	}
}

// records returns the number of records on topic.
func (f *fixture) records(topic string) int64 {
	f.t.Helper()
	client, err := sarama.NewClient(f.cfg.KafkaBrokers, kafkaconfig.Sarama("gateway-test", f.cfg.DialTimeout))
	if err != nil {
		f.t.Fatal(err)
	}
	defer client.Close()
	parts, err := client.Partitions(topic)
	if err != nil {
		f.t.Fatal(err)
	}
	var n int64
	for _, p := range parts {
		hi, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			f.t.Fatal(err)
		}
		n += hi
	}
	return n
}

// readAll returns the values on topic.
func (f *fixture) readAll(topic string) [][]byte {
	f.t.Helper()
	client, err := sarama.NewClient(f.cfg.KafkaBrokers, kafkaconfig.Sarama("gateway-test", f.cfg.DialTimeout))
	if err != nil {
		f.t.Fatal(err)
	}
	defer client.Close()
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		f.t.Fatal(err)
	}
	defer consumer.Close()
	parts, _ := client.Partitions(topic)
	var out [][]byte
	for _, p := range parts {
		hi, _ := client.GetOffset(topic, p, sarama.OffsetNewest)
		if hi == 0 {
			continue
		}
		pc, err := consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			f.t.Fatal(err)
		}
		for m := range pc.Messages() {
			out = append(out, m.Value)
			if m.Offset >= hi-1 {
				break
			}
		}
		_ = pc.Close()
	}
	return out
}

// native returns a valid native submission for ONC-301 with overrides
// applied on top (nil deletes a field).
func native(id string, over map[string]any) []byte {
	m := map[string]any{"message_id": id, "study_id": "ONC-301", "site_id": "SITE-012", "subject_id": "ONC-301-012-0042",
		"instrument": "PRO-CTCAE", "submitted_at": time.Now().UTC().Add(-time.Minute).Format(time.RFC3339),
		"items": []map[string]any{{"code": "PAIN_SEVERITY", "value": 2}}}
	for k, v := range over {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	b, _ := json.Marshal(m)
	return b
}

func fhirResponse(id string) []byte {
	return []byte(fmt.Sprintf(`{"resourceType":"QuestionnaireResponse","id":%q,"status":"completed",
	  "questionnaire":"http://loinc.org/Questionnaire/PHQ-9|1.0","authored":%q,
	  "subject":{"reference":"Patient/ONC-301-012-0042"},
	  "extension":[{"url":"https://eprostream.org/fhir/StructureDefinition/study-id","valueString":"ONC-301"},{"url":"https://eprostream.org/fhir/StructureDefinition/site-id","valueString":"SITE-012"}],
	  "item":[{"linkId":"PHQ9_1","answer":[{"valueInteger":1}]}]}`, id, time.Now().UTC().Add(-time.Minute).Format(time.RFC3339)))
}

// startRoster runs a roster of the test's enrolments until the test ends,
// and returns once it has caught up.
func startRoster(t *testing.T, cfg config.Config, client string) *catalog.Roster {
	t.Helper()
	r, err := catalog.NewRoster(catalog.RosterConfig{Topic: topics.NewNames(cfg.TopicPrefix).Enrolments, StateDir: t.TempDir(),
		ClientID: client}, catalog.RosterDeps{Kafka: cfg.Kafka(), Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	deadline := time.Now().Add(30 * time.Second)
	for !r.Recovered() {
		if time.Now().After(deadline) {
			t.Fatal("the roster did not catch up within 30 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return r
}

// startAlertIndex runs a local copy of the test's alert index until the
// test ends, and returns once it has caught up.
func startAlertIndex(t *testing.T, cfg config.Config) *keyview.View[codecs.AlertOwner] {
	t.Helper()
	return startView[codecs.AlertOwner](t, cfg, topics.NewNames(cfg.TopicPrefix).AlertIndex, "gateway-test-alerts", codecs.JSON[codecs.AlertOwner]{})
}

// startView runs a local copy of a compacted topic and waits until it has
// caught up.
func startView[T any](t *testing.T, cfg config.Config, topic, client string, codec goka.Codec) *keyview.View[T] {
	t.Helper()
	v, err := keyview.New[T](keyview.Config{Topic: topic, StateDir: t.TempDir(), ClientID: client},
		keyview.Deps{Kafka: cfg.Kafka(), Log: quiet}, codec)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- v.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	deadline := time.Now().Add(30 * time.Second)
	for !v.Recovered() {
		if time.Now().After(deadline) {
			t.Fatalf("the copy of %s did not catch up within 30 s", topic)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return v
}

// raised writes alert's index record, as the subject group does when it
// raises the alert, and waits until the gateway's copy has it.
func (f *fixture) raised(alert, study, site, subject string) {
	f.t.Helper()
	producer, err := sarama.NewSyncProducer(f.cfg.KafkaBrokers, kafkaconfig.Sarama("gateway-test-alerts", f.cfg.DialTimeout))
	if err != nil {
		f.t.Fatal(err)
	}
	defer producer.Close()
	v, _ := codecs.JSON[codecs.AlertOwner]{}.Encode(codecs.AlertOwner{V: codecs.WireVersion, AlertID: alert, StudyID: study,
		SiteID: site, SubjectID: subject, RaisedAt: time.Now().UTC()})
	if _, _, err := producer.SendMessage(&sarama.ProducerMessage{Topic: f.names.AlertIndex, Key: sarama.StringEncoder(alert),
		Value: sarama.ByteEncoder(v)}); err != nil {
		f.t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, found, _ := f.alerts.Get(alert); found {
			return
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("the alert index did not get %s within 10 s", alert)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// enrol enrols subject through the API, as an operator of study would.
func (f *fixture) enrol(subject, study, site string) {
	f.t.Helper()
	token := f.operate
	if study != "ONC-301" {
		token = f.key(study, apikeys.RoleOperate)
	}
	body, _ := json.Marshal(map[string]string{"subject_id": subject, "study_id": study, "site_id": site})
	r := f.do(request{path: "/v1/subjects", token: token, contentType: "application/json", body: body})
	if r.status != http.StatusCreated && r.status != http.StatusOK {
		f.t.Fatalf("enrol %s in %s: %d %s", subject, study, r.status, r.body)
	}
}
