package processors_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/internal/kafka/kafkaconfig"
	"github.com/eprostream/eprostream/processors/internal/dlq"
)

// Four records of 500 invented severity-4 items for one subject, through
// raw Kafka: on epro-submissions intake dead-letters them (not items of
// PRO-CTCAE); written straight to epro-clean, bypassing intake, the
// subject group dead-letters them (over the state's item bound). The
// process stays up, every table record stays far under the producer's
// limit, and another subject of the same partition keeps getting its
// alerts, before and after.
func TestPoisonRecordsCannotStopTheGroups(t *testing.T) {
	s := newStack(t, 1) // one partition: the poisoned subject and the other share it
	p := s.start("intake", "--group", "intake", "--schedule-interval", "0", "--state-dir", t.TempDir())
	q := s.start("subject", "--group", "subject", "--schedule-interval", "0", "--state-dir", t.TempDir())
	producer, err := sarama.NewSyncProducer(s.cfg.KafkaBrokers, kafkaconfig.Sarama("poison-test", s.cfg.DialTimeout))
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	send := func(topic, key string, value []byte) {
		t.Helper()
		if _, _, err := producer.SendMessage(&sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(key), Value: sarama.ByteEncoder(value)}); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now().UTC()
	envelope := func(id, subject string, items []map[string]any) []byte {
		b, _ := json.Marshal(map[string]any{"message_id": id, "study_id": "ONC-301", "site_id": "SITE-001", "subject_id": subject,
			"instrument": "PRO-CTCAE", "submitted_at": now.Format(time.RFC3339), "items": items})
		return b
	}
	invented := func(from int) []map[string]any {
		items := make([]map[string]any, 500)
		for i := range items {
			items[i] = map[string]any{"code": fmt.Sprintf("X%d_SEVERITY", from+i), "value": 4}
		}
		return items
	}
	// Each check grades another symptom 4: an open condition is not alerted
	// again, a new one is.
	urgentFor := func(id, item string) time.Duration {
		t.Helper()
		start := time.Now()
		send(s.names.Submissions, "W-2", envelope(id, "W-2", []map[string]any{{"code": item, "value": 4}}))
		for time.Since(start) < 60*time.Second {
			for _, m := range s.readAll(s.names.Alerts) {
				var a codecs.Alert
				if json.Unmarshal(m.Value, &a) == nil && a.MessageID == id {
					return time.Since(start)
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("no alert for %s within 60 s; logs:\n%s\n%s", id, tail(p.log), tail(q.log))
		return 0
	}
	before := urgentFor("w2-before", "PAIN_SEVERITY")
	for i := range 4 {
		send(s.names.Submissions, "W-1", envelope(fmt.Sprintf("w1-raw-%d", i), "W-1", invented(i*500)))
		c := codecs.CleanSubmission{V: 1, MessageID: fmt.Sprintf("w1-clean-%d", i), StudyID: "ONC-301", SiteID: "SITE-001",
			SubjectID: "W-1", Instrument: "PRO-CTCAE", Format: "native", SubmittedAt: now, ReceivedAt: now}
		for j := range 500 {
			v := 4.0
			c.Items = append(c.Items, codecs.CleanItem{Code: fmt.Sprintf("X%d_SEVERITY", i*500+j), Num: &v})
		}
		b, _ := json.Marshal(c)
		send(s.names.Clean, "W-1", b)
	}
	during := urgentFor("w2-after", "NAUSEA_SEVERITY")
	s.waitDrained(2*time.Minute, p, q)
	classes := map[string]int{}
	for _, m := range s.readAll(s.names.DLQ) {
		for _, h := range m.Headers {
			if string(h.Key) == dlq.HeaderGroup {
				classes[strings.TrimPrefix(string(h.Value), s.names.Prefix)]++
			}
		}
	}
	if classes["intake"] != 4 || classes["subject"] != 4 {
		t.Fatalf("dead letters by group %v, want 4 from intake and 4 from subject", classes)
	}
	for key, st := range s.table() {
		b, _ := json.Marshal(st)
		if len(b) > codecs.MaxStateBytes || len(st.Items) > codecs.MaxStateItems {
			t.Fatalf("table record of %s: %d bytes, %d items", key, len(b), len(st.Items))
		}
	}
	for _, pr := range []*proc{p, q} {
		select {
		case err := <-pr.done:
			t.Fatalf("a process stopped (%v); log:\n%s", err, tail(pr.log))
		default:
		}
	}
	if !strings.Contains(tail(q.log), "processor starting") {
		t.Fatalf("the subject process log lacks its start:\n%s", tail(q.log))
	}
	t.Logf("W-2's urgent alert took %s before and %s after the poison records", before.Round(time.Millisecond), during.Round(time.Millisecond))
	p.stop(t)
	q.stop(t)
}
