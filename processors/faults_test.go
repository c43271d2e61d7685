//go:build faults

// Fault tests stop shared services of the local stack, so they run on their
// own, after the other tests: `make test` runs them with -tags faults -p 1.
package processors_test

import (
	"bufio"
	"fmt"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

// gauge reads one metric of a process's /metrics.
func gauge(addr, name string) (float64, bool) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return f, err == nil
		}
	}
	return 0, false
}

// metricSum adds up every series of one metric of a process's /metrics.
func metricSum(addr, name string) (float64, bool) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	sum, seen := 0.0, false
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (rest != "" && rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		f, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err == nil {
			sum, seen = sum+f, true
		}
	}
	return sum, seen
}

func stackCtl(t *testing.T, verb string, service ...string) {
	t.Helper()
	if len(service) == 0 {
		service = []string{"clickhouse"}
	}
	out, err := exec.Command("bash", append([]string{"../devstack/stack.sh", verb}, service...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("stack.sh %s %v: %v\n%s", verb, service, err, out)
	}
}

// ClickHouse stops for 30 s or more during the load (until the sink's
// buffer has filled towards its bound), after the warehouse has inserted
// the load's first rows: nothing is lost, nothing is
// doubled, the buffer stays under its bound, and the group catches up by
// itself once ClickHouse is back.
func TestFaultClickHouseDownForThirtySeconds(t *testing.T) {
	s := newStack(t, 6)
	records := trial(t, 2000, 14, 60_000)
	const bound = 20_000
	admin := freePort(t)
	in := s.start("intake", "--group", "intake", "--state-dir", t.TempDir())
	sub := s.start("subject", "--group", "subject", "--schedule-interval", "0", "--state-dir", t.TempDir())
	// Batches as large as the bound: a lane that fills its batch inserts
	// it at once, and while ClickHouse is down that insert holds its
	// partition, so smaller batches could stop the buffer short of the
	// bound, depending on how the rows spread over the partitions.
	wh := s.startWithEnv("warehouse", []string{"ADMIN_ADDR=" + admin},
		"--group", "warehouse", "--batch-rows", strconv.Itoa(bound), "--max-buffered", strconv.Itoa(bound), "--state-dir", t.TempDir())
	// A first part of the load is inserted before ClickHouse stops; the
	// rest (55,000 records, more than the bound) arrives while it is down,
	// so the bound is reached however fast the groups run: when all of
	// the load came first, a fast run had inserted most of it before the
	// outage and never filled the buffer.
	const before = 5_000
	s.produce(records[:before])
	inserted := 0.0
	for deadline := time.Now().Add(2 * time.Minute); inserted == 0; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the warehouse inserted nothing of the first %d records; log:\n%s", before, tail(wh.log))
		}
		inserted, _ = metricSum(admin, "eprostream_chsink_inserted_rows_total")
	}
	stackCtl(t, "down")
	t.Cleanup(func() { _ = exec.Command("bash", "../devstack/stack.sh", "up", "clickhouse").Run() })
	produced := make(chan struct{})
	go func() { s.produce(records[before:]); close(produced) }()
	// Down for 30 s, and on (at most 2 minutes in all) until the buffer has
	// filled towards its bound, so the bound is tested however fast the
	// groups run on the machine (the race detector slows them).
	peak, reads := 0.0, 0
	var trace []string
	for start := time.Now(); time.Since(start) < 30*time.Second || (peak < bound*9/10 && time.Since(start) < 2*time.Minute); time.Sleep(500 * time.Millisecond) {
		if v, ok := gauge(admin, "eprostream_chsink_buffered_rows"); ok {
			reads++
			peak = max(peak, v)
			if reads%10 == 1 {
				restarts, _ := metricSum(admin, "eprostream_group_restarts_total")
				trace = append(trace, fmt.Sprintf("%5.1fs buffered %.0f, on epro-clean+alerts %d, group restarts %.0f",
					time.Since(start).Seconds(), v, s.stored(s.names.Clean)+s.stored(s.names.Alerts), restarts))
			}
		}
	}
	if reads == 0 {
		t.Fatalf("eprostream_chsink_buffered_rows was never read from %s: the bound is not observed", admin)
	}
	stackCtl(t, "up")
	<-produced
	s.waitAll(5*time.Minute, in, sub, wh)
	if peak > bound {
		t.Errorf("the sink buffered %.0f rows while ClickHouse was down, bound %d", peak, bound)
	}
	if peak < bound*9/10 {
		t.Errorf("the sink buffered at most %.0f rows while ClickHouse was down: the bound %d was not reached, so it was not tested\n%s\nwarehouse log:\n%s",
			peak, bound, strings.Join(trace, "\n"), tail(wh.log))
	}
	t.Logf("peak buffered rows while ClickHouse was down: %.0f (bound %d)", peak, bound)
	verifyWarehouse(t, s, records)
}

