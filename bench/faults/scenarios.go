package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/IBM/sarama"

	"github.com/eprostream/eprostream/internal/kafka/kafkaconfig"
	"github.com/eprostream/eprostream/internal/kafka/topics"
)

// scenarios in the order they run: the processes first, then the services,
// the whole Kafka restart (the longest) near the end.
func scenarios() []scenario {
	return []scenario{
		{name: "kill-ingest", fault: "kill -9 of the ingest gateway, restarted 2 s later", inject: killProcess("ingest")},
		{name: "kill-intake", fault: "kill -9 of intake, restarted 2 s later", inject: killProcess("intake")},
		{name: "kill-subject", fault: "kill -9 of one of two subject instances, restarted 2 s later", inject: killProcess("subject")},
		{name: "kill-warehouse", fault: "kill -9 of the warehouse, restarted 2 s later", inject: killProcess("warehouse")},
		{name: "subject-rebalance", fault: "a third subject instance joins, then one of the first two stops (SIGTERM)", inject: rebalance},
		{name: "clickhouse-down", fault: "ClickHouse stopped for 30 s", inject: serviceDown("clickhouse", chPort, 30*time.Second)},
		{name: "redis-down", fault: "Redis stopped for 30 s", inject: serviceDown("redis", redisPort, 30*time.Second)},
		{name: "kafka-restart", fault: "every Kafka node stopped for 20 s, then started", inject: kafkaRestart},
		{name: "leader-kill", fault: "kill -9 of the Kafka node leading the busiest epro-submissions partition, started 15 s later",
			needsCluster: true, inject: leaderKill},
	}
}

// killProcess kills a process of the given kind (for subject, the first
// instance running) and starts it again 2 s later.
func killProcess(kind string) func(context.Context, *campaign) (string, error) {
	return func(ctx context.Context, c *campaign) (string, error) {
		p := c.ps.get(kind)
		if kind == "subject" {
			for _, n := range []string{"subject-a", "subject-b", "subject-c"} {
				if q := c.ps.get(n); q.running() {
					p = q
					break
				}
			}
		}
		if p == nil || !p.running() {
			return "", fmt.Errorf("no %s process is running", kind)
		}
		pid := p.cmd.Process.Pid
		if err := p.kill9(); err != nil {
			return "", err
		}
		killed := time.Now()
		if err := c.ps.restart(ctx, p, 2*time.Second); err != nil {
			return fmt.Sprintf("%s (pid %d) killed by SIGKILL", p.name, pid), err
		}
		return fmt.Sprintf("%s (pid %d) killed by SIGKILL, started again and ready %s later", p.name, pid,
			fmtDur(time.Since(killed))), nil
	}
}

// serviceDown stops a service of the stack, checks its port is closed, and
// starts it again after down.
func serviceDown(svc string, port int, down time.Duration) func(context.Context, *campaign) (string, error) {
	return func(ctx context.Context, c *campaign) (string, error) {
		if err := c.st.run(ctx, 2*time.Minute, "down", svc); err != nil {
			return "", err
		}
		stopped := time.Now()
		closed := !portOpen(port)
		// While ClickHouse is away the warehouse's buffer is what grows:
		// its peak is read from the warehouse's metrics.
		peak, reads := 0.0, 0
		for end := stopped.Add(down - 500*time.Millisecond); time.Now().Before(end) && ctx.Err() == nil; sleep(ctx, 500*time.Millisecond) {
			if v, ok := gauge(c.ps.get("warehouse").admin, "eprostream_chsink_buffered_rows"); ok {
				peak, reads = max(peak, v), reads+1
			}
		}
		closed = closed && !portOpen(port)
		if err := c.st.run(ctx, 3*time.Minute, "up", svc); err != nil {
			return "", err
		}
		obs := fmt.Sprintf("%s port %d closed for %s (stopped, held down, started again)", svc, port, fmtDur(time.Since(stopped)))
		if svc == "clickhouse" && reads > 0 {
			obs += fmt.Sprintf("; the warehouse buffered at most %.0f rows meanwhile", peak)
		}
		if !closed {
			return obs, fmt.Errorf("%s still answered on port %d after stack.sh down", svc, port)
		}
		return obs, nil
	}
}

