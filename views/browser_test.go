package views_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/chromedp/chromedp"

	"github.com/eprostream/eprostream/internal/config"
	"github.com/eprostream/eprostream/internal/redis/apikeys"
	"github.com/eprostream/eprostream/internal/testenv"
)

// screenshotDir is where the browser tests leave their screenshots.
func screenshotDir(t *testing.T) string {
	dir := os.Getenv("SCREENSHOT_DIR")
	if dir == "" {
		dir = filepath.Join("..", ".devstack", "screenshots")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// liveStack is the whole product as processes of the real binary on the
// real Kafka, Redis and ClickHouse, in a topic prefix, a Redis env and a
// ClickHouse database of its own: `serve` (the ingest API and every group)
// and `views --ingest-url` (the dashboard).
type liveStack struct {
	t         *testing.T
	cfg       config.Config
	env       []string
	keys      *apikeys.Store
	ch        driver.Conn
	ingest    string // http://host:port
	views     string
	submitKey string
	nurseKey  string // read and operate, ONC-301
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// newLiveEnv gives a test its own slice of the real stack and the
// environment of its processes.
func newLiveEnv(t *testing.T) *liveStack {
	cfg := testenv.Kafka(t)
	ch, db := testenv.ClickHouse(t)
	rdb, _ := testenv.Redis(t)
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	envName := "dash-" + hex.EncodeToString(b)
	prefix := "eprostream:" + envName + ":"
	t.Cleanup(func() {
		ctx := context.Background()
		iter := rdb.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
	})
	s := &liveStack{t: t, cfg: cfg, keys: apikeys.NewStore(rdb, prefix), ch: ch,
		env: []string{"TOPIC_PREFIX=" + cfg.TopicPrefix, "CLICKHOUSE_DATABASE=" + db, "EPRO_ENV=" + envName,
			"KAFKA_BROKERS=" + strings.Join(cfg.KafkaBrokers, ","), "TOPIC_PARTITIONS=3", "ADMIN_ADDR=", "LOG_LEVEL=info"}}
	return s
}

func newLiveStack(t *testing.T) *liveStack {
	s := newLiveEnv(t)
	if out, err := s.command("migrate").CombinedOutput(); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	ingest, views := freeAddr(t), freeAddr(t)
	s.ingest, s.views = "http://"+ingest, "http://"+views
	serveLog := s.start("serve", "serve", "--listen", ingest, "--state-dir", t.TempDir())
	s.start("views", "views", "--listen", views, "--ingest-url", s.ingest, "--state-dir", t.TempDir(), "--webhooks=false")
	s.waitLog(serveLog, "study registry loaded", 90*time.Second)
	s.waitHTTP(s.views + "/")
	s.submitKey = s.key("submitter", []string{"ONC-301"}, apikeys.RoleSubmit)
	s.nurseKey = s.key("nurse", []string{"ONC-301"}, apikeys.RoleRead, apikeys.RoleOperate)
	return s
}

func (s *liveStack) command(args ...string) *exec.Cmd {
	cmd := exec.Command(testenv.Binary(s.t), args...)
	cmd.Env = append(os.Environ(), s.env...)
	return cmd
}

// start runs `eprostream args...` until the test ends; its log is shown
// when the test failed.
func (s *liveStack) start(name string, args ...string) string {
	s.t.Helper()
	logPath := filepath.Join(s.t.TempDir(), name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		s.t.Fatal(err)
	}
	cmd := s.command(args...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		_ = f.Close()
		if s.t.Failed() {
			b, _ := os.ReadFile(logPath)
			if len(b) > 6000 {
				b = b[len(b)-6000:]
			}
			s.t.Logf("%s log (tail):\n%s", name, b)
		}
	})
	return logPath
}

func (s *liveStack) waitLog(path, line string, d time.Duration) {
	s.t.Helper()
	for deadline := time.Now().Add(d); ; time.Sleep(100 * time.Millisecond) {
		if b, _ := os.ReadFile(path); strings.Contains(string(b), line) {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%q not in %s within %s", line, path, d)
		}
	}
}

func (s *liveStack) waitHTTP(url string) {
	s.t.Helper()
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if resp, err := http.Get(url); err == nil {
			_ = resp.Body.Close()
			return
		} else if time.Now().After(deadline) {
			s.t.Fatalf("%s did not answer: %v", url, err)
		}
	}
}

func (s *liveStack) key(name string, studies []string, roles ...string) string {
	s.t.Helper()
	_, token, err := s.keys.Create(context.Background(), apikeys.Spec{Name: name, Studies: studies, Roles: roles, Lifetime: time.Hour})
	if err != nil {
		s.t.Fatal(err)
	}
	return token
}

// post sends a JSON body to the ingest API and returns the status and body.
func (s *liveStack) post(path, token, body string) (int, string) {
	s.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.ingest+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

var msgSeq int

// submit sends one native submission and requires its 202.
func (s *liveStack) submit(subject, site, instrument string, at time.Time, items string) {
	s.t.Helper()
	msgSeq++
	body := fmt.Sprintf(`{"message_id":"dash-%d-%d","study_id":"ONC-301","site_id":%q,"subject_id":%q,"instrument":%q,"submitted_at":%q,"source":"app","items":[%s]}`,
		time.Now().UnixNano(), msgSeq, site, subject, instrument, at.UTC().Format(time.RFC3339), items)
	if status, answer := s.post("/v1/submissions", s.submitKey, body); status != http.StatusAccepted {
		s.t.Fatalf("submission of %s: %d %s", subject, status, answer)
	}
}

// count runs a ClickHouse count.
func (s *liveStack) count(query string, args ...any) uint64 {
	s.t.Helper()
	var n uint64
	if err := s.ch.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		s.t.Fatal(err)
	}
	return n
}

// browser is one headless Chromium; each page is a tab of its own (its own
// sessionStorage, so its own key).
type browser struct {
	t   *testing.T
	ctx context.Context
}

func newBrowser(t *testing.T) *browser {
	if _, err := os.Stat("/usr/bin/chromium"); err != nil {
		t.Fatal("chromium is not installed: `make test` installs it (bash devstack/stack.sh apt chromium)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath("/usr/bin/chromium"),
		chromedp.NoSandbox, chromedp.DisableGPU, chromedp.WindowSize(1400, 1100))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("chromium: %v", err)
	}
	return &browser{t: t, ctx: ctx}
}

type page struct {
	t    *testing.T
	name string
	ctx  context.Context
}

// open opens url in a new tab and waits until the page is on the stream.
func (b *browser) open(name, url string) *page {
	b.t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx)
	b.t.Cleanup(cancel)
	p := &page{t: b.t, name: name, ctx: ctx}
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		b.t.Fatalf("%s: %v", name, err)
	}
	p.wait("the alert stream", `document.getElementById("status").textContent.startsWith("live")`, 30*time.Second)
	return p
}

