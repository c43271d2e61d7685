package processors_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/internal/audit"
	"github.com/eprostream/eprostream/internal/connect"
	"github.com/eprostream/eprostream/internal/kafka/kafkaconfig"
	"github.com/eprostream/eprostream/internal/kafka/topics"
	"github.com/eprostream/eprostream/internal/loadgen"
	"github.com/eprostream/eprostream/internal/testenv"
	"github.com/eprostream/eprostream/processors/internal/dlq"
	"github.com/eprostream/eprostream/processors/warehouse"
)

// count runs a count query on the test's database (never with FINAL: the
// sink, not merges, must keep rows unique).
func (s *stack) count(query string, args ...any) uint64 {
	s.t.Helper()
	var n uint64
	if err := s.ch.QueryRow(context.Background(), strings.ReplaceAll(query, "{db}", s.db), args...).Scan(&n); err != nil {
		s.t.Fatalf("%s: %v", query, err)
	}
	return n
}

// rows lists table's rows by source position, for a failure's message.
func (s *stack) rows(table string) string {
	rows, err := s.ch.Query(context.Background(), "SELECT message_id, kafka_topic_id, kafka_partition, kafka_offset, toString(inserted_at) FROM "+s.db+"."+table+" ORDER BY kafka_offset")
	if err != nil {
		return err.Error()
	}
	defer rows.Close()
	var out strings.Builder
	for rows.Next() {
		var id, topicID, at string
		var partition uint16
		var offset uint64
		if err := rows.Scan(&id, &topicID, &partition, &offset, &at); err != nil {
			return err.Error()
		}
		fmt.Fprintf(&out, "  %s topic %s partition %d offset %d inserted %s\n", id, topicID, partition, offset, at)
	}
	return out.String()
}

// verifyWarehouse checks ClickHouse against the records sent and the topics.
func verifyWarehouse(t *testing.T, s *stack, records []loadgen.Record) {
	t.Helper()
	ids := map[string]bool{}
	for _, r := range records {
		if r.Kind != loadgen.Malformed {
			ids[r.MessageID] = true
		}
	}
	if n := s.count("SELECT count() FROM {db}.submissions"); n != uint64(len(ids)) {
		t.Errorf("submissions: count() = %d, want %d distinct message_ids", n, len(ids))
	}
	if n := s.count("SELECT toUInt64(count() - uniqExact(message_id)) FROM {db}.submissions"); n != 0 {
		t.Errorf("submissions: %d duplicate rows", n)
	}
	_, alertIDs := s.alerts()
	if n := s.count("SELECT count() FROM {db}.alerts"); n != uint64(len(alertIDs)) {
		t.Errorf("alerts: count() = %d, want the %d alert ids on epro-alerts", n, len(alertIDs))
	}
	var missing int
	for id := range alertIDs {
		if s.count("SELECT count() FROM {db}.alert_ids WHERE alert_id = ?", id) != 1 {
			missing++
		}
		if missing > 0 {
			break
		}
	}
	if missing > 0 {
		t.Errorf("an alert id of epro-alerts is not in ClickHouse")
	}
	dead := len(deadLetters(s.readAll(s.names.DLQ)))
	if n := s.count("SELECT count() FROM {db}.dlq_events"); n != uint64(dead) {
		t.Errorf("dlq_events: count() = %d, want the %d dead letters of epro-dlq (one per source record)", n, dead)
	}
	t.Logf("warehouse: %d submissions, %d alerts, %d dead letters", len(ids), len(alertIDs), dead)
}

func TestWarehouseWholePath200k(t *testing.T) {
	s := newStack(t, 12)
	records := trial(t, 5000, 13, 200_000)
	s.produce(records)
	p := s.start("all", "--group", "all", "--schedule-interval", "0", "--state-dir", t.TempDir())
	s.waitAll(10*time.Minute, p)
	verifyWarehouse(t, s, records)
	p.stop(t)
}

