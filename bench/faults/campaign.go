package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/eprostream/eprostream/internal/config"
	"github.com/eprostream/eprostream/internal/connect"
)

// campaign is the running system under test and what the scenarios share.
type campaign struct {
	o        options
	st       *stack
	ps       *procs
	cfg      config.Config
	ch       driver.Conn
	token    string
	subjects []subjectRef
	csv      *csv.Writer
}

type scenario struct {
	name  string
	fault string // what is done, for the report
	// needsCluster: the scenario needs several Kafka nodes.
	needsCluster bool
	// inject runs the fault (it starts faultAt into the load) and returns
	// what was observed of it; an error means the fault did not happen as
	// intended.
	inject func(ctx context.Context, c *campaign) (string, error)
}

type outcome struct {
	sc       scenario
	ran      bool
	why      string // why it did not run
	t        tally
	load     *loadResult
	observed string
	catchUp  time.Duration
	failures []string
}

// configVars are the variables eprostream reads: none of the caller's may
// point the system under test at another stack.
var configVars = []string{"EPRO_ENV", "KAFKA_BROKERS", "TOPIC_PREFIX", "TOPIC_PARTITIONS", "TOPIC_REPLICATION", "REDIS_ADDR",
	"REDIS_PASSWORD", "CLICKHOUSE_ADDR", "CLICKHOUSE_DATABASE", "CLICKHOUSE_USER", "CLICKHOUSE_PASSWORD", "ADMIN_ADDR",
	"LOG_LEVEL", "LOG_FORMAT", "DIAL_TIMEOUT", "STUDIES_FILE"}

