package subject_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/bsm/redislock"
	"github.com/lovoo/goka"
	"github.com/redis/go-redis/v9"

	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/internal/config"
	"github.com/eprostream/eprostream/internal/connect"
	"github.com/eprostream/eprostream/internal/kafka/kafkaconfig"
	"github.com/eprostream/eprostream/internal/testenv"

	"github.com/eprostream/eprostream/internal/kafka/topics"
	"github.com/eprostream/eprostream/processors/subject"
	"github.com/eprostream/eprostream/rules"
)

type recorder struct {
	mu   sync.Mutex
	cmds []codecs.Command
}

func (r *recorder) Emit(_ context.Context, c codecs.Command) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cmds = append(r.cmds, c)
	return nil
}

// scheduleStack is a test's own topics (3 partitions) and Redis prefix.
func scheduleStack(t *testing.T) (config.Config, *redis.Client, string, topics.Names) {
	t.Helper()
	cfg := testenv.Kafka(t)
	rdb, prefix := testenv.Redis(t)
	admin, err := connect.KafkaAdmin(cfg, "schedule-test")
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := topics.Migrate(context.Background(), admin, topics.Catalogue(cfg.TopicPrefix, 3, 1), quietLog()); err != nil {
		t.Fatal(err)
	}
	return cfg, rdb, prefix, topics.NewNames(cfg.TopicPrefix)
}