func TestWarehouseSurvivesKills(t *testing.T) {
	s := newStack(t, 6)
	records := trial(t, 2000, 14, 100_000)
	in := s.start("intake", "--group", "intake", "--state-dir", t.TempDir())
	sub := s.start("subject", "--group", "subject", "--schedule-interval", "0", "--state-dir", t.TempDir())
	args := []string{"--group", "warehouse", "--batch-rows", "5000", "--batch-delay", "200ms", "--state-dir", t.TempDir()}
	wh := s.start("warehouse", args...)
	logs := []string{wh.log}
	produced := make(chan struct{})
	go func() { s.produce(records); close(produced) }()
	rng := rand.New(rand.NewPCG(7, 7))
	last := uint64(0)
	for i := 1; i <= 3; i++ {
		// Kill while it is inserting: once it has stored more than before,
		// at a random moment within the next 2 s.
		for deadline := time.Now().Add(time.Minute); s.count("SELECT count() FROM {db}.submissions") <= last && time.Now().Before(deadline); {
			time.Sleep(100 * time.Millisecond)
		}
		time.Sleep(time.Duration(rng.IntN(2000)) * time.Millisecond)
		wh.kill()
		last = s.count("SELECT count() FROM {db}.submissions")
		t.Logf("kill %d: %d submissions in ClickHouse", i, last)
		wh = s.start(fmt.Sprintf("warehouse-%d", i), args...)
		logs = append(logs, wh.log)
	}
	<-produced
	s.waitAll(5*time.Minute, in, sub, wh)
	verifyWarehouse(t, s, records)
	// The only instance holds every partition once the killed one has left
	// the group, and then trusts its id filters (loaded from what the one
	// before stored) rather than looking every id up: the exactness above
	// must have been that mode's too. (An incarnation that joined while the
	// killed one was still a member shared the partitions at first, and
	// looked every id up.)
	sole := 0
	for _, l := range logs {
		b, err := os.ReadFile(l)
		if err != nil {
			t.Fatal(err)
		}
		if regexp.MustCompile(`clickhouse id filter loaded[^\n]*submissions`).Match(b) {
			sole++
		}
	}
	t.Logf("%d of %d incarnations inserted submissions through their id filter", sole, len(logs))
	if sole == 0 {
		t.Errorf("no incarnation loaded an id filter for submissions")
	}
}

func TestWarehouseDeadLettersPoisonAndRefusedRows(t *testing.T) {
	s := newStack(t, 3)
	p := s.start("warehouse", "--group", "warehouse", "--batch-delay", "100ms", "--state-dir", t.TempDir())
	good := func(id string, at time.Time) []byte {
		b, _ := json.Marshal(codecs.CleanSubmission{V: 1, MessageID: id, StudyID: "ONC-301", SiteID: "SITE-001",
			SubjectID: "ONC-301-001-0001", Instrument: "PRO-CTCAE", Format: "native", SubmittedAt: at, ReceivedAt: time.Now().UTC()})
		return b
	}
	producer, err := sarama.NewSyncProducer(s.cfg.KafkaBrokers, kafkaconfig.Sarama("warehouse-test", s.cfg.DialTimeout))
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	for _, v := range [][]byte{
		[]byte("not a record"), // poison: cannot be decoded
		good("m-2200", time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)), // valid JSON, but ClickHouse's DateTime ends in 2105
		good("m-ok", time.Now().UTC()),
	} {
		if _, _, err := producer.SendMessage(&sarama.ProducerMessage{Topic: s.names.Clean, Key: sarama.StringEncoder("ONC-301-001-0001"), Value: sarama.ByteEncoder(v)}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(2 * time.Minute)
	for s.count("SELECT count() FROM {db}.submissions WHERE message_id = 'm-ok'") != 1 || s.count("SELECT count() FROM {db}.dlq_events") != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the group did not store the good row and two dead letters; log:\n%s", tail(p.log))
		}
		time.Sleep(200 * time.Millisecond)
	}
	classes := map[string]string{}
	for _, m := range s.readAll(s.names.DLQ) {
		h := map[string]string{}
		for _, r := range m.Headers {
			h[string(r.Key)] = string(r.Value)
		}
		classes[h[dlq.HeaderClass]] = h[dlq.HeaderReason]
	}
	if !strings.Contains(classes[dlq.ClassDecode], "not a JSON object") || !strings.Contains(classes[dlq.ClassStore], "outside 1970-01-01..2105-12-31") {
		t.Fatalf("dead letters: %v", classes)
	}
	if n := s.count("SELECT count() FROM {db}.submissions"); n != 1 {
		t.Fatalf("submissions: %d rows, want only the good one", n)
	}
	p.stop(t)
}