func run(ctx context.Context, o options) (bool, error) {
	began := time.Now()
	if err := os.MkdirAll(filepath.Join(o.dir, "logs"), 0o755); err != nil {
		return false, err
	}
	stackLog, err := os.Create(filepath.Join(o.dir, "stack.log"))
	if err != nil {
		return false, err
	}
	defer stackLog.Close()
	st := &stack{root: o.root, dir: o.dir, nodes: 1, log: stackLog}
	if clusterSupported(o.root) {
		st.nodes = 3
	}
	say("stack: %d Kafka node(s) on %s, Redis 127.0.0.1:%d, ClickHouse 127.0.0.1:%d, in %s", st.nodes,
		strings.Join(st.brokers(), ","), redisPort, chPort, o.dir)

	// Whatever a previous campaign left running in this folder is stopped,
	// and its data removed, so every campaign starts from nothing (the
	// Kafka jars are kept).
	if st.nodes > 1 {
		// A single broker of a campaign run before the cluster existed
		// lives under other pidfiles: stopped too.
		st.nodes = 1
		err := st.run(ctx, 3*time.Minute, "down", "kafka")
		st.nodes = 3
		if err != nil {
			return false, err
		}
	}
	if err := st.run(ctx, 3*time.Minute, "down"); err != nil {
		return false, err
	}
	if err := wipe(o.dir); err != nil {
		return false, err
	}
	defer func() {
		if o.keep {
			say("stack left running (-keep): DEVSTACK_DIR=%s", o.dir)
			return
		}
		say("stopping the campaign's stack")
		stopCtx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		if err := st.run(stopCtx, 3*time.Minute, "down"); err != nil {
			fmt.Fprintln(os.Stderr, "faults:", err)
		}
	}()
	say("starting the stack (devstack/stack.sh up)")
	if err := st.run(ctx, 15*time.Minute, "up"); err != nil {
		return false, err
	}

	say("building bin/eprostream")
	bin := filepath.Join(o.root, "bin", "eprostream")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/eprostream")
	build.Dir = o.root
	if out, err := build.CombinedOutput(); err != nil {
		return false, fmt.Errorf("go build: %v\n%s", err, out)
	}

	stamp := time.Now().UTC().Format("20060102-150405")
	studies := filepath.Join(o.dir, "studies.yaml")
	if err := os.WriteFile(studies, []byte(catalogue()), 0o644); err != nil {
		return false, err
	}
	vars := map[string]string{
		"EPRO_ENV":            "faults",
		"KAFKA_BROKERS":       strings.Join(st.brokers(), ","),
		"REDIS_ADDR":          "127.0.0.1:" + strconv.Itoa(redisPort),
		"CLICKHOUSE_ADDR":     "127.0.0.1:" + strconv.Itoa(chPort),
		"TOPIC_PREFIX":        "faults-" + stamp + ".",
		"CLICKHOUSE_DATABASE": "faults_" + strings.ReplaceAll(stamp, "-", "_"),
		"STUDIES_FILE":        studies,
		"LOG_LEVEL":           "info",
	}
	if st.nodes >= 3 {
		// goka checks the replication of the topics it uses against this,
		// so every process says what migrate created.
		vars["TOPIC_REPLICATION"] = "3"
	}
	env := []string{}
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); !slices.Contains(configVars, name) {
			env = append(env, kv)
		}
	}
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	cfg, err := config.FromEnv(func(k string) (string, bool) { v, ok := vars[k]; return v, ok })
	if err != nil {
		return false, err
	}
	c := &campaign{o: o, st: st, cfg: cfg, subjects: roster(o.subjects),
		ps: &procs{bin: bin, env: env, dir: o.dir, all: map[string]*proc{}}}
	defer c.ps.stopAll()

	migrate := []string{"migrate"}
	if st.nodes >= 3 {
		migrate = append(migrate, "--replication", "3")
	}
	say("eprostream %s (topics under %s, database %s)", strings.Join(migrate, " "), cfg.TopicPrefix, cfg.ClickHouseDatabase)
	if _, err := c.cli(ctx, 3*time.Minute, nil, migrate...); err != nil {
		return false, err
	}
	out, err := c.cli(ctx, time.Minute, nil, "apikey", "create", "--name", "fault campaign", "--study", study,
		"--role", "submit", "--lifetime", "6h")
	if err != nil {
		return false, err
	}
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, "token:"); ok {
			c.token = strings.TrimSpace(v)
		}
	}
	if c.token == "" {
		return false, fmt.Errorf("apikey create printed no token:\n%s", out)
	}
	var rosterCSV strings.Builder
	rosterCSV.WriteString("subject_id,study_id,site_id\n")
	for _, s := range c.subjects {
		fmt.Fprintf(&rosterCSV, "%s,%s,%s\n", s.id, study, s.site)
	}
	// Topics migrate just created may not be known to every node yet: the
	// enrolment is tried again a few times (it leaves enrolled subjects as
	// they are).
	for i := 0; ; i++ {
		out, err := c.cli(ctx, 3*time.Minute, strings.NewReader(rosterCSV.String()), "enroll", "--file", "-")
		if err == nil {
			say("%s", strings.TrimSpace(out))
			break
		}
		if i == 5 {
			return false, err
		}
		sleep(ctx, 3*time.Second)
	}

	if c.ch, err = connect.ClickHouse(cfg, cfg.ClickHouseDatabase); err != nil {
		return false, err
	}
	defer c.ch.Close()
	// The warehouse's tables are ReplacingMergeTree: a background merge
	// folds a row stored twice into one, so counting them would hide a
	// duplicate insert. Each insert is copied, as it happens, into a plain
	// MergeTree that never folds rows; the counts read those copies.
	for _, mv := range []string{
		"campaign_submission_inserts ENGINE = MergeTree ORDER BY (study_id, message_id) AS SELECT study_id, message_id FROM %[1]s.submissions",
		"campaign_alert_inserts ENGINE = MergeTree ORDER BY alert_id AS SELECT alert_id FROM %[1]s.alerts",
	} {
		if err := c.ch.Exec(ctx, fmt.Sprintf("CREATE MATERIALIZED VIEW %[1]s."+mv, cfg.ClickHouseDatabase)); err != nil {
			return false, fmt.Errorf("create the campaign's insert copies: %w", err)
		}
	}

	state := filepath.Join(o.dir, "state")
	c.ps.add("ingest", "127.0.0.1:29464", "ingest", "--listen", ingestAddr)
	c.ps.add("intake", "127.0.0.1:29465", "process", "--group", "intake", "--state-dir", filepath.Join(state, "intake"))
	for i, n := range []string{"subject-a", "subject-b", "subject-c"} {
		c.ps.add(n, "127.0.0.1:"+strconv.Itoa(29466+i), "process", "--group", "subject", "--schedule-interval", "0",
			"--state-dir", filepath.Join(state, n))
	}
	c.ps.add("warehouse", "127.0.0.1:29469", "process", "--group", "warehouse", "--state-dir", filepath.Join(state, "warehouse"))
	for _, n := range []string{"intake", "subject-a", "subject-b", "warehouse", "ingest"} {
		if err := c.ps.start(c.ps.get(n)); err != nil {
			return false, err
		}
	}
	for _, n := range []string{"intake", "subject-a", "subject-b", "warehouse", "ingest"} {
		if err := c.ps.get(n).waitReady(ctx, 3*time.Minute); err != nil {
			return false, err
		}
	}
	say("system up: ingest %s, intake, subject ×2, warehouse (logs in %s)", ingestAddr, filepath.Join(o.dir, "logs"))

	reqs, err := os.Create(filepath.Join(o.dir, "requests.csv"))
	if err != nil {
		return false, err
	}
	defer reqs.Close()
	c.csv = csv.NewWriter(reqs)
	_ = c.csv.Write([]string{"scenario", "message_id", "attempt", "status", "error", "answered_at", "latency_ms"})
	defer c.csv.Flush()

	var results []outcome
	for _, sc := range scenarios() {
		if o.only != nil && !o.only[sc.name] {
			continue
		}
		if ctx.Err() != nil {
			results = append(results, outcome{sc: sc, why: "the campaign was stopped before it (" + ctx.Err().Error() + ")"})
			continue
		}
		if sc.needsCluster && st.nodes < 3 {
			results = append(results, outcome{sc: sc, why: "needs a 3-node Kafka cluster; devstack/stack.sh has no DEVSTACK_KAFKA_NODES / kill-node"})
			continue
		}
		results = append(results, c.scenario(ctx, sc))
		c.csv.Flush()
	}
	report := table(results, st, time.Since(began))
	fmt.Println()
	fmt.Print(report)
	_ = os.WriteFile(filepath.Join(o.dir, "report.md"), []byte(report), 0o644)
	ok := true
	for _, r := range results {
		if len(r.failures) > 0 {
			ok = false
		}
	}
	return ok, nil
}

