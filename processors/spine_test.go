// Integration tests of the spine on the real Kafka: intake and subject run
// as real `eprostream process` processes fed by the load generator, and
// their output is checked against an oracle that shares no code with the
// rules package.
package processors_test

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"

	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/internal/kafka/consumerlag"
	"github.com/eprostream/eprostream/internal/kafka/kafkaconfig"
	"github.com/eprostream/eprostream/internal/kafka/topics"
	"github.com/eprostream/eprostream/internal/loadgen"
	"github.com/eprostream/eprostream/processors/warehouse"
)

// trial returns total records of a synthetic trial of subjects subjects.
func trial(t *testing.T, subjects, days, total int) []loadgen.Record {
	t.Helper()
	start := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -(days + 1))
	gen, err := loadgen.New(loadgen.Config{Seed: 42, Studies: 2, SitesPerStudy: 10, SubjectsPerSite: subjects / 20,
		Days: days, Start: start, AbnormalShare: 0.05, DuplicateRate: 0.02, MalformedRate: 0.01})
	if err != nil {
		t.Fatal(err)
	}
	var out []loadgen.Record
	for len(out) < total {
		r, ok := gen.Next()
		if !ok {
			break
		}
		out = append(out, r)
	}
	return out
}

// verify checks alerts, subject states and the DLQ against the oracle.
func verify(t *testing.T, s *stack, records []loadgen.Record) {
	t.Helper()
	o := newOracle()
	malformed := map[string]int{}
	for _, r := range records {
		if r.Kind == loadgen.Malformed {
			malformed[string(r.Value)]++
			continue
		}
		o.apply(*r.Submission)
	}

	keys, _ := s.alerts()
	diff(t, "alert", o.alerts, keys)
	checkAlertIndex(t, s)

	table := s.table()
	if len(table) != len(o.subjects) {
		t.Errorf("subject-table has %d subjects, want %d", len(table), len(o.subjects))
	}
	bad := 0
	for id, want := range o.subjects {
		got := table[id]
		open := map[string]int{}
		for k, c := range got.Open {
			open[k] = codecs.SeverityRank(c.Severity)
		}
		if got.Reports != want.reports || got.FirstAt != want.first || got.LastAt != want.last || fmt.Sprint(open) != fmt.Sprint(want.open) {
			if bad++; bad <= 5 {
				t.Errorf("subject %s: reports %d first %d last %d open %v; want %d %d %d %v",
					id, got.Reports, got.FirstAt, got.LastAt, open, want.reports, want.first, want.last, want.open)
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d subjects' states differ from the oracle", bad)
	}

	// A dead letter is its source record: a group that restarted before
	// committing can put one on epro-dlq twice, with the same source.
	dead, copies := map[string]int{}, 0
	for _, m := range deadLetters(s.readAll(s.names.DLQ)) {
		dead[string(m.Value)]++
	}
	if fmt.Sprint(dead) != fmt.Sprint(malformed) {
		t.Errorf("DLQ holds %d dead letters, want exactly the %d malformed records", total(dead), total(malformed))
	}
	if copies = len(s.readAll(s.names.DLQ)) - total(dead); copies > 0 {
		t.Logf("%d dead letters are on epro-dlq twice (same source record)", copies)
	}
	t.Logf("%d records: %d subjects, %d alerts, %d dead-lettered", len(records), len(o.subjects), len(o.alerts), total(malformed))
}

// deadLetters returns epro-dlq's records by dead-letter id (their source
// record), the first copy of each.
func deadLetters(msgs []*sarama.ConsumerMessage) map[string]*sarama.ConsumerMessage {
	out := map[string]*sarama.ConsumerMessage{}
	for _, m := range msgs {
		h := goka.Headers{}
		for _, rh := range m.Headers {
			h[string(rh.Key)] = rh.Value
		}
		id := warehouse.DeadLetterID(m.Topic, m.Partition, m.Offset, h)
		if _, ok := out[id]; !ok {
			out[id] = m
		}
	}
	return out
}

func total(m map[string]int) (n int) {
	for _, c := range m {
		n += c
	}
	return n
}

func diff(t *testing.T, what string, want, got map[string]bool) {
	t.Helper()
	var missing, extra []string
	for k := range want {
		if !got[k] {
			missing = append(missing, k)
		}
	}
	for k := range got {
		if !want[k] {
			extra = append(extra, k)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing)+len(extra) > 0 {
		t.Errorf("%d %ss missing (e.g. %v), %d unexpected (e.g. %v); want %d", len(missing), what, head(missing), len(extra), head(extra), len(want))
	}
}

func head(s []string) []string { return s[:min(len(s), 5)] }

func TestSpineHundredThousandSubmissions(t *testing.T) {
	s := newStack(t, 12)
	records := trial(t, 5000, 7, 100_000)
	s.produce(records)
	p := s.start("all", "--group", "all", "--schedule-interval", "0", "--state-dir", t.TempDir())
	s.waitDrained(8*time.Minute, p)
	verify(t, s, records)
	p.stop(t)
}

func TestSpineSurvivesKillOfSubjectGroup(t *testing.T) {
	s := newStack(t, 6)
	records := trial(t, 2000, 7, 40_000)
	state := t.TempDir()
	in := s.start("intake", "--group", "intake", "--state-dir", t.TempDir())
	sub := s.start("subject", "--group", "subject", "--schedule-interval", "0", "--state-dir", state)
	produced := make(chan struct{})
	go func() { s.produce(records); close(produced) }()

	// Kill -9 once the group has written part of the table.
	client, err := sarama.NewClient(s.cfg.KafkaBrokers, kafkaconfig.Sarama("spine-test", s.cfg.DialTimeout))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	deadline := time.Now().Add(3 * time.Minute)
	for written(t, client, s.names.SubjectTable) < 3000 {
		if time.Now().After(deadline) {
			t.Fatalf("the subject group wrote nothing; log:\n%s", tail(sub.log))
		}
		time.Sleep(50 * time.Millisecond)
	}
	sub.kill()
	t.Logf("killed the subject group after %d table writes", written(t, client, s.names.SubjectTable))
	<-produced
	sub = s.start("subject-restarted", "--group", "subject", "--schedule-interval", "0", "--state-dir", state)
	s.waitDrained(5*time.Minute, in, sub)
	verify(t, s, records)
	if t.Failed() {
		t.Logf("restarted subject group's log:\n%s", tail(sub.log))
	}
}

// A clean stop leaves the local table to the next run on the same state
// directory, which takes it as it is and loads only the table records
// after its stored offset: the batched writes of the local store must have
// put every value up to that offset on disk.
func TestSpineCleanRestartKeepsTheLocalTable(t *testing.T) {
	// 2 partitions of 1,000 subjects each: more than a store holds
	// pending, so batches are written while the group runs.
	s := newStack(t, 2)
	records := trial(t, 2000, 7, 30_000)
	state := t.TempDir()
	in := s.start("intake", "--group", "intake", "--state-dir", t.TempDir())
	sub := s.start("subject", "--group", "subject", "--schedule-interval", "0", "--state-dir", state)
	half := len(records) / 2
	s.produce(records[:half])
	s.waitDrained(5*time.Minute, in, sub)
	sub.stop(t)
	if _, err := os.Stat(filepath.Join(state, "clean-shutdown")); err != nil {
		t.Fatalf("no clean-stop marker after SIGTERM: %v", err)
	}
	sub = s.start("subject-restarted", "--group", "subject", "--schedule-interval", "0", "--state-dir", state)
	s.produce(records[half:])
	s.waitDrained(5*time.Minute, in, sub)
	verify(t, s, records)
	log := readLog(t, sub.log)
	if strings.Contains(log, "did not stop cleanly") {
		t.Fatalf("the clean stop was not recognised; log:\n%s", tail(sub.log))
	}
	if t.Failed() {
		t.Logf("restarted subject group's log:\n%s", tail(sub.log))
	}
}

func TestSpineTwoSubjectInstancesShareAndTakeOver(t *testing.T) {
	s := newStack(t, 6)
	records := trial(t, 2000, 7, 30_000)
	in := s.start("intake", "--group", "intake", "--state-dir", t.TempDir())
	a := s.start("subject-a", "--group", "subject", "--schedule-interval", "0", "--state-dir", t.TempDir())
	b := s.start("subject-b", "--group", "subject", "--schedule-interval", "0", "--state-dir", t.TempDir())
	half := len(records) / 2
	s.produce(records[:half])
	s.waitDrained(5*time.Minute, in, a, b)

	admin, err := sarama.NewClusterAdmin(s.cfg.KafkaBrokers, kafkaconfig.Sarama("spine-test", s.cfg.DialTimeout))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	groups, err := admin.DescribeConsumerGroups([]string{topics.Group(s.cfg.TopicPrefix, "subject")})
	if err != nil || len(groups) != 1 || len(groups[0].Members) != 2 {
		t.Fatalf("subject group members: %v (err %v); want 2 instances sharing the partitions", groups, err)
	}

	a.stop(t)
	s.produce(records[half:])
	s.waitDrained(5*time.Minute, in, b)
	verify(t, s, records)
}

// written is the number of records in topic.
func written(t *testing.T, client sarama.Client, topic string) int64 {
	n, err := consumerlag.Written(client, topic)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// checkAlertIndex checks that every alert on epro-alerts has its owner on
// epro-alert-index (the gateway's check of acknowledgements reads it).
func checkAlertIndex(t *testing.T, s *stack) {
	t.Helper()
	owners := map[string]codecs.AlertOwner{}
	for _, m := range s.readAll(s.names.AlertIndex) {
		v, err := codecs.JSON[codecs.AlertOwner]{}.Decode(m.Value)
		if err != nil {
			t.Fatalf("undecodable alert index record: %v", err)
		}
		owners[string(m.Key)] = v.(codecs.AlertOwner)
	}
	alerts := s.readAll(s.names.Alerts)
	if len(alerts) == 0 {
		t.Fatal("no alerts on epro-alerts: nothing to check the index against")
	}
	bad := 0
	for _, m := range alerts {
		v, _ := codecs.JSON[codecs.Alert]{}.Decode(m.Value)
		a := v.(codecs.Alert)
		if o, ok := owners[a.AlertID]; !ok || o.SubjectID != a.SubjectID || o.StudyID != a.StudyID || o.SiteID != a.SiteID {
			if bad++; bad <= 3 {
				t.Errorf("alert %s of %s: index record %+v (found %v)", a.AlertID, a.SubjectID, o, ok)
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d alerts without their owner on epro-alert-index", bad)
	}
}