// Operators' plan adjustments and acknowledgements land in
// operator_commands, once each even when sent twice; the scheduler's checks
// do not.
func TestWarehouseKeepsTheOperatorsAuditTrail(t *testing.T) {
	s := newStack(t, 3)
	p := s.start("warehouse", "--group", "warehouse", "--batch-delay", "100ms", "--state-dir", t.TempDir())
	producer, err := sarama.NewSyncProducer(s.cfg.KafkaBrokers, kafkaconfig.Sarama("warehouse-test", s.cfg.DialTimeout))
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	now := time.Now().UTC().Truncate(time.Second)
	for _, c := range []codecs.Command{
		{V: 1, CommandID: "plan:S1:7", Kind: codecs.CommandPlanAdjusted, StudyID: "ONC-301", SubjectID: "S1", At: now, Fence: 7, Plan: json.RawMessage(`{"dose_mg":50}`), By: "k1"},
		{V: 1, CommandID: "ack:a-1", Kind: codecs.CommandAlertAcknowledged, StudyID: "ONC-301", SubjectID: "S1", At: now, AlertID: "a-1", By: "k2"},
		{V: 1, CommandID: "ack:a-1", Kind: codecs.CommandAlertAcknowledged, StudyID: "ONC-301", SubjectID: "S1", At: now, AlertID: "a-1", By: "k2"},
		{V: 1, CommandID: "sched:S1:1", Kind: codecs.CommandCheckSchedule, SubjectID: "S1", At: now},
	} {
		b, _ := json.Marshal(c)
		if _, _, err := producer.SendMessage(&sarama.ProducerMessage{Topic: s.names.Commands, Key: sarama.StringEncoder(c.SubjectID), Value: sarama.ByteEncoder(b)}); err != nil {
			t.Fatal(err)
		}
	}
	s.waitGroups(2*time.Minute, map[string][]string{"warehouse": {s.names.Commands}}, p)
	if n := s.count("SELECT count() FROM {db}.operator_commands"); n != 2 {
		t.Fatalf("operator_commands: %d rows, want the plan and one acknowledgement", n)
	}
	if n := s.count("SELECT count() FROM {db}.operator_commands WHERE kind = 'alert_acknowledged' AND alert_id = 'a-1' AND by_key = 'k2'"); n != 1 {
		t.Fatalf("acknowledgement rows: %d", n)
	}
	if n := s.count("SELECT count() FROM {db}.operator_commands WHERE kind = 'plan_adjusted' AND fence = 7 AND plan = '{\"dose_mg\":50}'"); n != 1 {
		t.Fatalf("plan rows: %d", n)
	}
	p.stop(t)
}

// A record dead-lettered twice (its group restarted before committing) is
// one dead letter: dlq_events keeps one row per source record, in separate
// inserts and in one; records without source headers are told apart by
// their place on epro-dlq.
func TestWarehouseStoresADeadLetterOnce(t *testing.T) {
	s := newStack(t, 1)
	p := s.start("warehouse", "--group", "warehouse", "--batch-delay", "100ms", "--state-dir", t.TempDir())
	producer, err := sarama.NewSyncProducer(s.cfg.KafkaBrokers, kafkaconfig.Sarama("warehouse-test", s.cfg.DialTimeout))
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	send := func(offset int64, headers bool) {
		m := &sarama.ProducerMessage{Topic: s.names.DLQ, Key: sarama.StringEncoder("ONC-301-001-0001"), Value: sarama.ByteEncoder(`{"bad"`)}
		if headers {
			for k, v := range dlq.Headers(dlq.ClassDecode, "not a JSON object", "intake", s.names.Submissions, 0, offset, time.Now()) {
				m.Headers = append(m.Headers, sarama.RecordHeader{Key: []byte(k), Value: v})
			}
		}
		if _, _, err := producer.SendMessage(m); err != nil {
			t.Fatal(err)
		}
	}
	send(7, true)
	waitCount(t, s, p, "SELECT count() FROM {db}.dlq_events", 1)
	send(7, true)  // again, in a later insert
	send(8, true)  // another record
	send(8, true)  // and its copy in the same insert
	send(0, false) // two records without source headers: two dead letters
	send(0, false)
	s.waitGroups(time.Minute, map[string][]string{"warehouse": {s.names.DLQ}}, p)
	if n := len(s.readAll(s.names.DLQ)); n != 6 {
		t.Fatalf("epro-dlq holds %d records, want the 6 sent", n)
	}
	if n := s.count("SELECT count() FROM {db}.dlq_events"); n != 4 {
		t.Fatalf("dlq_events: %d rows, want 4 (source offsets 7 and 8 once each, two without headers)", n)
	}
	if n := s.count("SELECT toUInt64(uniqExact(dead_letter_id)) FROM {db}.dlq_events"); n != 4 {
		t.Fatalf("dlq_events: %d distinct dead_letter_ids, want 4", n)
	}
	p.stop(t)
}

func waitCount(t *testing.T, s *stack, p *proc, query string, want uint64) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for s.count(query) != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d, want %d; log:\n%s", query, s.count(query), want, tail(p.log))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A message_id is unique within its study: two studies' "1" are two rows,
// the same study's "1" again (another subject, or a replay) is one.
func TestWarehouseScopesMessageIDsByStudy(t *testing.T) {
	s := newStack(t, 1)
	p := s.start("warehouse", "--group", "warehouse", "--batch-delay", "100ms", "--state-dir", t.TempDir())
	producer, err := sarama.NewSyncProducer(s.cfg.KafkaBrokers, kafkaconfig.Sarama("warehouse-test", s.cfg.DialTimeout))
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	send := func(study, subject string) {
		b, _ := json.Marshal(codecs.CleanSubmission{V: 1, MessageID: "1", StudyID: study, SiteID: "SITE-001",
			SubjectID: subject, Instrument: "PRO-CTCAE", Format: "native", SubmittedAt: time.Now().UTC(), ReceivedAt: time.Now().UTC()})
		if _, _, err := producer.SendMessage(&sarama.ProducerMessage{Topic: s.names.Clean, Key: sarama.StringEncoder(subject), Value: sarama.ByteEncoder(b)}); err != nil {
			t.Fatal(err)
		}
	}
	send("ONC-301", "ONC-301-001-0001")
	waitCount(t, s, p, "SELECT count() FROM {db}.submissions", 1)
	send("CAR-200", "CAR-200-001-0001") // another study's own "1"
	send("ONC-301", "ONC-301-001-0002") // the same study's "1" again
	s.waitGroups(time.Minute, map[string][]string{"warehouse": {s.names.Clean}}, p)
	if n := s.count("SELECT count() FROM {db}.submissions"); n != 2 {
		t.Fatalf("submissions: %d rows, want 2 (ONC-301's and CAR-200's message 1)", n)
	}
	if n := s.count("SELECT count() FROM {db}.submissions WHERE study_id = 'CAR-200' AND message_id = '1'"); n != 1 {
		t.Fatalf("CAR-200's message 1: %d rows, want 1", n)
	}
	if n := s.count("SELECT count() FROM {db}.submissions WHERE subject_id = 'ONC-301-001-0001'"); n != 1 {
		t.Fatalf("ONC-301's first message 1 is not the one kept: %d rows", n)
	}
	p.stop(t)
}

