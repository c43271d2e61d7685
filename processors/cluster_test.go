//go:build cluster

// The cluster tier: eprostream on a three-node Kafka cluster of the local
// stack (DEVSTACK_KAFKA_NODES=3), where the leader of the busiest partition
// is killed with -9 under HTTP load and started again. `make test` runs it
// last, alone, with -tags cluster -p 1, after starting that cluster.
package processors_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/eprostream/eprostream/codecs"
	"github.com/eprostream/eprostream/internal/connect"
	"github.com/eprostream/eprostream/internal/kafka/kafkaconfig"
	"github.com/eprostream/eprostream/internal/kafka/topics"
	"github.com/eprostream/eprostream/internal/redis/apikeys"
	"github.com/eprostream/eprostream/internal/testenv"
)

const (
	clusterLoadFor     = 60 * time.Second // HTTP load, in all
	clusterKillAfter   = 15 * time.Second // into the load, the leader is killed
	clusterDownFor     = 15 * time.Second // and started again this much later
	clusterWorkers     = 64
	clusterRate        = 300 // submissions/s offered by all workers together
	clusterSubjects    = 512
	clusterPartitions  = 6
	clusterReplication = 3
	clusterStudy       = "ONC-301"
	clusterSite        = "SITE-012"
)

const clusterHint = "run it against the three-node cluster of the local stack: " +
	"export DEVSTACK_DIR=$PWD/.devstack/cluster DEVSTACK_KAFKA_NODES=3 DEVSTACK_KAFKA_PORT=19092 DEVSTACK_KAFKA_CONTROLLER_PORT=19093; " +
	"bash devstack/stack.sh up kafka; KAFKA_BROKERS=127.0.0.1:19092,127.0.0.1:19094,127.0.0.1:19096 " +
	"go test -tags cluster -run Cluster ./processors/ (make test does all of it)"

// clusterEnv is the environment every eprostream process of the test gets,
// beyond what stack.startWithEnv sets.
type clusterEnv struct {
	s   *stack
	env []string
}

