package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/eprostream/eprostream/internal/kafka/kafkaconfig"
	"github.com/eprostream/eprostream/internal/kafka/topics"
	"github.com/eprostream/eprostream/processors/subject"
)

// runPeer compares the subject group with the Kafka Streams peer in
// peerDir (its run.sh) on the same epro-clean records, rounds times,
// alternating which goes first, each round on topics of its own: both
// rates, their ratio, and whether the two sets of alert ids are equal;
// then a sarama consume → produce pass-through of the same records, the
// anchor of the group's share of bare Kafka work.
func runPeer(n, perSite int, peerDir string, rounds int) error {
	if _, err := os.Stat(filepath.Join(peerDir, "run.sh")); err != nil {
		return fmt.Errorf("-peer %s: %w (the directory of the Kafka Streams peer, with its run.sh)", peerDir, err)
	}
	base, err := newBench("peer")
	if err != nil {
		return err
	}
	defer base.close()
	_, clean, err := base.prepare(n, perSite)
	if err != nil {
		return err
	}
	fmt.Printf("| records | %d clean submissions of %d subjects, %d partitions; both read the same records from their own copy of epro-clean |\n",
		len(clean), 20*perSite, base.cfg.Partitions)
	fmt.Println("| round | first | subject group (first → last record processed) | peer (first → last record processed) | ratio | subject group, start → committed | peer, start → committed | pass-through (first consumed → last acknowledged) | group / pass-through | alert ids |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|")
	var failed error
	for round := 1; round <= rounds; round++ {
		b, err := newBench(fmt.Sprintf("peer-r%d", round))
		if err != nil {
			return err
		}
		if err := b.produce(b.names.Clean, clean); err != nil {
			b.close()
			return err
		}
		var goRun groupRun
		var peer peerRun
		goFirst := round%2 == 1
		for _, which := range []bool{goFirst, !goFirst} {
			if which {
				goRun, err = b.timeSubject(len(clean))
			} else {
				peer, err = b.runKStreams(peerDir, len(clean))
			}
			if err != nil {
				b.close()
				return err
			}
		}
		// The bare Kafka work of a consume → produce step over the same
		// records, after both: the anchor of the group's share.
		pass, err := b.passThrough(len(clean))
		if err != nil {
			b.close()
			return err
		}
		goIDs, err := b.alertIDs(b.names.Alerts)
		if err != nil {
			b.close()
			return err
		}
		peerIDs, err := b.alertIDs(b.cfg.TopicPrefix + "kstreams-alerts")
		b.close()
		if err != nil {
			return err
		}
		same := "equal: " + strconv.Itoa(len(goIDs))
		if missing, extra := diff(goIDs, peerIDs); len(missing)+len(extra) > 0 || len(goIDs) == 0 {
			same = fmt.Sprintf("DIFFERENT: group %d, peer %d; only the group's: %s; only the peer's: %s", len(goIDs), len(peerIDs), sample(missing), sample(extra))
			failed = errors.Join(failed, fmt.Errorf("round %d: the alert-id sets differ", round))
		}
		first := "peer"
		if goFirst {
			first = "subject group"
		}
		fmt.Printf("| %d | %s | %.0f rec/s | %.0f rec/s | %.2f× | %.0f rec/s | %.0f rec/s | %.0f rec/s | %.0f %% | %s |\n",
			round, first, goRun.processed, peer.processed, goRun.processed/peer.processed, goRun.drained, peer.drained,
			pass, 100*goRun.processed/pass, same)
	}
	return failed
}

// groupRun is a subject group's measurement: records per second from the
// first record processed to the last (the callback counted them), and
// from the start to the offsets committed.
type groupRun struct{ processed, drained float64 }

// timeSubject runs the subject group over epro-clean's n records.
func (b *bench) timeSubject(n int) (groupRun, error) {
	reg := prometheus.NewRegistry()
	opts := kafkaconfig.GokaOptions(b.cfg.Kafka(), "spinebench-subject", must(os.MkdirTemp("", "spinebench-")), b.log)
	p, err := subject.New(subject.Config{Brokers: b.cfg.KafkaBrokers, Names: b.names}, subject.Deps{Log: b.log, Registry: reg}, opts...)
	if err != nil {
		return groupRun{}, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	errc := make(chan error, 1)
	go func() { errc <- p.Run(ctx) }()
	var first, last time.Time
	for last.IsZero() {
		select {
		case err := <-errc:
			return groupRun{}, fmt.Errorf("subject group stopped: %v", err)
		case <-time.After(5 * time.Millisecond):
		}
		if time.Since(start) > 5*time.Minute {
			return groupRun{}, errors.New("the subject group did not process every record within 5 minutes")
		}
		seen, err := counted(reg, "clean", "eprostream_subject_records_total", "eprostream_subject_dlq_total")
		if err != nil {
			return groupRun{}, err
		}
		if seen > 0 && first.IsZero() {
			first = time.Now()
		}
		if seen >= n {
			last = time.Now()
		}
	}
	if _, err := b.waitLag(n, func() (int64, error) {
		return lagOf(b, topics.Group(b.cfg.TopicPrefix, "subject"), b.names.Clean, b.names.Commands)
	}); err != nil {
		return groupRun{}, err
	}
	drainedAt := time.Since(start) // from the group's start, as the peer's drain figure
	return groupRun{processed: float64(n) / last.Sub(first).Seconds(), drained: float64(n) / drainedAt.Seconds()}, nil
}

// counted sums the series of the named counters whose "input" label is
// input: every record the callback finished with (applied, duplicate,
// replayed or dead-lettered).
func counted(g prometheus.Gatherer, input string, names ...string) (int, error) {
	mfs, err := g.Gather()
	if err != nil {
		return 0, err
	}
	var total float64
	for _, mf := range mfs {
		if !slices.Contains(names, mf.GetName()) {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "input" && l.GetValue() == input {
					total += m.GetCounter().GetValue()
				}
			}
		}
	}
	return int(total), nil
}