// A topic deleted and created again under its old name starts its offsets
// at 0 again; the warehouse's offset guard reads the highest stored offset
// per topic ID, so the new topic's rows are stored, not skipped as if they
// were the old topic's rows at those offsets.
func TestWarehouseStoresARecreatedTopicsRows(t *testing.T) {
	s := newStack(t, 1)
	producer, err := sarama.NewSyncProducer(s.cfg.KafkaBrokers, kafkaconfig.Sarama("warehouse-test", s.cfg.DialTimeout))
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	send := func(ids ...string) {
		for _, id := range ids {
			b, _ := json.Marshal(codecs.CleanSubmission{V: 1, MessageID: id, StudyID: "ONC-301", SiteID: "SITE-001",
				SubjectID: "ONC-301-001-0001", Instrument: "PRO-CTCAE", Format: "native", SubmittedAt: time.Now().UTC(), ReceivedAt: time.Now().UTC()})
			if _, _, err := producer.SendMessage(&sarama.ProducerMessage{Topic: s.names.Clean, Key: sarama.StringEncoder("ONC-301-001-0001"), Value: sarama.ByteEncoder(b)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	topicID := func() string {
		client, err := sarama.NewClient(s.cfg.KafkaBrokers, kafkaconfig.Sarama("warehouse-test-ids", s.cfg.DialTimeout))
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close()
		// A topic just created may not be in every broker's metadata yet.
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			ids, err := topics.IDs(client, s.names.Clean)
			if err == nil {
				return ids[s.names.Clean]
			}
			if time.Now().After(deadline) {
				t.Fatal(err)
			}
			_ = client.RefreshMetadata(s.names.Clean)
		}
	}
	oldID := topicID()
	send("old-0", "old-1", "old-2", "old-3", "old-4") // offsets 0..4
	p := s.startWithEnv("warehouse", []string{"LOG_LEVEL=debug"}, "--group", "warehouse", "--batch-delay", "100ms", "--state-dir", t.TempDir())
	waitCount(t, s, p, "SELECT count() FROM {db}.submissions", 5)
	p.stop(t)
	if n := s.count("SELECT count() FROM {db}.submissions WHERE kafka_topic_id = ?", oldID); n != 5 {
		var lines []string
		for _, l := range strings.Split(readLog(t, p.log), "\n") {
			if regexp.MustCompile(`clickhouse insert|generation|claims|restart|revoked|level=(WARN|ERROR)|starting`).MatchString(l) {
				lines = append(lines, l)
			}
		}
		t.Fatalf("%d rows carry the topic's ID %s, want 5; rows:\n%s\nthe warehouse's inserts and rebalances:\n%s",
			n, oldID, s.rows("submissions"), strings.Join(lines, "\n"))
	}

	admin, err := connect.KafkaAdmin(s.cfg, "warehouse-test")
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := admin.DeleteTopic(s.names.Clean); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		err := admin.CreateTopic(s.names.Clean, &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1}, false)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("create %s again: %v", s.names.Clean, err)
		}
		time.Sleep(200 * time.Millisecond) // the deletion is still under way
	}
	newID := topicID()
	if newID == oldID || newID == "" {
		t.Fatalf("the recreated topic's ID is %q, the old one's %q: want a new ID", newID, oldID)
	}
	send("new-0", "new-1", "new-2") // offsets 0..2 again, below the old topic's 4
	p = s.start("warehouse", "--group", "warehouse", "--batch-delay", "100ms", "--state-dir", t.TempDir())
	s.waitGroups(time.Minute, map[string][]string{"warehouse": {s.names.Clean}}, p)
	if n := s.count("SELECT count() FROM {db}.submissions WHERE kafka_topic_id = ?", newID); n != 3 {
		t.Fatalf("%d rows of the recreated topic stored, want its 3; log:\n%s", n, tail(p.log))
	}
	if n := s.count("SELECT count() FROM {db}.submissions"); n != 8 {
		t.Fatalf("submissions: %d rows, want 8 (5 of the old topic, 3 of the new)", n)
	}
	p.stop(t)
}