// run runs one eprostream subcommand to its end and returns its output.
func (c clusterEnv) run(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(testenv.Binary(t), args...)
	cmd.Env = append(os.Environ(), "TOPIC_PREFIX="+c.s.cfg.TopicPrefix, "ADMIN_ADDR=", "CLICKHOUSE_DATABASE="+c.s.db,
		"KAFKA_BROKERS="+strings.Join(c.s.cfg.KafkaBrokers, ","))
	cmd.Env = append(cmd.Env, c.env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("eprostream %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// ingest starts `eprostream ingest` on a free port and returns its address
// once the study registry is loaded; it is stopped with SIGTERM at cleanup.
func (c clusterEnv) ingest(t *testing.T) (addr string, logPath string) {
	t.Helper()
	addr = freeLoopback(t)
	logPath = filepath.Join(t.TempDir(), "ingest.log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(testenv.Binary(t), "ingest", "--listen", addr, "--kafka-timeout", "5s")
	cmd.Env = append(os.Environ(), "TOPIC_PREFIX="+c.s.cfg.TopicPrefix, "ADMIN_ADDR=", "LOG_LEVEL=info",
		"KAFKA_BROKERS="+strings.Join(c.s.cfg.KafkaBrokers, ","))
	cmd.Env = append(cmd.Env, c.env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); f.Close(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("ingest log %s:\n%s", logPath, tail(logPath))
		}
	})
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		select {
		case <-done:
			t.Fatalf("ingest exited at start; log:\n%s", tail(logPath))
		default:
		}
		if resp, err := http.Get("http://" + addr + "/openapi.json"); err == nil {
			_ = resp.Body.Close()
			if strings.Contains(readFileOr(logPath), "study registry loaded") {
				return addr, logPath
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("ingest on %s did not load the study registry within 60s; log:\n%s", addr, tail(logPath))
		}
	}
}

func freeLoopback(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func readFileOr(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// clusterCtl runs devstack/stack.sh VERB NODE with the cluster's DEVSTACK_*
// environment (inherited from the caller, as `make test` sets it).
func clusterCtl(verb string, node int32) (string, error) {
	out, err := exec.Command("bash", "../devstack/stack.sh", verb, strconv.Itoa(int(node))).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("stack.sh %s %d: %v\n%s", verb, node, err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

// checkReplicated asserts that every topic migrate created has
// clusterReplication replicas on each partition and min.insync.replicas=2.
func checkReplicated(t *testing.T, admin sarama.ClusterAdmin, prefix string) {
	t.Helper()
	specs := topics.Catalogue(prefix, clusterPartitions, clusterReplication)
	var names []string
	for _, s := range specs {
		names = append(names, s.Name)
	}
	meta, err := admin.DescribeTopics(names)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range meta {
		if len(m.Partitions) != clusterPartitions {
			t.Fatalf("%s: %d partitions, want %d", m.Name, len(m.Partitions), clusterPartitions)
		}
		for _, p := range m.Partitions {
			if len(p.Replicas) != clusterReplication {
				t.Fatalf("%s/%d: replicas %v, want %d", m.Name, p.ID, p.Replicas, clusterReplication)
			}
		}
		// A broker may not know a topic created a moment ago yet.
		var entries []sarama.ConfigEntry
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			entries, err = admin.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: m.Name,
				ConfigNames: []string{"min.insync.replicas"}})
			if err == nil || time.Now().After(deadline) {
				break
			}
		}
		if err != nil || len(entries) != 1 || entries[0].Value != "2" {
			t.Fatalf("%s: min.insync.replicas %+v (%v), want 2", m.Name, entries, err)
		}
	}
}

// clusterLoad is what the HTTP load saw.
type clusterLoad struct {
	mu       sync.Mutex
	accepted map[string]time.Duration // message_id -> when its 202 came, since the start
	unsure   map[string]bool          // sent, answered 5xx or not at all, never 202: may be stored
	refused  []string                 // any other answer: a failure of the test
	attempts atomic.Int64
	retries  atomic.Int64
	answers  map[int]int // status -> count, every attempt
}

// submission is a native PRO-CTCAE report; about one in eight has a
// severity of 3 or 4, which raises an alert.
func submission(rng *rand.Rand, id, subject string) []byte {
	grade := func() int {
		if rng.IntN(8) == 0 {
			return 3 + rng.IntN(2)
		}
		return rng.IntN(3)
	}
	b, _ := json.Marshal(map[string]any{"message_id": id, "study_id": clusterStudy, "site_id": clusterSite,
		"subject_id": subject, "instrument": "PRO-CTCAE", "submitted_at": time.Now().UTC().Format(time.RFC3339),
		"items": []map[string]any{{"code": "PAIN_SEVERITY", "value": grade()}, {"code": "NAUSEA_FREQUENCY", "value": grade()}}})
	return b
}

// drive sends submissions from clusterWorkers goroutines until the load
// window ends. Each worker owns its subjects and sends one at a time, so a
// subject's records reach Kafka in the order sent; a 5xx or a lost answer is
// retried with the very same bytes, as the API asks of clients.
func (l *clusterLoad) drive(addr, token string, start time.Time) {
	var wg sync.WaitGroup
	end := start.Add(clusterLoadFor)
	for w := range clusterWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 42))
			// A connection of its own: the shared default pool keeps 2 idle per
			// host, so 64 workers would reconnect on almost every request.
			client := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			tick := time.NewTicker(time.Second * clusterWorkers / clusterRate)
			defer tick.Stop()
			for seq := 0; time.Now().Before(end); seq++ {
				<-tick.C
				subject := fmt.Sprintf("ONC-301-012-%04d", w+clusterWorkers*(seq%(clusterSubjects/clusterWorkers)))
				id := fmt.Sprintf("cl-%02d-%06d", w, seq)
				l.send(client, addr, token, id, submission(rng, id, subject), start, end)
			}
		}()
	}
	wg.Wait()
}