func eval[T any](p *page, expr string) T {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		p.t.Fatalf("%s: %s: %v", p.name, expr, err)
	}
	return v
}

// wait polls expr until it is true.
func (p *page) wait(what, expr string, d time.Duration) {
	p.t.Helper()
	if _, err := chromedp.Run(p.ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(d))); err != nil {
		text, _ := chromedp.Run(p.ctx, chromedp.Evaluate[string](`document.body.innerText.slice(0, 1500)`))
		p.t.Fatalf("%s: %s did not happen within %s: %v\npage:\n%s", p.name, what, d, err, text)
	}
}

func (p *page) click(sel string) {
	p.t.Helper()
	if err := chromedp.Do(p.ctx, chromedp.Click(chromedp.CSS(sel))); err != nil {
		p.t.Fatalf("%s: click %s: %v", p.name, sel, err)
	}
}

func (p *page) screenshot(file string) {
	p.t.Helper()
	shot, err := chromedp.Run(p.ctx, chromedp.FullScreenshot(100)) // 100: PNG
	if err != nil {
		p.t.Fatal(err)
	}
	path := filepath.Join(screenshotDir(p.t), file)
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		p.t.Fatal(err)
	}
	p.t.Logf("screenshot: %s (%d bytes)", path, len(shot))
}