// replyDropper forwards TCP between the warehouse and ClickHouse. Once, it
// lets an INSERT and its rows reach ClickHouse but drops ClickHouse's
// answer; when stored reports the rows visible, it closes both ends, so the
// warehouse sees a failed insert that ClickHouse in fact applied.
type replyDropper struct {
	ln     net.Listener
	target string
	stored func() bool // the dropped insert's rows are in ClickHouse
	fired  atomic.Bool // an insert's answer was dropped
	seen   atomic.Bool // stored() held before the connection was closed
	wg     sync.WaitGroup
}

func newReplyDropper(t *testing.T, target string, stored func() bool) *replyDropper {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &replyDropper{ln: ln, target: target, stored: stored}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	t.Cleanup(func() { _ = ln.Close(); p.wg.Wait() })
	return p
}

func (p *replyDropper) addr() string { return p.ln.Addr().String() }

// The native protocol: the client sends the INSERT query, ClickHouse
// answers with the table's block structure, the client sends the rows and
// ClickHouse acknowledges them. The answer after the rows is what is lost.
const (
	forwarding int32 = iota
	insertSent
	structureAnswered
	dropping
)

func (p *replyDropper) serve(client net.Conn) {
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		_ = client.Close()
		return
	}
	var state atomic.Int32
	done := make(chan struct{})
	go func() { // ClickHouse → client
		defer close(done)
		buf := make([]byte, 64<<10)
		for {
			n, err := server.Read(buf)
			if n > 0 {
				state.CompareAndSwap(insertSent, structureAnswered)
				if state.Load() != dropping {
					if _, werr := client.Write(buf[:n]); werr != nil {
						return
					}
				}
			}
			if err != nil {
				_ = client.Close()
				return
			}
		}
	}()
	buf := make([]byte, 64<<10)
	for { // client → ClickHouse
		n, err := client.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			if state.Load() == forwarding && bytes.Contains(chunk, []byte("INSERT INTO")) && p.fired.CompareAndSwap(false, true) {
				state.Store(insertSent)
			}
			if state.CompareAndSwap(structureAnswered, dropping) {
				p.wg.Add(1)
				go func() {
					defer p.wg.Done()
					deadline := time.Now().Add(20 * time.Second)
					for !p.stored() && time.Now().Before(deadline) {
						time.Sleep(50 * time.Millisecond)
					}
					p.seen.Store(p.stored())
					_ = client.Close()
					_ = server.Close()
				}()
			}
			if _, werr := server.Write(chunk); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	_ = server.Close()
	<-done
}

// ClickHouse applies an insert but its answer never reaches the warehouse
// (a TCP proxy drops it and closes the connection): the retry finds the
// rows in the id index and the table holds every submission once.
func TestWarehouseInsertWhoseAnswerIsLostIsStoredOnce(t *testing.T) {
	s := newStack(t, 1)
	const n = 300
	proxy := newReplyDropper(t, s.cfg.ClickHouseAddr, func() bool {
		rows := s.count("SELECT count() FROM {db}.submissions")
		return rows > 0 && s.count("SELECT count() FROM {db}.submission_keys") == rows
	})
	producer, err := sarama.NewSyncProducer(s.cfg.KafkaBrokers, kafkaconfig.Sarama("warehouse-test", s.cfg.DialTimeout))
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	var msgs []*sarama.ProducerMessage
	for i := range n {
		subject := fmt.Sprintf("ONC-301-001-%04d", i%20)
		b, _ := json.Marshal(codecs.CleanSubmission{V: 1, MessageID: fmt.Sprintf("lost-%d", i), StudyID: "ONC-301", SiteID: "SITE-001",
			SubjectID: subject, Instrument: "PRO-CTCAE", Format: "native", SubmittedAt: time.Now().UTC(), ReceivedAt: time.Now().UTC()})
		msgs = append(msgs, &sarama.ProducerMessage{Topic: s.names.Clean, Key: sarama.StringEncoder(subject), Value: sarama.ByteEncoder(b)})
	}
	if err := producer.SendMessages(msgs); err != nil {
		t.Fatal(err)
	}
	p := s.startWithEnv("warehouse", []string{"CLICKHOUSE_ADDR=" + proxy.addr()},
		"--group", "warehouse", "--batch-delay", "200ms", "--state-dir", t.TempDir())
	s.waitGroups(2*time.Minute, map[string][]string{"warehouse": {s.names.Clean}}, p)
	if !proxy.fired.Load() {
		t.Fatalf("no insert went through the proxy; log:\n%s", tail(p.log))
	}
	if !proxy.seen.Load() {
		t.Fatalf("ClickHouse did not store the insert whose answer was dropped; log:\n%s", tail(p.log))
	}
	if log := readLog(t, p.log); !strings.Contains(log, "clickhouse insert failed; retrying") {
		t.Fatalf("the warehouse did not see the insert fail; log:\n%s", tail(p.log))
	}
	if got := s.count("SELECT count() FROM {db}.submissions"); got != n {
		t.Fatalf("submissions: %d rows, want %d (each once)", got, n)
	}
	if got := s.count("SELECT toUInt64(uniqExact(submission_key)) FROM {db}.submissions"); got != n {
		t.Fatalf("submissions: %d distinct keys, want %d", got, n)
	}
	p.stop(t)
}