func (l *clusterLoad) send(client *http.Client, addr, token, id string, body []byte, start, end time.Time) {
	for try := 0; ; try++ {
		if try > 0 {
			l.retries.Add(1)
		}
		l.attempts.Add(1)
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/v1/submissions", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		status := 0
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			status = resp.StatusCode
		}
		l.mu.Lock()
		l.answers[status]++
		switch {
		case status == http.StatusAccepted:
			l.accepted[id] = time.Since(start)
			delete(l.unsure, id)
			l.mu.Unlock()
			return
		case status == 0 || status >= 500:
			l.unsure[id] = true
		default:
			l.refused = append(l.refused, fmt.Sprintf("%s: %d", id, status))
			l.mu.Unlock()
			return
		}
		l.mu.Unlock()
		// Retry until the window closes (and a little after, so a record
		// in doubt at the end usually gets its answer).
		if time.Now().After(end.Add(10 * time.Second)) {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// killer waits until clusterKillAfter, kills the leader of the busiest
// partition of epro-submissions, waits until another broker leads it, and
// starts the node again clusterDownFor after the kill.
type killer struct {
	down                  atomic.Int32 // the node killed and not started again, if any
	node, newLeader       int32
	partition             int32
	killedAt, restartedAt time.Duration // since the start of the load
	movedAfter            time.Duration
}

func (k *killer) run(t *testing.T, client sarama.Client, topic string, start time.Time) {
	time.Sleep(time.Until(start.Add(clusterKillAfter)))
	parts, err := client.Partitions(topic)
	if err != nil {
		t.Errorf("partitions of %s: %v", topic, err)
		return
	}
	best := int64(-1)
	for _, p := range parts {
		if hwm, err := client.GetOffset(topic, p, sarama.OffsetNewest); err == nil && hwm > best {
			best, k.partition = hwm, p
		}
	}
	leader, err := client.Leader(topic, k.partition)
	if err != nil {
		t.Errorf("leader of %s/%d: %v", topic, k.partition, err)
		return
	}
	k.node = leader.ID() // node.id of node I is I (devstack/stack.sh)
	t.Logf("busiest partition %s/%d (%d records), leader node %d at %s", topic, k.partition, best, k.node, leader.Addr())
	out, err := clusterCtl("kill-node", k.node)
	if err != nil {
		t.Error(err)
		return
	}
	t.Log(out)
	k.down.Store(k.node)
	k.killedAt = time.Since(start)
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		_ = client.RefreshMetadata(topic)
		if b, err := client.Leader(topic, k.partition); err == nil && b.ID() != k.node {
			k.newLeader, k.movedAfter = b.ID(), time.Since(start)-k.killedAt
			break
		}
	}
	time.Sleep(time.Until(start.Add(k.killedAt + clusterDownFor)))
	k.restartedAt = time.Since(start)
	if out, err = clusterCtl("start-node", k.node); err != nil {
		t.Error(err)
		return
	}
	t.Log(out)
	k.down.Store(0)
}

// Three brokers, replication 3, min.insync.replicas 2: the leader of the
// busiest partition of epro-submissions is killed with -9 while the gateway
// takes a few hundred submissions/s, and started again 15 s later. Every
// submission answered 202 is in ClickHouse exactly once, nothing is there
// that was not sent, and the alerts are those the oracle computes from what
// Kafka holds.
func TestClusterLeaderKilledUnderLoad(t *testing.T) {
	if n, _ := strconv.Atoi(os.Getenv("DEVSTACK_KAFKA_NODES")); n < clusterReplication {
		t.Fatalf("DEVSTACK_KAFKA_NODES=%q: this test kills nodes of a cluster of at least %d; %s",
			os.Getenv("DEVSTACK_KAFKA_NODES"), clusterReplication, clusterHint)
	}
	cfg := testenv.Kafka(t)
	if len(cfg.KafkaBrokers) < clusterReplication {
		t.Fatalf("KAFKA_BROKERS=%v names fewer than %d brokers; %s", cfg.KafkaBrokers, clusterReplication, clusterHint)
	}
	rdb, prefix := testenv.Redis(t)
	ch, db := testenv.ClickHouse(t)
	cfg.ClickHouseDatabase = db
	s := &stack{t: t, cfg: cfg, names: topics.NewNames(cfg.TopicPrefix), ch: ch, db: db}

	dir := t.TempDir()
	studiesFile := filepath.Join(dir, "studies.yaml")
	roster := filepath.Join(dir, "roster.csv")
	writeFile(t, studiesFile, "studies:\n  - id: "+clusterStudy+"\n    sites: [SITE-001, "+clusterSite+"]\n    enrollment: required\n")
	csv := "subject_id,study_id,site_id,enrolled_at\n"
	for i := range clusterSubjects {
		csv += fmt.Sprintf("ONC-301-012-%04d,%s,%s,%s\n", i, clusterStudy, clusterSite, time.Now().UTC().AddDate(0, 0, -1).Format(time.RFC3339))
	}
	writeFile(t, roster, csv)
	// The binary's Redis keys are eprostream:{EPRO_ENV}:…; EPRO_ENV allows
	// no '_', so the test names its own and removes its keys afterwards.
	env := fmt.Sprintf("cluster-%08x", rand.Uint32())
	prefix = "eprostream:" + env + ":"
	t.Cleanup(func() {
		ctx := context.Background()
		for iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator(); iter.Next(ctx); {
			rdb.Del(ctx, iter.Val())
		}
	})
	c := clusterEnv{s: s, env: []string{"EPRO_ENV=" + env, "STUDIES_FILE=" + studiesFile,
		"TOPIC_REPLICATION=" + strconv.Itoa(clusterReplication), "TOPIC_PARTITIONS=" + strconv.Itoa(clusterPartitions)}}

	t.Log(strings.TrimSpace(c.run(t, "migrate", "--replication", strconv.Itoa(clusterReplication))))
	admin, err := connect.KafkaAdmin(cfg, "cluster-test")
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	checkReplicated(t, admin, cfg.TopicPrefix)
	t.Log(strings.TrimSpace(c.run(t, "enroll", "--file", roster)))

	_, token, err := apikeys.NewStore(rdb, prefix).Create(context.Background(), apikeys.Spec{Name: "cluster test",
		Studies: []string{clusterStudy}, Roles: []string{apikeys.RoleSubmit}, RatePerSec: 5000, Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	all := s.startWithEnv("all", c.env, "--group", "all", "--schedule-interval", "0", "--state-dir", t.TempDir())
	addr, ingestLog := c.ingest(t)

	client, err := sarama.NewClient(cfg.KafkaBrokers, kafkaconfig.Sarama("cluster-test-meta", cfg.DialTimeout))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	load := &clusterLoad{accepted: map[string]time.Duration{}, unsure: map[string]bool{}, answers: map[int]int{}}
	k := &killer{}
	start := time.Now()
	killed := make(chan struct{})
	go func() { defer close(killed); k.run(t, client, s.names.Submissions, start) }()
	t.Cleanup(func() { // the cluster stays whole for whatever runs next
		<-killed
		if n := k.down.Load(); n != 0 {
			_, _ = clusterCtl("start-node", n)
		}
	})
	load.drive(addr, token, start)
	<-killed
	loadEnded := time.Since(start) // and the node started again
	s.waitAll(3*time.Minute, all)
	checkRejoined(t, client, s.names.Submissions, k.node)

	checkClusterRun(t, s, load, k)
	t.Logf("load over and node started again %s after the start; groups drained and node in sync %s later; ingest log %s", loadEnded.Round(time.Second),
		(time.Since(start) - loadEnded).Round(time.Second), ingestLog)
	all.stop(t)
}

// checkRejoined asserts that the killed node, started again, is back in
// sync on every partition of topic: the cluster is whole again.
func checkRejoined(t *testing.T, client sarama.Client, topic string, node int32) {
	t.Helper()
	parts, err := client.Partitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	var behind []int32
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		behind = behind[:0]
		_ = client.RefreshMetadata(topic)
		for _, p := range parts {
			if isr, err := client.InSyncReplicas(topic, p); err != nil || !slices.Contains(isr, node) {
				behind = append(behind, p)
			}
		}
		if len(behind) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %d is not in sync on partitions %v of %s 60s after the groups drained: it did not rejoin", node, behind, topic)
		}
	}
}

// checkClusterRun checks the kill, the answers, Kafka, ClickHouse and the alerts.
func checkClusterRun(t *testing.T, s *stack, load *clusterLoad, k *killer) {
	t.Helper()
	if k.node == 0 || k.killedAt == 0 {
		t.Fatal("no node was killed")
	}
	if k.newLeader == 0 {
		t.Errorf("partition %d still led by killed node %d, or by none, 30s after the kill", k.partition, k.node)
	} else {
		t.Logf("node %d killed at %s; partition %d led by node %d %s later; node %d started again at %s",
			k.node, k.killedAt.Round(time.Millisecond), k.partition, k.newLeader, k.movedAfter.Round(time.Millisecond),
			k.node, k.restartedAt.Round(time.Millisecond))
	}
	var times []time.Duration
	during := 0
	for _, at := range load.accepted {
		times = append(times, at)
		if at > k.killedAt && at < k.restartedAt {
			during++
		}
	}
	slices.Sort(times)
	var gap, gapAt time.Duration
	for i := 1; i < len(times); i++ {
		if d := times[i] - times[i-1]; d > gap {
			gap, gapAt = d, times[i-1]
		}
	}
	t.Logf("%d attempts (%d retries), answers by status %v; %d accepted, %d of them while node %d was down; %d never accepted (5xx or no answer)",
		load.attempts.Load(), load.retries.Load(), load.answers, len(load.accepted), during, k.node, len(load.unsure))
	t.Logf("longest gap between consecutive 202s: %s, from %s into the load", gap.Round(time.Millisecond), gapAt.Round(time.Millisecond))
	if len(load.refused) > 0 {
		t.Errorf("%d answers were neither 202 nor 5xx, e.g. %v", len(load.refused), load.refused[:min(5, len(load.refused))])
	}
	if len(load.accepted) == 0 || during == 0 {
		t.Fatalf("%d accepted, %d while the node was down: want both > 0", len(load.accepted), during)
	}

	// Kafka: every 202 is there; nothing is there that was not sent.
	o := newOracle()
	stored := map[string]bool{}
	for _, m := range s.readAll(s.names.Submissions) {
		sub, err := codecs.ParseSubmission(m.Value)
		if err != nil {
			t.Fatalf("undecodable record on %s: %v", s.names.Submissions, err)
		}
		if _, ok := load.accepted[sub.MessageID]; !ok && !load.unsure[sub.MessageID] {
			t.Errorf("%s on %s was never sent", sub.MessageID, s.names.Submissions)
		}
		stored[sub.MessageID] = true
		o.apply(sub) // partition by partition: each subject's records in their order
	}
	lost := 0
	for id := range load.accepted {
		if !stored[id] {
			if lost++; lost <= 5 {
				t.Errorf("accepted submission %s is not on %s", id, s.names.Submissions)
			}
		}
	}
	storedUnsure := 0
	for id := range load.unsure {
		if stored[id] {
			storedUnsure++
		}
	}

	// ClickHouse: each stored submission once, by (study_id, message_id).
	rows, err := s.ch.Query(context.Background(), "SELECT study_id, message_id, count() FROM "+s.db+".submissions GROUP BY study_id, message_id")
	if err != nil {
		t.Fatal(err)
	}
	inCH := map[string]uint64{}
	for rows.Next() {
		var study, id string
		var n uint64
		if err := rows.Scan(&study, &id, &n); err != nil {
			t.Fatal(err)
		}
		if study != clusterStudy {
			t.Errorf("submissions holds %s of study %q", id, study)
		}
		inCH[id] = n
	}
	_ = rows.Close()
	missing, doubled, foreign := 0, 0, 0
	for id := range load.accepted {
		switch inCH[id] {
		case 0:
			missing++
		case 1:
		default:
			doubled++
		}
	}
	for id, n := range inCH {
		if _, ok := load.accepted[id]; !ok && !load.unsure[id] {
			foreign++
		} else if n > 1 && load.unsure[id] {
			doubled++
		}
	}
	if missing+doubled+foreign > 0 || len(inCH) != len(stored) {
		t.Errorf("ClickHouse submissions: %d accepted missing, %d stored twice or more, %d never sent; %d message_ids, want the %d on Kafka",
			missing, doubled, foreign, len(inCH), len(stored))
	}

	// Alerts: epro-alerts and ClickHouse hold exactly the oracle's, once each.
	keys, ids := s.alerts()
	diff(t, "alert", o.alerts, keys)
	if n := s.count("SELECT count() FROM {db}.alerts"); n != uint64(len(ids)) {
		t.Errorf("ClickHouse alerts: %d rows, want the %d alert ids of epro-alerts", n, len(ids))
	}
	if n := s.count("SELECT toUInt64(count() - uniqExact(alert_id)) FROM {db}.alerts"); n != 0 {
		t.Errorf("ClickHouse alerts: %d duplicate alert ids", n)
	}
	arows, err := s.ch.Query(context.Background(), "SELECT alert_id, rule_id, subject_id, message_id, evidence_item, toString(severity) FROM "+s.db+".alerts")
	if err != nil {
		t.Fatal(err)
	}
	chKeys := map[string]bool{}
	for arows.Next() {
		var id, rule, subject, msg, item, sev string
		if err := arows.Scan(&id, &rule, &subject, &msg, &item, &sev); err != nil {
			t.Fatal(err)
		}
		if !ids[id] {
			t.Errorf("ClickHouse alert %s is not on epro-alerts", id)
		}
		chKeys[strings.Join([]string{rule, subject, msg, item, sev}, "|")] = true
	}
	_ = arows.Close()
	diff(t, "ClickHouse alert", o.alerts, chKeys)
	t.Logf("Kafka holds %d submissions (%d of them answered 5xx or not at all, then never 202), ClickHouse %d; %d alerts (oracle %d), %d lost",
		len(stored), storedUnsure, len(inCH), len(ids), len(o.alerts), lost)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