// Kafka stops for 20 s while one `eprostream process --group all` works
// through a backlog: the process does not exit; its groups wait the outage
// out (their producers retry in order, see kafkaconfig.ProcessorSarama),
// and a group that fails is built again once the broker is back; the whole
// spine (table, alerts, DLQ, warehouse) ends exactly as the oracle says:
// nothing lost, doubled or folded out of order.
func TestFaultKafkaStoppedTwentySeconds(t *testing.T) {
	s := newStack(t, 6)
	records := trial(t, 2000, 14, 60_000)
	half := len(records) / 2
	all := s.start("all", "--group", "all", "--schedule-interval", "0", "--state-dir", t.TempDir())
	s.produce(records[:half])
	time.Sleep(time.Second) // the groups are busy with the first half

	// The outage must meet work in flight: records read or not yet read,
	// whose offsets are not committed.
	pending := s.pending()
	if pending <= 0 {
		t.Fatalf("the groups had no uncommitted records when Kafka stopped (%d): the outage would test nothing", pending)
	}
	stackCtl(t, "down", "kafka")
	t.Cleanup(func() { _ = exec.Command("bash", "../devstack/stack.sh", "up", "kafka").Run() })
	time.Sleep(20 * time.Second)
	select {
	case err := <-all.done:
		all.done <- err
		t.Fatalf("the process exited while Kafka was down (%v); log:\n%s", err, tail(all.log))
	default:
	}
	stackCtl(t, "up", "kafka")
	s.produce(records[half:])
	s.waitAll(5*time.Minute, all)

	t.Logf("%d records uncommitted when Kafka stopped; group restarts after the outage: %d",
		pending, strings.Count(readLog(t, all.log), "processor group restarted"))
	verify(t, s, records)
	verifyWarehouse(t, s, records)
	all.stop(t)
}

// A processor's producer keeps a partition's records in order through a
// Kafka outage longer than a short retry budget would last: no record
// fails while a later one lands, so the partition holds every record once,
// in the order sent (what a subject's reports need to be folded in order).
func TestFaultProcessorOutputsStayInOrderThroughAnOutage(t *testing.T) {
	s := newStack(t, 1)
	producer, err := sarama.NewAsyncProducer(s.cfg.KafkaBrokers, s.cfg.Kafka().ProcessorSarama("order-test"))
	if err != nil {
		t.Fatal(err)
	}
	var failed, acked atomic.Int64
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for range producer.Successes() {
			acked.Add(1)
		}
	}()
	go func() {
		defer wg.Done()
		for e := range producer.Errors() {
			if failed.Add(1) <= 3 {
				t.Logf("record %v failed: %v", e.Msg.Value, e.Err)
			}
		}
	}()
	stop := make(chan struct{})
	sent := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				sent <- n
				return
			case <-time.After(5 * time.Millisecond):
				producer.Input() <- &sarama.ProducerMessage{Topic: s.names.Submissions, Key: sarama.StringEncoder("subject"), Value: sarama.StringEncoder(strconv.Itoa(n))}
				n++
			}
		}
	}()
	time.Sleep(time.Second)
	stackCtl(t, "down", "kafka")
	t.Cleanup(func() { _ = exec.Command("bash", "../devstack/stack.sh", "up", "kafka").Run() })
	time.Sleep(10 * time.Second)
	stackCtl(t, "up", "kafka")
	time.Sleep(time.Second)
	close(stop)
	n := <-sent
	producer.AsyncClose()
	wg.Wait()

	if n == 0 || acked.Load() == 0 {
		t.Fatalf("%d records sent, %d acknowledged: nothing was observed", n, acked.Load())
	}
	if failed.Load() > 0 {
		t.Errorf("%d of %d records failed during the outage", failed.Load(), n)
	}
	got := s.readAll(s.names.Submissions)
	inOrder := len(got) == n
	for i := 0; inOrder && i < n; i++ {
		inOrder = string(got[i].Value) == strconv.Itoa(i)
	}
	if !inOrder {
		first := -1
		for i := range min(len(got), n) {
			if string(got[i].Value) != strconv.Itoa(i) {
				first = i
				break
			}
		}
		t.Errorf("the partition holds %d records, %d were sent; first out of place at %d", len(got), n, first)
	}
	t.Logf("%d records sent across a Kafka outage, %d acknowledged, %d failed", n, acked.Load(), failed.Load())
}