// rowState is the state cell of alert id's row in the triage table.
func rowState(id string) string {
	return `(document.querySelector('#alerts tr[data-alert-id="` + id + `"] td:last-child') || {textContent: ""}).textContent`
}

// The nurse's dashboard on the whole running product: an urgent alert
// raised while the pages are open is at the top under the urgent filter;
// acknowledging it from one page changes it there and on a second page,
// and the warehouse holds the command once, with its time to acknowledge.
// A read-only key sees no acknowledge control; an operate key of another
// study is refused with the ingest API's 403 on the page. The fever
// subject's timeline draws the 38.0 °C line and a marker at the alert.
func TestDashboardTriageAcknowledgeAndTimeline(t *testing.T) {
	s := newLiveStack(t)
	reader := s.key("reader", []string{apikeys.AllStudies}, apikeys.RoleRead)
	outsider := s.key("other study's nurse", []string{"CAR-200"}, apikeys.RoleOperate)
	now := time.Now().UTC()
	// The fever subject's earlier days, and a quiet report of the urgent one.
	s.submit("ONC-301-001-0002", "SITE-001", "VITALS", now.Add(-50*time.Hour), `{"code":"BODY_TEMPERATURE","value":36.9,"unit":"Cel"}`)
	s.submit("ONC-301-001-0002", "SITE-001", "VITALS", now.Add(-26*time.Hour), `{"code":"BODY_TEMPERATURE","value":37.2,"unit":"Cel"}`)
	s.submit("ONC-301-001-0001", "SITE-001", "PRO-CTCAE", now.Add(-26*time.Hour), `{"code":"PAIN_SEVERITY","value":1}`)

	b := newBrowser(t)
	nurse := b.open("nurse", s.views+"/#key="+s.nurseKey)
	second := b.open("second nurse", s.views+"/#key="+s.nurseKey)
	readOnly := b.open("read-only", s.views+"/#key="+reader)
	other := b.open("other study", s.views+"/#key="+reader+"&operate="+outsider)
	nurse.wait("the acknowledge permission", `document.getElementById("whoami").textContent.includes("operate")`, 15*time.Second)

	// Raised during the test: severe pain (urgent), nausea (warning), fever (warning).
	s.submit("ONC-301-001-0001", "SITE-001", "PRO-CTCAE", time.Now(), `{"code":"PAIN_SEVERITY","value":4},{"code":"NAUSEA_SEVERITY","value":3}`)
	s.submit("ONC-301-001-0002", "SITE-001", "VITALS", time.Now(), `{"code":"BODY_TEMPERATURE","value":38.6,"unit":"Cel"}`)
	nurse.wait("three alerts", `document.querySelectorAll("#alerts tr[data-alert-id]").length >= 3`, 60*time.Second)

	nurse.click(`.counts button[data-sev="urgent"]`)
	nurse.wait("the urgent filter", `document.querySelector('.counts button[data-sev="urgent"]').getAttribute("aria-pressed") === "true"`, 5*time.Second)
	rows := eval[[]string](nurse, `[...document.querySelectorAll("#alerts tr[data-alert-id]")].map(r => r.dataset.severity + " " + r.dataset.alertId + " " + r.textContent)`)
	if len(rows) == 0 || !strings.HasPrefix(rows[0], "urgent ") || !strings.Contains(rows[0], "ONC-301-001-0001") || !strings.Contains(rows[0], "severe-symptom") {
		t.Fatalf("under the urgent filter the rows are %q, want the severe pain alert on top", rows)
	}
	for _, r := range rows {
		if !strings.HasPrefix(r, "urgent ") {
			t.Fatalf("the urgent filter shows %q", r)
		}
	}
	if n := eval[string](nurse, `document.getElementById("n-warning").textContent`); n != "2" {
		t.Fatalf("warning count %q, want 2 (nausea, fever) beside the urgent filter", n)
	}
	urgent := strings.Fields(rows[0])[1]
	nurse.screenshot("dashboard-triage.png")

	// Read-only: the alert is there, no acknowledge control anywhere.
	readOnly.wait("the urgent alert", `!!document.querySelector('#alerts tr[data-alert-id="`+urgent+`"]')`, 30*time.Second)
	if n := eval[int](readOnly, `document.querySelectorAll("#alerts tr[data-alert-id]").length`); n < 3 {
		t.Fatalf("the read-only page shows %d alerts, want 3", n)
	}
	if n := eval[int](readOnly, `document.querySelectorAll("button.ack").length`); n != 0 {
		t.Fatalf("a read-only key sees %d acknowledge controls", n)
	}
	readOnly.screenshot("dashboard-read-only.png")

	nurse.click(`button[data-ack="` + urgent + `"]`)
	nurse.wait("the acknowledgement on the acting page", rowState(urgent)+`.startsWith("acknowledged ")`, 60*time.Second)
	second.wait("the acknowledgement on a second page", rowState(urgent)+`.startsWith("acknowledged ")`, 30*time.Second)
	if n := eval[int](second, `document.querySelectorAll('button[data-ack="`+urgent+`"]').length`); n != 0 {
		t.Fatal("the second page still offers to acknowledge the acknowledged alert")
	}

	// The warehouse: the command once, with a time to acknowledge. A
	// retried acknowledgement, then the nausea alert's, are sent after it
	// for the same subject (one partition of epro-commands, read in order):
	// once the nausea one is stored, the retry has been through too.
	commands := "SELECT count() FROM operator_commands WHERE kind = 'alert_acknowledged' AND alert_id = ?"
	waitCount := func(id string) {
		for deadline := time.Now().Add(90 * time.Second); s.count(commands, id) == 0; time.Sleep(250 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("acknowledgement of %s not in operator_commands within 90 s", id)
			}
		}
	}
	waitCount(urgent)
	ack := `{"study_id":"ONC-301","subject_id":"ONC-301-001-0001"}`
	if status, body := s.post("/v1/alerts/"+urgent+"/ack", s.nurseKey, ack); status != http.StatusAccepted {
		t.Fatalf("retried acknowledgement: %d %s", status, body)
	}
	nausea := eval[string](nurse, `(() => { for (const a of alerts.values()) if (a.rule_id === "severe-symptom" && a.severity === "warning") return a.alert_id; return ""; })()`)
	if nausea == "" {
		t.Fatal("the nausea alert is not on the page")
	}
	if status, body := s.post("/v1/alerts/"+nausea+"/ack", s.nurseKey, ack); status != http.StatusAccepted {
		t.Fatalf("nausea acknowledgement: %d %s", status, body)
	}
	waitCount(nausea)
	if n := s.count(commands, urgent); n != 1 {
		t.Fatalf("operator_commands holds the acknowledgement of %s %d times, want once", urgent, n)
	}
	if n := s.count(`SELECT count() FROM alerts AS a INNER JOIN operator_commands AS c ON c.alert_id = a.alert_id
		WHERE a.alert_id = ? AND c.kind = 'alert_acknowledged' AND dateDiff('second', a.raised_at, c.at) >= 0`, urgent); n == 0 {
		t.Fatal("no time to acknowledge for the alert in the warehouse")
	}
	second.wait("the nausea acknowledgement sent elsewhere", rowState(nausea)+`.startsWith("acknowledged ")`, 30*time.Second)

	// Another study's operate key: the ingest API refuses, the page says so.
	fever := eval[string](nurse, `(() => { for (const a of alerts.values()) if (a.rule_id === "fever") return a.alert_id; return ""; })()`)
	if fever == "" {
		t.Fatal("the fever alert is not on the page")
	}
	other.wait("the fever alert's acknowledge control", `!!document.querySelector('button[data-ack="`+fever+`"]')`, 30*time.Second)
	other.click(`button[data-ack="` + fever + `"]`)
	other.wait("the 403 on the page", `document.getElementById("ack-status").textContent.includes("403")`, 30*time.Second)
	if st := eval[string](other, rowState(fever)); !strings.Contains(st, "403") || strings.HasPrefix(st, "acknowledged") {
		t.Fatalf("the refused acknowledgement's row says %q", st)
	}
	other.screenshot("dashboard-refused.png")

	// The fever subject's timeline.
	if err := chromedp.Do(nurse.ctx, chromedp.SetValue(chromedp.ID("subject-id"), "ONC-301-001-0002"),
		chromedp.Click(chromedp.CSS("#subject-form button"))); err != nil {
		t.Fatal(err)
	}
	nurse.wait("the temperature chart", `!!document.querySelector('svg[aria-labelledby^="chart-BODY_TEMPERATURE"] line[data-threshold="38"]')`, 30*time.Second)
	nurse.wait("the fever marker", `!!document.querySelector('svg[aria-labelledby^="chart-BODY_TEMPERATURE"] path[data-marker="`+fever+`"]')`, 30*time.Second)
	// The marker sits on the 38.6 value: its tip within 14 px above the
	// point, at the same x.
	off := eval[[]float64](nurse, `(() => {
		const svg = document.querySelector('svg[aria-labelledby^="chart-BODY_TEMPERATURE"]');
		const pts = [...svg.querySelectorAll("circle.point")].map(c => [+c.getAttribute("cx"), +c.getAttribute("cy")]);
		const top = pts.reduce((a, b) => b[1] < a[1] ? b : a);
		const d = svg.querySelector('path[data-marker]').getAttribute("d").match(/M([\d.]+),([\d.]+)/);
		return [pts.length, +d[1] - top[0], top[1] - +d[2]]; })()`)
	if off[0] != 3 || off[1] < -1 || off[1] > 1 || off[2] < 12 || off[2] > 14 {
		t.Fatalf("chart points, marker offset from the highest point: %v; want 3 points and the marker just above the highest", off)
	}
	label := eval[string](nurse, `document.querySelector('path[data-marker]').getAttribute("aria-label")`)
	if !strings.Contains(label, "fever") || !strings.Contains(label, "38.6") {
		t.Fatalf("the marker tells %q, want rule and value", label)
	}
	if n := eval[int](nurse, `document.querySelectorAll('#subject-charts details table tbody tr').length`); n != 3 {
		t.Fatalf("the table view holds %d rows, want the 3 reports", n)
	}
	nurse.screenshot("dashboard-timeline.png")

	// The history behind the charts answers only within the key's studies.
	otherReader := s.key("other study's reader", []string{"CAR-200"}, apikeys.RoleRead)
	for _, c := range []struct {
		path, token string
		want        int
	}{
		{"/v1/studies/ONC-301/subjects/ONC-301-001-0002/history", s.nurseKey, 200},
		{"/v1/studies/ONC-301/subjects/ONC-301-001-0002/history", otherReader, 403},
		{"/v1/studies/ONC-301/subjects/ONC-301-001-0002/history?days=0", s.nurseKey, 400},
	} {
		req, _ := http.NewRequest(http.MethodGet, s.views+c.path, nil)
		req.Header.Set("Authorization", "Bearer "+c.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != c.want || (c.want == 200 && !strings.Contains(string(b), `"BODY_TEMPERATURE":[{`)) {
			t.Fatalf("%s: %d %s, want %d", c.path, resp.StatusCode, b, c.want)
		}
	}
}

