package views

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/eprostream/eprostream/codecs"
)

// noClient stands in for Kafka: these tests feed the hub's records directly.
type noClient struct{ sarama.Client }

func record(t *testing.T, topic string, offset int64, v any) *sarama.ConsumerMessage {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return &sarama.ConsumerMessage{Topic: topic, Offset: offset, Value: b}
}

// A subject's alerts and acknowledgements are answered from the ring's
// indexes, which shed what the ring sheds: nothing older than RingSize
// events, repeats once, the latest copy kept while a later one is in the
// ring.
func TestSubjectAlertsFollowTheRing(t *testing.T) {
	h, err := NewHub(HubConfig{Topic: "alerts", Commands: "commands", RingSize: 4}, HubDeps{Client: noClient{}})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	alert := func(id, subject string) codecs.Alert {
		return codecs.Alert{V: 1, AlertID: id, RuleID: "fever", Severity: "warning", StudyID: "S", SiteID: "SITE-1", SubjectID: subject, RaisedAt: now}
	}
	ids := func(subject string) string {
		var out []string
		for _, a := range h.SubjectAlerts(subject) {
			s := a.AlertID
			if a.AcknowledgedAt != nil {
				s += "+ack"
			}
			out = append(out, s)
		}
		return fmt.Sprint(out)
	}
	h.publish(record(t, "alerts", 0, alert("a1", "s1")))
	h.publish(record(t, "alerts", 1, alert("a2", "s2")))
	h.publish(record(t, "alerts", 2, alert("a1", "s1"))) // a repeat (outbox re-send)
	h.publish(record(t, "commands", 0, codecs.Command{V: 1, CommandID: "ack:a1", Kind: codecs.CommandAlertAcknowledged, StudyID: "S", SubjectID: "s1", AlertID: "a1", At: now}))
	if got := ids("s1"); got != "[a1+ack]" {
		t.Fatalf("s1: %s, want a1 once, acknowledged", got)
	}
	h.publish(record(t, "alerts", 3, alert("a3", "s1"))) // sheds the first a1: its repeat stays
	if got := ids("s1"); got != "[a3 a1+ack]" {
		t.Fatalf("s1 after one shed: %s", got)
	}
	h.publish(record(t, "alerts", 4, alert("a4", "s3"))) // sheds a2
	if got := ids("s2"); got != "[]" {
		t.Fatalf("s2's alert left the ring but is still answered: %s", got)
	}
	h.publish(record(t, "alerts", 5, alert("a5", "s3"))) // sheds the repeat of a1
	h.publish(record(t, "alerts", 6, alert("a6", "s3"))) // sheds the acknowledgement
	if got := ids("s1"); got != "[a3]" {
		t.Fatalf("s1 after the ring moved on: %s", got)
	}
	held := 0
	for _, ids := range h.bySubject {
		held += len(ids)
	}
	if len(h.alerts) != 4 || len(h.acked) != 0 || len(h.bySubject) != 2 || held != 4 {
		t.Fatalf("indexes hold %d alerts, %d acknowledgements, %d subjects with %d alert events for a ring of 4",
			len(h.alerts), len(h.acked), len(h.bySubject), held)
	}
}
