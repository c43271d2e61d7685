package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/time/rate"

	"github.com/eprostream/eprostream/emitters"
	"github.com/eprostream/eprostream/internal/loadgen"
)

type loadgenFlags struct {
	gen      loadgen.Config
	seed     uint64
	rate     float64
	total    int
	progress bool
}

func (f *loadgenFlags) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.Uint64Var(&f.seed, "seed", 1, "seed: the same seed and settings send the same records")
	fs.Float64Var(&f.rate, "rate", 2000, "records per second; 0 sends as fast as Kafka takes them")
	fs.IntVar(&f.total, "total", 0, "stop after this many records; 0 sends the whole trial")
	fs.IntVar(&f.gen.Studies, "studies", loadgen.DefaultStudies, "studies in the trial")
	fs.IntVar(&f.gen.SitesPerStudy, "sites", loadgen.DefaultSitesPerStudy, "sites per study")
	fs.IntVar(&f.gen.SubjectsPerSite, "subjects-per-site", loadgen.DefaultSubjectsPerSite, "subjects per site")
	fs.IntVar(&f.gen.Days, "days", loadgen.DefaultDays, "simulated days; the last is today, up to now")
	fs.Float64Var(&f.gen.AbnormalShare, "abnormal", loadgen.DefaultAbnormalShare, "share of reports with values that fire a clinical rule")
	fs.Float64Var(&f.gen.DuplicateRate, "duplicates", loadgen.DefaultDuplicateRate, "share of records re-sent with the same message_id")
	fs.Float64Var(&f.gen.MalformedRate, "malformed", loadgen.DefaultMalformedRate, "share of malformed records")
	fs.Float64Var(&f.gen.FHIRShare, "fhir", 0.1, "share of reports generated as FHIR (LOINC-form QuestionnaireResponses, vitals as Observations) and sent as their mapping")
	fs.BoolVar(&f.progress, "progress", stderrIsTerminal(), "show a progress bar on stderr (default: when stderr is a terminal)")
}

func (f *loadgenFlags) config() loadgen.Config {
	c := f.gen
	c.Seed = f.seed
	// The trial's last simulated day is today, cut at now: it looks like a
	// live trial, and no report is dated in the future.
	now := time.Now().UTC()
	c.Start, c.End = now.Truncate(24*time.Hour).AddDate(0, 0, -(c.Days-1)), now
	for _, r := range []*float64{&c.AbnormalShare, &c.DuplicateRate, &c.MalformedRate, &c.FHIRShare} {
		if *r == 0 {
			*r = -1 // loadgen reads 0 as "default"; on the command line 0 means none
		}
	}
	return c
}

func newLoadgenCmd(a *app) *cobra.Command {
	f := &loadgenFlags{}
	cmd := &cobra.Command{
		Use:   "loadgen",
		Short: "Send a synthetic clinical trial's submissions to epro-submissions",
		Long: `loadgen simulates a trial (studies, sites, subjects, days of daily PRO-CTCAE,
pain NRS and vitals, weekly PHQ-9, free-text diaries) with a share of abnormal
values that fire every default rule, re-sent duplicates and malformed records,
and sends it through the Go emitter (acks=all) at --rate records per second.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sum, err := runLoadgen(cmd.Context(), a, f, cmd.ErrOrStderr(), nil)
			fmt.Fprintln(a.stdout, sum)
			return err
		},
	}
	f.register(cmd)
	return cmd
}

// loadSummary is what a load run did.
type loadSummary struct {
	sent, failed    int64
	valid, dup, bad int
	elapsed         time.Duration
}

func (s loadSummary) String() string {
	rate := float64(s.sent) / max(s.elapsed.Seconds(), 1e-9)
	return fmt.Sprintf("loadgen: %d records stored (%d valid, %d duplicates, %d malformed), %d failed, in %s (%.0f records/s)",
		s.sent, s.valid, s.dup, s.bad, s.failed, s.elapsed.Round(time.Millisecond), rate)
}

// runLoadgen sends the trial; sent, when not nil, receives each valid
// record's message id and send time (for latency measurements).
func runLoadgen(ctx context.Context, a *app, f *loadgenFlags, progress io.Writer, sent func(id string, at time.Time)) (loadSummary, error) {
	gen, err := loadgen.New(f.config())
	if err != nil {
		return loadSummary{}, err
	}
	em, err := emitters.NewSubmissionEmitter(a.cfg.Emitters(), emitters.Deps{Log: a.log})
	if err != nil {
		return loadSummary{}, err
	}
	planned := gen.Planned()
	if f.total > 0 {
		planned = min(planned, f.total)
	}
	var bar *progressbar.ProgressBar
	if f.progress {
		bar = progressbar.NewOptions(planned, progressbar.OptionSetWriter(progress), progressbar.OptionShowCount(),
			progressbar.OptionShowIts(), progressbar.OptionSetItsString("records"), progressbar.OptionThrottle(200*time.Millisecond))
	}
	limit := rate.NewLimiter(rate.Inf, 1)
	if f.rate > 0 {
		limit = rate.NewLimiter(rate.Limit(f.rate), max(1, int(f.rate/100)))
	}
	var sum loadSummary
	var ok, failed atomic.Int64
	var firstErr error
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for n := 0; n < planned; n++ {
		if err := limit.Wait(ctx); err != nil {
			break // interrupted: stop sending, still wait for what is in flight
		}
		rec, more := gen.Next()
		if !more {
			break
		}
		switch rec.Kind {
		case loadgen.Valid:
			sum.valid++
			if sent != nil {
				sent(rec.MessageID, time.Now())
			}
		case loadgen.Duplicate:
			sum.dup++
		default:
			sum.bad++
		}
		wg.Add(1)
		em.EmitRawAsync(rec.Key, rec.Value, func(err error) {
			defer wg.Done()
			if err != nil {
				failed.Add(1)
				mu.Lock()
				firstErr = cmpErr(firstErr, err)
				mu.Unlock()
				return
			}
			ok.Add(1)
			if bar != nil {
				_ = bar.Add(1)
			}
		})
	}
	wg.Wait()
	if bar != nil {
		_ = bar.Finish()
		fmt.Fprintln(progress)
	}
	closeErr := em.Close()
	sum.sent, sum.failed, sum.elapsed = ok.Load(), failed.Load(), time.Since(start)
	if firstErr != nil {
		return sum, fmt.Errorf("loadgen: %d records were not stored, first error: %w", sum.failed, firstErr)
	}
	return sum, closeErr
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

func stderrIsTerminal() bool {
	fi, err := os.Stderr.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