var readURL = regexp.MustCompile(`read only:\s+(http://\S+)`)

// After `eprostream demo`, whose trial ends today, the dashboard it prints
// shows today's compliance: at least one site above 0 %, and 14 days of
// bars per site.
func TestDemoDashboardShowsTodaysCompliance(t *testing.T) {
	s := newLiveEnv(t)
	dashboard, ingest := freeAddr(t), freeAddr(t)
	cmd := s.command("demo", "--dashboard", dashboard, "--ingest", ingest, "--linger", "5m", "--studies", "1", "--sites", "4",
		"--subjects-per-site", "10", "--days", "3", "--rate", "400", "--duration", "5s", "--progress=false")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() })
	var url string
	var printed []string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		printed = append(printed, line)
		if m := readURL.FindStringSubmatch(line); m != nil {
			url = m[1]
		}
		if strings.Contains(line, "the dashboard stays up") {
			break
		}
	}
	go func() { _, _ = io.Copy(io.Discard, out) }()
	if url == "" || !strings.Contains(strings.Join(printed, "\n"), "nurse (read, acknowledge):") {
		t.Fatalf("the demo printed no dashboard URL with a read and a nurse key:\n%s", strings.Join(printed, "\n"))
	}
	b := newBrowser(t)
	p := b.open("demo", url)
	p.wait("site rows", `document.querySelectorAll("#sites tr[data-site]").length === 4`, 60*time.Second)
	compliance := eval[[]string](p, `[...document.querySelectorAll("#sites td.compliance")].map(td => td.textContent)`)
	above := 0
	for _, c := range compliance {
		if c != "0 %" {
			above++
		}
	}
	if above == 0 {
		t.Fatalf("every site shows 0 %% compliance after the demo: %q", compliance)
	}
	if n := eval[int](p, `document.querySelectorAll("#sites tr[data-site]")[0].querySelectorAll("svg.spark rect:not(.bg)").length`); n != 14 {
		t.Fatalf("a site's chart has %d day bars, want 14", n)
	}
	p.screenshot("dashboard-sites.png")
	t.Logf("compliance per site after the demo: %q", compliance)
}