// kafkaRestart stops every node, holds them down 20 s, starts them again
// and checks that no broker port answered meanwhile.
func kafkaRestart(ctx context.Context, c *campaign) (string, error) {
	t0 := time.Now()
	if err := c.st.run(ctx, 3*time.Minute, "down", "kafka"); err != nil {
		return "", err
	}
	stopped := time.Now()
	open := func() []int {
		var o []int
		for i := 1; i <= c.st.nodes; i++ {
			if portOpen(brokerPort(i)) {
				o = append(o, brokerPort(i))
			}
		}
		return o
	}
	still := open()
	sleep(ctx, 20*time.Second)
	still = append(still, open()...)
	held := time.Since(stopped)
	if err := c.st.run(ctx, 5*time.Minute, "up", "kafka"); err != nil {
		return "", err
	}
	startTook := time.Since(stopped) - held
	obs := fmt.Sprintf("%d node(s) stopped in %s, held down %s (no broker port answered), started again in %s",
		c.st.nodes, fmtDur(stopped.Sub(t0)), fmtDur(held), fmtDur(startTook))
	if len(still) > 0 {
		return obs, fmt.Errorf("broker ports %v still answered after stack.sh down kafka", still)
	}
	return obs, nil
}

// leaderKill finds the partition of epro-submissions with the most records,
// kills the node leading it with SIGKILL (stack.sh kill-node), checks that
// another node took the lead, and starts the node again 15 s after the kill.
func leaderKill(ctx context.Context, c *campaign) (string, error) {
	topic := topics.NewNames(c.cfg.TopicPrefix).Submissions
	part, leader, err := busiestLeader(c, topic)
	if err != nil {
		return "", err
	}
	node := 0
	for i := 1; i <= c.st.nodes; i++ {
		if _, port, _ := net.SplitHostPort(leader); port == strconv.Itoa(brokerPort(i)) {
			node = i
		}
	}
	if node == 0 {
		return "", fmt.Errorf("leader %s of %s/%d is none of the campaign's nodes", leader, topic, part)
	}
	if err := c.st.run(ctx, time.Minute, "kill-node", strconv.Itoa(node)); err != nil {
		return "", err
	}
	killed := time.Now()
	down := !portOpen(brokerPort(node))
	moved, movedAfter := "", time.Duration(0)
	for time.Since(killed) < 14*time.Second && moved == "" {
		sleep(ctx, 500*time.Millisecond)
		if _, l, err := leaderOf(c, topic, part, node); err == nil && l != "" && l != leader {
			moved, movedAfter = l, time.Since(killed)
		}
	}
	sleep(ctx, 15*time.Second-time.Since(killed))
	if err := c.st.run(ctx, 3*time.Minute, "start-node", strconv.Itoa(node)); err != nil {
		return "", err
	}
	obs := fmt.Sprintf("partition %d led by node %d (%s); node killed", part, node, leader)
	switch {
	case !down:
		return obs, fmt.Errorf("node %d still answered on port %d after kill-node", node, brokerPort(node))
	case moved == "":
		return obs, fmt.Errorf("partition %d had no new leader within 14 s of the kill", part)
	}
	return fmt.Sprintf("%s; %s took the lead %s later; node started again after %s", obs, moved, fmtDur(movedAfter),
		fmtDur(time.Since(killed))), nil
}

// busiestLeader returns the partition of topic with the highest high-water
// mark and its leader's address.
func busiestLeader(c *campaign, topic string) (int32, string, error) {
	client, err := sarama.NewClient(c.cfg.KafkaBrokers, kafkaconfig.Sarama("faults-leader", c.cfg.DialTimeout))
	if err != nil {
		return 0, "", err
	}
	defer client.Close()
	parts, err := client.Partitions(topic)
	if err != nil {
		return 0, "", err
	}
	best, most := int32(-1), int64(-1)
	for _, p := range parts {
		hwm, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			return 0, "", err
		}
		if hwm > most {
			best, most = p, hwm
		}
	}
	b, err := client.Leader(topic, best)
	if err != nil {
		return 0, "", err
	}
	return best, b.Addr(), nil
}