// Every operator action lands in audit_events once with its actor: the
// operator commands, the enrolment revisions and epro-audit's events, each
// sent again after it was stored; a full replay of every input (the group's offsets
// deleted) adds nothing. The analysts' queries of README's "Audit trail"
// give a subject's and a key's history.
func TestWarehouseAuditEventsOnceEach(t *testing.T) {
	s := newStack(t, 3)
	inserts := s.insertCopies("audit_events", "audit_id, action, actor, target, before, after")
	producer, err := sarama.NewSyncProducer(s.cfg.KafkaBrokers, kafkaconfig.Sarama("warehouse-test", s.cfg.DialTimeout))
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	var sent []*sarama.ProducerMessage
	send := func(topic, key string, v any) {
		b, _ := json.Marshal(v)
		m := &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(key), Value: sarama.ByteEncoder(b)}
		if _, _, err := producer.SendMessage(m); err != nil {
			t.Fatal(err)
		}
		sent = append(sent, &sarama.ProducerMessage{Topic: topic, Key: m.Key, Value: m.Value})
	}
	now := time.Now().UTC().Truncate(time.Second)
	plan := codecs.Command{V: 1, CommandID: "plan:S1:7", Kind: codecs.CommandPlanAdjusted, StudyID: "ONC-301", SubjectID: "S1", At: now, Fence: 7, Plan: json.RawMessage(`{"dose_mg":50}`), By: "k1"}
	send(s.names.Commands, "S1", plan) // in operator_commands, not in the trail: the subject group records it
	send(s.names.Audit, "S1", audit.PlanAdjusted(plan, json.RawMessage(`{"dose_mg":25}`)))
	send(s.names.Commands, "S1", codecs.Command{V: 1, CommandID: "ack:a-1", Kind: codecs.CommandAlertAcknowledged, StudyID: "ONC-301", SubjectID: "S1", At: now, AlertID: "a-1", By: "k2"})
	send(s.names.Commands, "S1", codecs.Command{V: 1, CommandID: "sched:S1:1", Kind: codecs.CommandCheckSchedule, SubjectID: "S1", At: now})
	ended := now
	for _, e := range []codecs.Enrolment{
		{V: 1, SubjectID: "S1", StudyID: "ONC-301", SiteID: "SITE-001", Status: codecs.EnrolmentActive, EnrolledAt: now, Revision: 1, By: "k1", At: now},
		{V: 1, SubjectID: "S1", StudyID: "ONC-301", SiteID: "SITE-002", Status: codecs.EnrolmentActive, EnrolledAt: now, Revision: 2, By: "cli:nurse", At: now,
			Previous: &codecs.EnrolmentBinding{StudyID: "ONC-301", SiteID: "SITE-001", Status: codecs.EnrolmentActive, Revision: 1}},
		{V: 1, SubjectID: "S1", StudyID: "ONC-301", SiteID: "SITE-002", Status: codecs.EnrolmentWithdrawn, EnrolledAt: now, EndedAt: &ended, Revision: 3, By: "k1", At: now,
			Previous: &codecs.EnrolmentBinding{StudyID: "ONC-301", SiteID: "SITE-002", Status: codecs.EnrolmentActive, Revision: 2}},
	} {
		send(s.names.Enrolments, e.SubjectID, e)
	}
	send(s.names.Audit, "k1", codecs.AuditEvent{V: 1, AuditID: "apikey.create:k1", Action: codecs.AuditKeyCreate, Actor: "cli:ops", At: now, StudyID: "ONC-301", Target: "k1", After: json.RawMessage(`{"id":"k1"}`)})
	form := codecs.QuestionnaireRecord{V: 1, StudyID: "ONC-301", ID: "q1", URL: "https://forms.example.org/q1", Resource: json.RawMessage(`{"resourceType":"Questionnaire"}`), Revision: 1, By: "k1", At: now}
	send(s.names.Questionnaires, "id:q1", form) // one put: keyed by its id and by its url
	send(s.names.Questionnaires, "url:"+form.URL, form)
	send(s.names.Audit, "w1", codecs.AuditEvent{V: 1, AuditID: "webhook.create:w1", Action: codecs.AuditWebhookCreate, Actor: "key:k1", At: now, StudyID: "ONC-301", Target: "w1"})

	want := map[string]string{ // action|actor|target → 1 row each
		"plan.adjust|key:k1|S1": "", "alert.acknowledge|key:k2|a-1": "",
		"enrolment.enrol|key:k1|S1": "", "enrolment.transfer|cli:nurse|S1": "", "enrolment.withdraw|key:k1|S1": "",
		"apikey.create|cli:ops|k1": "", "webhook.create|key:k1|w1": "", "questionnaire.put|key:k1|q1": "",
	}
	inputs := map[string][]string{"warehouse": {s.names.Commands, s.names.Enrolments, s.names.Audit, s.names.Questionnaires}}
	check := func(when string) {
		t.Helper()
		if n := s.count("SELECT count() FROM {db}." + inserts); n != uint64(len(want)) {
			t.Fatalf("%s: %d rows were inserted into audit_events, want %d (one per action); rows:\n%s", when, n, len(want), s.auditRows())
		}
		for k := range want {
			f := strings.Split(k, "|")
			if n := s.count("SELECT count() FROM {db}."+inserts+" WHERE action = ? AND actor = ? AND target = ?", f[0], f[1], f[2]); n != 1 {
				t.Errorf("%s: %s by %s on %s: %d rows, want 1", when, f[0], f[1], f[2], n)
			}
		}
	}
	p := s.start("warehouse", "--group", "warehouse", "--batch-delay", "100ms", "--state-dir", t.TempDir())
	s.waitGroups(2*time.Minute, inputs, p)
	check("after each action")
	// Every row carries its topic's Kafka ID, which keys its offset guard
	// (the check above saw the rows: there are some).
	if n := s.count("SELECT count() FROM {db}.audit_events WHERE kafka_topic_id = ''"); n != 0 {
		t.Errorf("%d audit rows without their topic's Kafka ID; rows:\n%s", n, s.auditRows())
	}
	// Before and after: the binding a transfer replaced and the plan an
	// adjustment replaced.
	for _, c := range []struct{ action, before, after string }{
		{"enrolment.transfer", `{"study_id":"ONC-301","site_id":"SITE-001","status":"active","revision":1}`, `"site_id":"SITE-002"`},
		{"enrolment.withdraw", `{"study_id":"ONC-301","site_id":"SITE-002","status":"active","revision":2}`, `"status":"withdrawn"`},
		{"enrolment.enrol", ``, `"site_id":"SITE-001"`},
		{"plan.adjust", `{"dose_mg":25}`, `{"dose_mg":50}`},
	} {
		q := "SELECT count() FROM {db}." + inserts + " WHERE action = ? AND before = ? AND position(after, ?) > 0 AND position(after, 'previous') = 0"
		if n := s.count(q, c.action, c.before, c.after); n != 1 {
			t.Errorf("%s: %d rows with before %s and after holding %s; rows:\n%s", c.action, n, c.before, c.after, s.auditRows())
		}
	}
	// Each sent again once the first is stored: the retries of a client
	// that did not hear back, at new offsets.
	for _, m := range sent {
		if _, _, err := producer.SendMessage(m); err != nil {
			t.Fatal(err)
		}
	}
	s.waitGroups(2*time.Minute, inputs, p)
	check("after each action sent again")
	p.stop(t)

	admin, err := connect.KafkaAdmin(s.cfg, "warehouse-test")
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := admin.DeleteConsumerGroup(topics.Group(s.cfg.TopicPrefix, warehouse.Group)); err != nil {
		t.Fatal(err)
	}
	p = s.start("warehouse", "--group", "warehouse", "--batch-delay", "100ms", "--state-dir", t.TempDir())
	s.waitGroups(2*time.Minute, inputs, p)
	check("after a replay of every input")
	p.stop(t)

	// The analysts' queries: a subject's history, and a key's.
	if n := s.count("SELECT count() FROM {db}.audit_events FINAL WHERE subject_id = 'S1'"); n != 5 {
		t.Errorf("subject S1's history: %d events, want its 3 enrolment revisions, the plan and the acknowledgement", n)
	}
	if n := s.count("SELECT count() FROM {db}.audit_events FINAL WHERE actor = 'key:k1' OR target = 'k1'"); n != 6 {
		t.Errorf("key k1's history: %d events, want what it did (plan, enrolment, withdrawal, webhook, questionnaire) and its creation", n)
	}
	if n := s.count("SELECT count() FROM {db}.audit_events WHERE after LIKE '%value%' OR after LIKE '%items%'"); n != 0 {
		t.Errorf("%d audit rows hold a report's items", n)
	}
}