type peerRun struct{ processed, drained float64 }

// runKStreams runs the peer over epro-clean to the end and reads its
// summary line.
func (b *bench) runKStreams(dir string, n int) (peerRun, error) {
	state := must(os.MkdirTemp("", "kstreams-peer-"))
	defer os.RemoveAll(state)
	cmd := exec.Command(filepath.Join(dir, "run.sh"), "--brokers", strings.Join(b.cfg.KafkaBrokers, ","),
		"--input", b.names.Clean, "--alerts", b.cfg.TopicPrefix+"kstreams-alerts", "--create-alerts-topic",
		"--app-id", "kstreams-"+strings.TrimSuffix(b.cfg.TopicPrefix, "."), "--state-dir", state,
		"--threads", "2", "--guarantee", "at_least_once", "--commit-ms", "1000", "--timeout-s", "600")
	cmd.Env = append(os.Environ(), "KSTREAMS_SKIP_TESTS=1")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return peerRun{}, fmt.Errorf("kstreams peer: %v\n%s", err, tailOf(stderr.String()))
	}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "kstreams ") {
			continue
		}
		f := map[string]string{}
		for _, kv := range strings.Fields(line)[1:] {
			k, v, _ := strings.Cut(kv, "=")
			f[k] = v
		}
		if got, _ := strconv.Atoi(f["records"]); got != n {
			return peerRun{}, fmt.Errorf("kstreams peer saw %d records, want %d: %s", got, n, line)
		}
		processed, _ := strconv.ParseFloat(f["records_per_s"], 64)
		drained, _ := strconv.ParseFloat(f["drain_records_per_s"], 64)
		if processed <= 0 || drained <= 0 || f["committed"] != "true" {
			return peerRun{}, fmt.Errorf("kstreams peer: no rates in %q", line)
		}
		return peerRun{processed: processed, drained: drained}, nil
	}
	return peerRun{}, fmt.Errorf("kstreams peer printed no summary line:\n%s\n%s", out, tailOf(stderr.String()))
}

// alertIDs reads every alert on topic and returns the distinct ids.
func (b *bench) alertIDs(topic string) (map[string]bool, error) {
	consumer, err := sarama.NewConsumerFromClient(b.client)
	if err != nil {
		return nil, err
	}
	defer consumer.Close()
	parts, err := b.client.Partitions(topic)
	if err != nil {
		return nil, err
	}
	ids := map[string]bool{}
	for _, p := range parts {
		end, err := b.client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			return nil, err
		}
		if end == 0 {
			continue
		}
		pc, err := consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			return nil, err
		}
		for m := range pc.Messages() {
			var a struct {
				AlertID string `json:"alert_id"`
			}
			if err := json.Unmarshal(m.Value, &a); err != nil || a.AlertID == "" {
				_ = pc.Close()
				return nil, fmt.Errorf("%s/%d@%d: not an alert", topic, p, m.Offset)
			}
			ids[a.AlertID] = true
			if m.Offset >= end-1 {
				break
			}
		}
		_ = pc.Close()
	}
	return ids, nil
}

func diff(a, b map[string]bool) (onlyA, onlyB []string) {
	for id := range a {
		if !b[id] {
			onlyA = append(onlyA, id)
		}
	}
	for id := range b {
		if !a[id] {
			onlyB = append(onlyB, id)
		}
	}
	return onlyA, onlyB
}

func sample(ids []string) string {
	if len(ids) > 3 {
		return fmt.Sprintf("%s … (%d)", strings.Join(ids[:3], ", "), len(ids))
	}
	return strings.Join(ids, ", ")
}

func tailOf(s string) string {
	if len(s) > 3000 {
		return s[len(s)-3000:]
	}
	return s
}