// leaderOf asks the nodes other than skip who leads topic/part now.
func leaderOf(c *campaign, topic string, part int32, skip int) (int32, string, error) {
	var others []string
	for i := 1; i <= c.st.nodes; i++ {
		if i != skip {
			others = append(others, "127.0.0.1:"+strconv.Itoa(brokerPort(i)))
		}
	}
	cfg := kafkaconfig.Sarama("faults-leader", 2*time.Second)
	cfg.Metadata.Retry.Max = 0
	client, err := sarama.NewClient(others, cfg)
	if err != nil {
		return 0, "", err
	}
	defer client.Close()
	if err := client.RefreshMetadata(topic); err != nil {
		return 0, "", err
	}
	b, err := client.Leader(topic, part)
	if err != nil {
		return 0, "", err
	}
	return part, b.Addr(), nil
}

// rebalance starts a third subject instance, waits until the group counts
// three members, stops the oldest instance with SIGTERM 30 s later and
// checks it exits cleanly and the group is back to two members.
func rebalance(ctx context.Context, c *campaign) (string, error) {
	var running []*proc
	var idle *proc
	for _, n := range []string{"subject-a", "subject-b", "subject-c"} {
		p := c.ps.get(n)
		if p.running() {
			running = append(running, p)
		} else if idle == nil {
			idle = p
		}
	}
	if len(running) != 2 || idle == nil {
		return "", fmt.Errorf("want two subject instances running and one idle, have %d running", len(running))
	}
	if err := c.ps.start(idle); err != nil {
		return "", err
	}
	if err := idle.waitReady(ctx, 2*time.Minute); err != nil {
		return "", err
	}
	three, err := waitMembers(ctx, c, 3, time.Minute)
	if err != nil {
		return "", fmt.Errorf("after %s joined: %w", idle.name, err)
	}
	sleep(ctx, 30*time.Second)
	leaving := running[0]
	st, err := leaving.signal(syscall.SIGTERM, time.Minute)
	if err != nil {
		return "", err
	}
	if !st.Success() {
		return "", fmt.Errorf("%s did not stop cleanly after SIGTERM: %s", leaving.name, st)
	}
	two, err := waitMembers(ctx, c, 2, time.Minute)
	if err != nil {
		return "", fmt.Errorf("after %s left: %w", leaving.name, err)
	}
	return fmt.Sprintf("%s joined (group of 3 members after %s), %s stopped cleanly (group of 2 after %s)", idle.name,
		fmtDur(three), leaving.name, fmtDur(two)), nil
}

// waitMembers waits until the subject consumer group has want members
// with partitions assigned.
func waitMembers(ctx context.Context, c *campaign, want int, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	group := topics.Group(c.cfg.TopicPrefix, "subject")
	have := -1
	for time.Since(start) < timeout {
		have = members(c, group)
		if have == want {
			return time.Since(start), nil
		}
		sleep(ctx, 500*time.Millisecond)
	}
	return time.Since(start), fmt.Errorf("consumer group %s has %d members, want %d", group, have, want)
}

func members(c *campaign, group string) int {
	admin, err := sarama.NewClusterAdmin(c.cfg.KafkaBrokers, kafkaconfig.Sarama("faults-members", c.cfg.DialTimeout))
	if err != nil {
		return -1
	}
	defer admin.Close()
	gs, err := admin.DescribeConsumerGroups([]string{group})
	if err != nil || len(gs) != 1 || gs[0].State != "Stable" {
		return -1
	}
	n := 0
	for _, m := range gs[0].Members {
		if a, err := m.GetMemberAssignment(); err == nil && a != nil && len(a.Topics) > 0 {
			n++
		}
	}
	return n
}

func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// groupRestarts counts, over every group process's log, the groups built
// again after their run failed.
func groupRestarts(c *campaign) int {
	n := 0
	for _, name := range []string{"intake", "subject-a", "subject-b", "subject-c", "warehouse"} {
		n += logCount(c.ps.get(name).logf, "processor group restarted")
	}
	return n
}

// gauge reads one metric of a process's /metrics.
func gauge(addr, name string) (float64, bool) {
	client := &http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return f, err == nil
		}
	}
	return 0, false
}