// insertCopies copies every row inserted into table, as it is inserted,
// into a plain MergeTree that never folds rows, and returns its name: the
// warehouse's tables are ReplacingMergeTree, whose background merges fold
// a row stored twice into one and would hide a duplicate from a count.
func (s *stack) insertCopies(table, columns string) string {
	s.t.Helper()
	name := table + "_inserts"
	q := fmt.Sprintf("CREATE MATERIALIZED VIEW %[1]s.%[2]s ENGINE = MergeTree ORDER BY tuple() AS SELECT %[3]s FROM %[1]s.%[4]s",
		s.db, name, columns, table)
	if err := s.ch.Exec(context.Background(), q); err != nil {
		s.t.Fatalf("copy the inserts of %s: %v", table, err)
	}
	return name
}

// auditRows lists audit_events for a failure's message.
func (s *stack) auditRows() string {
	rows, err := s.ch.Query(context.Background(), "SELECT audit_id, action, actor, target, kafka_topic, kafka_offset FROM "+s.db+".audit_events ORDER BY audit_id")
	if err != nil {
		return err.Error()
	}
	defer rows.Close()
	var out strings.Builder
	for rows.Next() {
		var id, action, actor, target, topic string
		var offset uint64
		if err := rows.Scan(&id, &action, &actor, &target, &topic, &offset); err != nil {
			return err.Error()
		}
		fmt.Fprintf(&out, "  %s %s %s %s (%s@%d)\n", id, action, actor, target, topic, offset)
	}
	return out.String()
}

