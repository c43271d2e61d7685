package subject_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"

	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/emitters"
	"github.com/eprostream/eprostream/internal/config"
	"github.com/eprostream/eprostream/internal/kafka/kafkaconfig"
	"github.com/eprostream/eprostream/internal/kafka/topics"
	"github.com/eprostream/eprostream/internal/redis/fencedlock"
	"github.com/eprostream/eprostream/internal/testenv"
	"github.com/eprostream/eprostream/processors/internal/dlq"
	"github.com/eprostream/eprostream/processors/subject"
	"github.com/eprostream/eprostream/rules"
)

// Writer A takes the subject's lock, stalls past its TTL, and sends its
// plan after writer B took the lock and sent its own. The subject group
// keeps B's plan and dead-letters A's command as stale.
func TestLateWriterAfterLockExpiryIsFencedOff(t *testing.T) {
	cfg := testenv.KafkaTopics(t, 3)
	rdb, prefix := testenv.Redis(t)
	log := quietLog()
	names := topics.NewNames(cfg.TopicPrefix)
	dir := t.TempDir()
	proc, err := subject.New(subject.Config{Brokers: cfg.KafkaBrokers, Names: names}, subject.Deps{Rules: rules.NewRegistry(), Log: log},
		kafkaconfig.GokaOptions(cfg.Kafka(), "fence-test", filepath.Join(dir, "proc"), log)...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- proc.Run(ctx) }()
	defer func() { cancel(); <-done }()

	sender, err := emitters.NewCommandEmitter(cfg.Emitters(), emitters.Deps{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	defer sender.Close()
	locks := fencedlock.New(rdb, prefix)
	plan := func(lk *fencedlock.Lock, dose int) codecs.Command {
		p, _ := json.Marshal(map[string]int{"dose_mg": dose})
		return codecs.Command{CommandID: "plan-" + string(rune('0'+dose/100)), Kind: codecs.CommandPlanAdjusted,
			StudyID: "ONC-301", SubjectID: "S-1", At: time.Now().UTC(), Fence: lk.Fence, Plan: p}
	}

	a, err := locks.Obtain(ctx, "plan:S-1", 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond) // A stalls (a GC pause, a slow read) past its TTL
	b, err := locks.Obtain(ctx, "plan:S-1", 5*time.Second)
	if err != nil {
		t.Fatalf("B could not take the expired lock: %v", err)
	}
	if err := sender.Emit(ctx, plan(b, 200)); err != nil {
		t.Fatal(err)
	}
	_ = b.Release(ctx)
	if err := sender.Emit(ctx, plan(a, 100)); err != nil { // A wakes up and writes
		t.Fatal(err)
	}

	reason := waitDeadLetter(t, cfg, names.DLQ)
	if !strings.Contains(reason, "stale fencing token") {
		t.Fatalf("dead-letter reason %q", reason)
	}
	view, err := goka.NewView(cfg.KafkaBrokers, goka.Table(names.SubjectTable), subject.StateCodec{},
		kafkaconfig.ViewOptions(cfg.Kafka(), "fence-test-view", filepath.Join(dir, "view"), log)...)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = view.Run(ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for !view.Recovered() && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	v, err := view.Get("S-1")
	if err != nil || v == nil {
		t.Fatalf("state: %v %v", v, err)
	}
	st := v.(codecs.SubjectState)
	if st.Fence != b.Fence || string(st.Plan) != `{"dose_mg":200}` {
		t.Fatalf("plan %s with fence %d; want B's plan with fence %d", st.Plan, st.Fence, b.Fence)
	}
}

// waitDeadLetter returns the reason of the first record on the DLQ.
func waitDeadLetter(t *testing.T, cfg config.Config, topic string) string {
	t.Helper()
	consumer, err := sarama.NewConsumer(cfg.KafkaBrokers, kafkaconfig.Sarama("fence-test-dlq", cfg.DialTimeout))
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	parts, err := consumer.Partitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, len(parts))
	for _, p := range parts {
		pc, err := consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		go func() {
			for m := range pc.Messages() {
				for _, h := range m.Headers {
					if string(h.Key) == dlq.HeaderReason {
						got <- string(h.Value)
					}
				}
			}
		}()
	}
	select {
	case r := <-got:
		return r
	case <-time.After(60 * time.Second):
		t.Fatal("no dead letter within 60 s")
		return ""
	}
}
