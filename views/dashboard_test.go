package views_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/eprostream/eprostream/codecs"
)

// screenshotDir is where the dashboard test leaves its screenshot.
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

// The dashboard, driven by headless Chromium against the real Kafka: an
// alert raised while the page is open appears in its live table, and the
// subject's timeline loads from the subject view.
func TestDashboardShowsALiveAlert(t *testing.T) {
	if _, err := os.Stat("/usr/bin/chromium"); err != nil {
		t.Fatal("chromium is not installed: `make test` installs it (bash devstack/stack.sh apt chromium)")
	}
	r := newReadSide(t)
	r.send(r.names.SubjectTable, "ONC-301-001-0001", codecs.SubjectState{V: 1, StudyID: "ONC-301", SiteID: "SITE-001",
		SubjectID: "ONC-301-001-0001", Reports: 2, LastAt: time.Now().Unix(),
		Items: map[string]*codecs.ItemHistory{"PAIN_SEVERITY": {Recent: []codecs.Point{{T: time.Now().Add(-time.Hour).Unix(), V: 2}, {T: time.Now().Unix(), V: 8}}}}})
	r.start()

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath("/usr/bin/chromium"),
		chromedp.NoSandbox, chromedp.DisableGPU, chromedp.WindowSize(1280, 800))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	browser, cancel := chromedp.NewContext(allocCtx)
	defer cancel()
	// The first call starts the browser and lives as long as its context.
	if err := chromedp.Do(browser, chromedp.Navigate(r.url+"/#key="+r.token)); err != nil {
		t.Fatalf("chromium: %v", err)
	}
	ctx, cancelTimeout := context.WithTimeout(browser, 90*time.Second)
	defer cancelTimeout()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.getElementById("status").textContent.startsWith("live")`,
		chromedp.WithPollingTimeout(30*time.Second))); err != nil {
		t.Fatalf("page did not connect to the stream: %v", err)
	}
	r.send(r.names.Alerts, "ONC-301-001-0001", alert("a-e2e-1", "urgent", "SITE-001"))
	sel := `tr[data-alert-id="a-e2e-1"]`
	if err := chromedp.Do(ctx, chromedp.WaitVisible(sel)); err != nil {
		t.Fatalf("the alert did not appear on the page: %v", err)
	}
	row, err := chromedp.Run(ctx, chromedp.Text(sel))
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Click(sel+" a")); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.getElementById("subject-info").textContent.includes("reports")`,
		chromedp.WithPollingTimeout(15*time.Second))); err != nil {
		t.Fatalf("subject timeline did not load: %v", err)
	}
	info, err := chromedp.Run(ctx, chromedp.Text("#subject-info"))
	if err != nil {
		t.Fatal(err)
	}
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(row, "urgent") || !strings.Contains(row, "ONC-301-001-0001") || !strings.Contains(info, "2 reports") {
		t.Fatalf("row %q, subject info %q", row, info)
	}
	path := filepath.Join(screenshotDir(t), "dashboard.png")
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", path, len(shot))
}