// Two schedulers over the real subject-table share one Redis lock: in one
// interval exactly one of them sweeps, and it asks only about the subject
// that has been silent longer than the rules allow.
func TestSchedulersShareOneSweepPerInterval(t *testing.T) {
	cfg, rdb, prefix, names := scheduleStack(t)
	log := quietLog()
	now := time.Now().UTC()
	states := map[string]int64{
		"S-SILENT": now.Add(-80 * time.Hour).Unix(),
		"S-RECENT": now.Add(-1 * time.Hour).Unix(),
		"S-NEVER":  0,
	}
	producer, err := sarama.NewSyncProducer(cfg.KafkaBrokers, kafkaconfig.Sarama("schedule-test", cfg.DialTimeout))
	if err != nil {
		t.Fatal(err)
	}
	for id, last := range states {
		b, _ := json.Marshal(codecs.SubjectState{V: 1, StudyID: "ONC-301", SubjectID: id, LastAt: last})
		if _, _, err := producer.SendMessage(&sarama.ProducerMessage{Topic: names.SubjectTable, Key: sarama.StringEncoder(id), Value: sarama.ByteEncoder(b)}); err != nil {
			t.Fatal(err)
		}
	}
	producer.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sender := &recorder{}
	var scheds []*subject.Scheduler
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		view, err := goka.NewView(cfg.KafkaBrokers, goka.Table(names.SubjectTable), subject.StateCodec{},
			kafkaconfig.ViewOptions(cfg.Kafka(), "schedule-test", t.TempDir(), log)...)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() { defer wg.Done(); _ = view.Run(ctx) }()
		sched, err := subject.NewScheduler(subject.ScheduleConfig{LockKey: prefix + "lock:schedule", Interval: time.Minute},
			subject.ScheduleDeps{View: view, Sender: sender, Locker: redislock.New(rdb), Rules: rules.NewRegistry(), Log: log})
		if err != nil {
			t.Fatal(err)
		}
		scheds = append(scheds, sched)
	}
	defer wg.Wait()
	defer cancel()
	for _, s := range scheds {
		deadline := time.Now().Add(30 * time.Second)
		for !s.View().Recovered() {
			if time.Now().After(deadline) {
				t.Fatal("view did not recover")
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	total := 0
	for _, s := range scheds {
		n, err := s.Sweep(ctx)
		if err != nil {
			t.Fatal(err)
		}
		total += n
	}
	if total != 1 || len(sender.cmds) != 1 {
		t.Fatalf("%d checks sent by the two schedulers, want 1: %+v", total, sender.cmds)
	}
	c := sender.cmds[0]
	if c.SubjectID != "S-SILENT" || c.Kind != codecs.CommandCheckSchedule || c.Validate() != nil {
		t.Fatalf("command %+v", c)
	}
	if ttl := rdb.PTTL(ctx, prefix+"lock:schedule").Val(); ttl <= 0 || ttl > time.Minute {
		t.Fatalf("the sweep lock must be held for the interval, TTL %v", ttl)
	}
}

func TestNewSchedulerDefaultsAndRefusals(t *testing.T) {
	if _, err := subject.NewScheduler(subject.ScheduleConfig{}, subject.ScheduleDeps{}); err == nil {
		t.Fatal("NewScheduler without a LockKey succeeded")
	}
	if _, err := subject.NewScheduler(subject.ScheduleConfig{LockKey: "k"}, subject.ScheduleDeps{}); err == nil {
		t.Fatal("NewScheduler without View, Sender and Locker succeeded")
	}
}

// fakeRoster is an in-memory roster.
type fakeRoster map[string]codecs.Enrolment

func (f fakeRoster) Enrolment(s string) (codecs.Enrolment, bool, error) {
	e, ok := f[s]
	return e, ok, nil
}
func (f fakeRoster) Each(fn func(codecs.Enrolment) bool) error {
	for _, e := range f {
		if !fn(e) {
			break
		}
	}
	return nil
}

// With the registry's roster the sweep also asks about an enrolled subject
// that never reported (its silence counts from enrolment), and no longer
// about a withdrawn one.
func TestSweepCoversEnrolledSubjectsWhoNeverReport(t *testing.T) {
	cfg, rdb, prefix, names := scheduleStack(t)
	log := quietLog()
	enrolled := time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)
	sweepAt := enrolled.Add(4 * 24 * time.Hour)
	producer, err := sarama.NewSyncProducer(cfg.KafkaBrokers, kafkaconfig.Sarama("schedule-test", cfg.DialTimeout))
	if err != nil {
		t.Fatal(err)
	}
	for id, last := range map[string]time.Time{"S-REPORTED": enrolled.Add(time.Hour), "S-WITHDRAWN": enrolled.Add(time.Hour)} {
		b, _ := json.Marshal(codecs.SubjectState{V: 1, StudyID: "ONC-301", SubjectID: id, LastAt: last.Unix()})
		if _, _, err := producer.SendMessage(&sarama.ProducerMessage{Topic: names.SubjectTable, Key: sarama.StringEncoder(id), Value: sarama.ByteEncoder(b)}); err != nil {
			t.Fatal(err)
		}
	}
	producer.Close()
	roster := fakeRoster{
		"S-NEVER":     {SubjectID: "S-NEVER", StudyID: "ONC-301", SiteID: "SITE-012", Status: codecs.EnrolmentActive, EnrolledAt: enrolled},
		"S-NEW":       {SubjectID: "S-NEW", StudyID: "ONC-301", SiteID: "SITE-012", Status: codecs.EnrolmentActive, EnrolledAt: sweepAt.Add(-time.Hour)},
		"S-REPORTED":  {SubjectID: "S-REPORTED", StudyID: "ONC-301", SiteID: "SITE-012", Status: codecs.EnrolmentActive, EnrolledAt: enrolled},
		"S-WITHDRAWN": {SubjectID: "S-WITHDRAWN", StudyID: "ONC-301", SiteID: "SITE-012", Status: codecs.EnrolmentWithdrawn, EnrolledAt: enrolled},
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	view, err := goka.NewView(cfg.KafkaBrokers, goka.Table(names.SubjectTable), subject.StateCodec{},
		kafkaconfig.ViewOptions(cfg.Kafka(), "schedule-test", t.TempDir(), log)...)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- view.Run(ctx) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(30 * time.Second)
	for !view.Recovered() {
		if time.Now().After(deadline) {
			t.Fatal("view did not recover")
		}
		time.Sleep(50 * time.Millisecond)
	}
	sender := &recorder{}
	sched, err := subject.NewScheduler(subject.ScheduleConfig{LockKey: prefix + "lock:schedule", Interval: time.Minute},
		subject.ScheduleDeps{View: view, Sender: sender, Locker: redislock.New(rdb), Roster: roster, Log: log,
			Now: func() time.Time { return sweepAt }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sched.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	got := map[string]codecs.Command{}
	for _, c := range sender.cmds {
		got[c.SubjectID] = c
	}
	if len(got) != 2 {
		t.Fatalf("checks for %v, want S-REPORTED and S-NEVER only", got)
	}
	never, ok := got["S-NEVER"]
	if !ok || never.EnrolledAt == nil || !never.EnrolledAt.Equal(enrolled) || never.SiteID != "SITE-012" || never.Validate() != nil {
		t.Fatalf("the never-reported subject's check: %+v", never)
	}
	if _, ok := got["S-REPORTED"]; !ok {
		t.Fatal("the silent reporting subject was not asked about")
	}
}