// The command line's API key and webhook actions are recorded, each once,
// with the operating-system user as actor, and a key's record in the trail
// holds neither its token nor its hash.
func TestOperatorCLIActionsAreAudited(t *testing.T) {
	s := newStack(t, 3)
	inserts := s.insertCopies("audit_events", "audit_id, action, actor, target, before, after")
	p := s.start("warehouse", "--group", "warehouse", "--batch-delay", "100ms", "--state-dir", t.TempDir())
	name := "audit-" + s.cfg.TopicPrefix[len(s.cfg.TopicPrefix)-9:len(s.cfg.TopicPrefix)-1]
	env := append(os.Environ(), "TOPIC_PREFIX="+s.cfg.TopicPrefix, "ADMIN_ADDR=", "EPRO_ENV="+name)
	t.Cleanup(func() {
		rdb := connect.Redis(s.cfg)
		defer rdb.Close()
		ctx := context.Background()
		for it := rdb.Scan(ctx, 0, "eprostream:"+name+":*", 1000).Iterator(); it.Next(ctx); {
			rdb.Del(ctx, it.Val())
		}
	})
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(testenv.Binary(t), args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("eprostream %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	idOf := func(out string) string {
		m := regexp.MustCompile(`(?m)^id:\s+(\S+)`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no id in:\n%s", out)
		}
		return m[1]
	}
	created := run("apikey", "create", "--name", "audit-test", "--study", "ONC-301", "--role", "read")
	key := idOf(created)
	token := regexp.MustCompile(`(?m)^token:\s+(\S+)`).FindStringSubmatch(created)[1]
	run("apikey", "revoke", key)
	hook := idOf(run("webhook", "create", "--name", "audit-test", "--url", "http://127.0.0.1:9/hook", "--study", "ONC-301"))
	run("webhook", "delete", hook)
	// The subject group records the rule sets it loaded, once however
	// often it starts.
	for range 2 {
		before := s.stored(s.names.Audit)
		sub := s.start("subject", "--group", "subject", "--schedule-interval", "0", "--state-dir", t.TempDir())
		for deadline := time.Now().Add(time.Minute); s.stored(s.names.Audit) <= before; time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("the subject group wrote no rules.loaded event; log:\n%s", tail(sub.log))
			}
		}
		sub.stop(t)
	}
	s.waitGroups(2*time.Minute, map[string][]string{"warehouse": {s.names.Audit}}, p)
	if n := s.count("SELECT count() FROM {db}." + inserts + " WHERE action = 'rules.loaded' AND actor = 'group:subject' AND target LIKE 'default@v%'"); n != 1 {
		t.Errorf("the default rule set loaded by the subject group: %d rows after two starts, want 1; rows:\n%s", n, s.auditRows())
	}
	actor := audit.CLI()
	for _, c := range []struct{ action, target string }{
		{codecs.AuditKeyCreate, key}, {codecs.AuditKeyRevoke, key}, {codecs.AuditWebhookCreate, hook}, {codecs.AuditWebhookDelete, hook},
	} {
		if n := s.count("SELECT count() FROM {db}."+inserts+" WHERE action = ? AND target = ? AND actor = ?", c.action, c.target, actor); n != 1 {
			t.Errorf("%s of %s by %s: %d rows, want 1; rows:\n%s", c.action, c.target, actor, n, s.auditRows())
		}
	}
	if n := s.count("SELECT count() FROM {db}."+inserts+" WHERE target = ? AND (after LIKE '%hash%' OR after LIKE ? OR before LIKE '%hash%')", key, "%"+token[len(token)-12:]+"%"); n != 0 {
		t.Errorf("%d audit rows of the key hold its hash or its token", n)
	}
	p.stop(t)
}