// scenario runs one scenario from load to count.
func (c *campaign) scenario(ctx context.Context, sc scenario) outcome {
	res := outcome{sc: sc, ran: true}
	say("scenario %s: %s, load %s at %d/s over %d connections", sc.name, sc.fault, c.o.load, c.o.rate, c.o.conns)
	c.ps.takeUnexpected() // a scenario answers for its own exits only
	restartsBefore := groupRestarts(c)
	tag := sc.name
	// The load lasts -load, and at least until 15 s after the fault is
	// over (a service back up, a process ready again), so the recovery is
	// seen under load too.
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	type injected struct {
		obs string
		err error
	}
	faultDone := make(chan injected, 1)
	go func() {
		start := time.Now()
		select {
		case <-ctx.Done():
			faultDone <- injected{err: ctx.Err()}
			stopLoad()
			return
		case <-time.After(c.o.faultAt):
		}
		obs, err := sc.inject(ctx, c)
		faultDone <- injected{obs, err}
		sleep(ctx, max(c.o.load-time.Since(start), 15*time.Second))
		stopLoad()
	}()
	lr := driveLoad(loadCtx, "http://"+ingestAddr+"/v1/submissions", c.token, tag, c.o.rate, c.o.conns, c.subjects)
	res.load = lr
	f := <-faultDone
	res.observed = f.obs
	if f.err != nil {
		res.failures = append(res.failures, "fault: "+f.err.Error())
	}
	for _, a := range lr.attempts {
		errText := a.err
		_ = c.csv.Write([]string{tag, a.id, strconv.Itoa(a.n), strconv.Itoa(a.status), errText,
			a.at.UTC().Format(time.RFC3339Nano), strconv.FormatInt(a.took.Milliseconds(), 10)})
	}
	// A process that ended by itself is a finding; it is started again so
	// the count, and the next scenario, run on the whole system.
	for _, u := range c.ps.takeUnexpected() {
		res.failures = append(res.failures, u)
	}
	for _, n := range []string{"ingest", "intake", "warehouse"} {
		if p := c.ps.get(n); !p.running() {
			if err := c.ps.restart(ctx, p, 0); err != nil {
				res.failures = append(res.failures, err.Error())
			}
		}
	}
	took, err := caughtUp(ctx, c.cfg, 4*time.Minute)
	res.catchUp = took
	if err != nil {
		res.failures = append(res.failures, err.Error())
	}
	if n := groupRestarts(c) - restartsBefore; n > 0 {
		res.observed += fmt.Sprintf("; %d processor group(s) failed and were built again inside their process", n)
	}
	// The groups' commits say ClickHouse has every row; a count that still
	// misses some is read again a few times before it is called a loss.
	for i := 0; ; i++ {
		res.t, err = countRows(ctx, c.ch, c.cfg.ClickHouseDatabase, tag, lr)
		if err != nil || len(res.t.lost) == 0 || i == 6 {
			break
		}
		time.Sleep(5 * time.Second)
	}
	if err != nil {
		res.failures = append(res.failures, err.Error())
	}
	if res.t.accepted == 0 {
		res.failures = append(res.failures, "nothing was accepted")
	}
	if len(res.t.lost) > 0 {
		slices.Sort(res.t.lost)
		res.failures = append(res.failures, fmt.Sprintf("%d accepted ids are not in ClickHouse, e.g. %s", len(res.t.lost), sample(res.t.lost)))
	}
	if res.t.duplicated > 0 {
		slices.Sort(res.t.dupIDs)
		res.failures = append(res.failures, fmt.Sprintf("%d rows beyond one per id, e.g. %s", res.t.duplicated, sample(res.t.dupIDs)))
	}
	if res.t.alertRows != res.t.alertUnique {
		res.failures = append(res.failures, fmt.Sprintf("alerts: %d rows for %d alert ids", res.t.alertRows, res.t.alertUnique))
	}
	say("scenario %s: accepted %d (%s), lost %d, duplicated %d, longest pause %s, other answers: %s; fault: %s; caught up in %s",
		sc.name, res.t.accepted, lr.rates(), len(res.t.lost), res.t.duplicated, lr.longestPause().Round(10*time.Millisecond), lr.otherAnswers(),
		res.observed, took.Round(time.Second))
	for _, f := range res.failures {
		say("scenario %s: FAIL: %s", sc.name, f)
	}
	return res
}