// A sweep of missed-diary alerts raised in one minute is one row, which
// opens from the keyboard; an urgent alert raised with them stays a row of
// its own, on top.
func TestDashboardGroupsASweepBesideAnUrgentAlert(t *testing.T) {
	r := newReadSide(t)
	r.start()
	b := newBrowser(t)
	p := b.open("triage", r.url+"/#key="+r.token)
	sweep := time.Now().UTC().Truncate(time.Minute).Add(10 * time.Second)
	for i := range 6 {
		a := alert(fmt.Sprintf("a-missed-%d", i), "info", "SITE-001")
		a.RuleID, a.SubjectID, a.RaisedAt = "missed-diary", fmt.Sprintf("ONC-301-001-%04d", i+10), sweep
		r.send(r.names.Alerts, a.SubjectID, a)
	}
	urgent := alert("a-urgent", "urgent", "SITE-001")
	urgent.RaisedAt = sweep.Add(time.Second)
	r.send(r.names.Alerts, urgent.SubjectID, urgent)
	p.wait("the group and the urgent row", `document.querySelectorAll("#alerts > tr").length === 2 && !!document.querySelector("#alerts tr.group")`, 30*time.Second)
	first := eval[string](p, `document.querySelector("#alerts > tr").dataset.alertId || ""`)
	group := eval[string](p, `document.querySelector("#alerts tr.group").textContent`)
	if first != "a-urgent" || !strings.Contains(group, "6 subjects") || !strings.Contains(group, "missed-diary") {
		t.Fatalf("first row %q, group %q: want the urgent alert on top and the 6 missed diaries in one group", first, group)
	}
	if n := eval[string](p, `document.getElementById("n-info").textContent`); n != "6" {
		t.Fatalf("info count %q, want 6", n)
	}
	if err := chromedp.Do(p.ctx, chromedp.Focus(chromedp.CSS("#alerts tr.group")), chromedp.KeyEvent("\r")); err != nil {
		t.Fatal(err)
	}
	p.wait("the group opened by Enter", `document.querySelector("#alerts tr.group").getAttribute("aria-expanded") === "true" && document.querySelectorAll("#alerts tr.member").length === 6`, 10*time.Second)
	p.screenshot("dashboard-grouped.png")
}