func sample(ids []string) string {
	if len(ids) > 10 {
		return strings.Join(ids[:10], ", ") + ", …"
	}
	return strings.Join(ids, ", ")
}

// cli runs one eprostream subcommand to completion and returns its output.
func (c *campaign) cli(ctx context.Context, timeout time.Duration, stdin *strings.Reader, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.ps.bin, args...)
	cmd.Env = append(append([]string{}, c.ps.env...), "ADMIN_ADDR=")
	if stdin != nil {
		cmd.Stdin = stdin
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("eprostream %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// catalogue is the campaign's study: enrolment required, so every
// submission is checked against the roster the campaign enrolled.
func catalogue() string {
	return "studies:\n  - id: " + study + "\n    sites: [" + strings.Join(sites, ", ") + "]\n" +
		"    instruments: [PRO-CTCAE]\n    enrollment: required\n"
}

// wipe removes the data of a previous campaign in dir, keeping the Kafka
// jars stack.sh resolved (they take a while to fetch).
func wipe(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		switch e.Name() {
		case "kafka":
			sub, err := os.ReadDir(p)
			if err != nil {
				return err
			}
			for _, s := range sub {
				if s.Name() != "libs" {
					if err := os.RemoveAll(filepath.Join(p, s.Name())); err != nil {
						return err
					}
				}
			}
		case "stack.log":
		case "logs":
			if err := os.RemoveAll(p); err != nil {
				return err
			}
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
		default:
			if err := os.RemoveAll(p); err != nil {
				return err
			}
		}
	}
	return nil
}

// table is the campaign's report in Markdown.
func table(results []outcome, st *stack, took time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Fault campaign, %s, %d Kafka node(s), %s in all.\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"), st.nodes,
		took.Round(time.Second))
	b.WriteString("| scenario | accepted | lost | duplicated | longest pause | other answers |\n|---|---|---|---|---|---|\n")
	for _, r := range results {
		if !r.ran {
			fmt.Fprintf(&b, "| %s | not run | | | | %s |\n", r.sc.name, r.why)
			continue
		}
		other := r.load.otherAnswers()
		if r.t.unaccepted > 0 {
			other += fmt.Sprintf("; %d stored without a 202 (no answer reached the client)", r.t.unaccepted)
		}
		if n := len(r.load.gaveUp); n > 0 {
			other += fmt.Sprintf("; %d given up after %s of retries", n, retryFor)
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %s | %s |\n", r.sc.name, r.t.accepted, len(r.t.lost), r.t.duplicated,
			fmtDur(r.load.longestPause()), other)
	}
	b.WriteString("\nFaults, as observed:\n\n")
	for _, r := range results {
		if !r.ran {
			continue
		}
		status := "ok"
		if len(r.failures) > 0 {
			status = "FAILED: " + strings.Join(r.failures, "; ")
		}
		fmt.Fprintf(&b, "- **%s** (%s): %s. Load %s; caught up %s after it; %d alerts in ClickHouse, ids unique: %v. %s\n",
			r.sc.name, r.sc.fault, r.observed, r.load.rates(), fmtDur(r.catchUp), r.t.alertUnique, r.t.alertRows == r.t.alertUnique, status)
	}
	return b.String()
}

func fmtDur(d time.Duration) string {
	if d < 10*time.Second {
		return d.Round(10 * time.Millisecond).String()
	}
	return d.Round(100 * time.Millisecond).String()
}

func say(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "%s faults: %s\n", time.Now().UTC().Format("15:04:05"), fmt.Sprintf(format, a...))
}

// logCount counts the lines of a process's log holding text.
func logCount(path, text string) int {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), text) {
			n++
		}
	}
	return n
}
