// Command sinkbench measures the warehouse sink (chsink) beside a bare
// clickhouse-go PrepareBatch loop inserting the same rows in the same run,
// and the sink's time from Add to commit at a steady rate.
//
//	go run ./bench/sinkbench -rows 500000
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eprostream/eprostream/catalog"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/eprostream/eprostream/internal/clickhouse/chsink"
	"github.com/eprostream/eprostream/internal/clickhouse/schema"
	"github.com/eprostream/eprostream/internal/config"
	"github.com/eprostream/eprostream/internal/connect"
	"github.com/eprostream/eprostream/internal/loadgen"
	"github.com/eprostream/eprostream/processors/intake"
	"github.com/eprostream/eprostream/processors/warehouse"
)

func main() {
	n := flag.Int("rows", 500_000, "rows per throughput measurement")
	rate := flag.Int("rate", 5000, "rows per second for the latency measurement")
	flag.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the sink's only-writer phase to this file")
	flag.IntVar(&maxInserts, "max-inserts", 4, "the sink's concurrent inserts (the warehouse's --max-inserts)")
	flag.Parse()
	if err := run(*n, *rate); err != nil {
		fmt.Fprintln(os.Stderr, "sinkbench:", err)
		os.Exit(1)
	}
}

func run(n, rate int) error {
	cfg, err := config.FromOSEnv()
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx := context.Background()
	conn, err := connect.ClickHouse(cfg, "")
	if err != nil {
		return err
	}
	defer conn.Close()
	rows, err := makeRows(n)
	if err != nil {
		return err
	}
	fmt.Printf("| rows | %d submissions rows (PRO-CTCAE, NRS, vitals, PHQ-9 mix), 12 source partitions |\n", len(rows))

	now := time.Now().Unix()
	anchorDB, anchor2DB, sinkDB, sharedDB, latDB := fmt.Sprintf("bench_anchor_%d", now), fmt.Sprintf("bench_anchor2_%d", now),
		fmt.Sprintf("bench_sink_%d", now), fmt.Sprintf("bench_shared_%d", now), fmt.Sprintf("bench_lat_%d", now)
	for _, db := range []string{anchorDB, anchor2DB, sinkDB, sharedDB, latDB} {
		if err := schema.Migrate(ctx, conn, db, log); err != nil {
			return err
		}
		defer conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db)
	}

	// The anchor runs before and after the sink, and each phase starts on
	// a quiet server: the previous phase's database is dropped and its
	// merges are waited out, so no phase pays for another's background work.
	settle(ctx, conn, "")
	before, err := bare(ctx, conn, anchorDB, rows)
	if err != nil {
		return err
	}
	settle(ctx, conn, anchorDB)
	sinkRate, err := throughput(ctx, conn, sinkDB, rows, true, log)
	if err != nil {
		return err
	}
	settle(ctx, conn, sinkDB)
	sharedRate, err := throughput(ctx, conn, sharedDB, rows, false, log)
	if err != nil {
		return err
	}
	settle(ctx, conn, sharedDB)
	after, err := bare(ctx, conn, anchor2DB, rows)
	if err != nil {
		return err
	}
	settle(ctx, conn, anchor2DB)
	anchor := (before + after) / 2
	fmt.Printf("| anchor: bare clickhouse-go PrepareBatch loop, 50k-row batches, before / after the sink | %.0f / %.0f rows/s, mean %.0f |\n", before, after, anchor)
	fmt.Printf("| chsink, the only writer (id filter, offsets, %d concurrent inserts) | %.0f rows/s = %.0f%% of the anchor |\n", maxInserts, sinkRate, 100*sinkRate/anchor)
	fmt.Printf("| chsink, one of several writers (every id looked up, offsets, %d concurrent inserts) | %.0f rows/s = %.0f%% of the anchor |\n", maxInserts, sharedRate, 100*sharedRate/anchor)

	p50, p99, err := latency(ctx, conn, latDB, rows[:min(len(rows), rate*20)], rate, log)
	if err != nil {
		return err
	}
	fmt.Printf("| chsink Add → committed (row queryable) at %d rows/s, 1 s batch delay | p50 %s, p99 %s |\n", rate, p50, p99)
	return nil
}

func makeRows(n int) ([]chsink.Row, error) {
	gen, err := loadgen.New(loadgen.Config{Seed: 5, SubjectsPerSite: 250, Days: 60, DuplicateRate: -1, MalformedRate: -1,
		Start: time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -61)})
	if err != nil {
		return nil, err
	}
	offsets := make([]int64, 12)
	open, _ := catalog.Load("") // every study, the built-in instruments
	var rows []chsink.Row
	for len(rows) < n {
		r, ok := gen.Next()
		if !ok {
			break
		}
		c, err := intake.Clean(open, r.Value, time.Now())
		if err != nil {
			continue
		}
		p := int32(len(rows) % 12)
		row, err := warehouse.SubmissionRow(c, warehouse.Source{Topic: "bench-clean", Partition: p, Offset: offsets[p]})
		if err != nil {
			return nil, err
		}
		offsets[p]++
		rows = append(rows, row)
	}
	return rows, nil
}

// bare inserts rows into db's submissions in 50k-row batches with nothing
// else around them, and returns rows per second.
func bare(ctx context.Context, conn driver.Conn, db string, rows []chsink.Row) (float64, error) {
	start := time.Now()
	for i := 0; i < len(rows); i += 50_000 {
		batch, err := conn.PrepareBatch(ctx, "INSERT INTO "+db+".submissions ("+joinCols()+")")
		if err != nil {
			return 0, err
		}
		for _, r := range rows[i:min(len(rows), i+50_000)] {
			if err := batch.Append(r.Values...); err != nil {
				return 0, err
			}
		}
		if err := batch.Send(); err != nil {
			return 0, err
		}
	}
	return float64(len(rows)) / time.Since(start).Seconds(), nil
}

// settle drops db (unless empty) and waits (up to a minute) until the server runs no merge.
func settle(ctx context.Context, conn driver.Conn, db string) {
	if db != "" {
		_ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+db)
	}
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		var n uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM system.merges").Scan(&n); err != nil || n == 0 {
			return
		}
	}
}

func joinCols() string {
	s := ""
	for i, c := range warehouse.Submissions.Columns {
		if i > 0 {
			s += ", "
		}
		s += c
	}
	return s
}

var cpuProfile string

// maxInserts is the sinks' MaxInflight.
var maxInserts = 4

// partitions are the rows' source partitions, as the warehouse's
// rebalance callback passes them.
var partitions = []int32{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}

// throughput adds rows to a sink over db and returns rows per second up to
// the last commit; sole: the sink holds every partition (one warehouse
// instance), else it looks every id up (several instances).
func throughput(ctx context.Context, conn driver.Conn, db string, rows []chsink.Row, sole bool, log *slog.Logger) (float64, error) {
	if cpuProfile != "" && sole {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return 0, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return 0, err
		}
		defer pprof.StopCPUProfile()
	}
	sink, err := chsink.New(chsink.Config{Database: db, MaxInflight: maxInserts}, chsink.Deps{Conn: conn, Log: log})
	if err != nil {
		return 0, err
	}
	sink.Reassigned(partitions, sole)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go sink.Run(runCtx)
	var done sync.WaitGroup
	done.Add(len(rows))
	start := time.Now()
	for _, r := range rows {
		if err := sink.Add(ctx, warehouse.Submissions, r, func(error) { done.Done() }); err != nil {
			return 0, err
		}
	}
	done.Wait()
	return float64(len(rows)) / time.Since(start).Seconds(), nil
}

func latency(ctx context.Context, conn driver.Conn, db string, rows []chsink.Row, rate int, log *slog.Logger) (time.Duration, time.Duration, error) {
	sink, err := chsink.New(chsink.Config{Database: db}, chsink.Deps{Conn: conn, Log: log})
	if err != nil {
		return 0, 0, err
	}
	sink.Reassigned(partitions, true)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go sink.Run(runCtx)
	lat := make([]time.Duration, len(rows))
	var wg sync.WaitGroup
	var failed atomic.Int64
	wg.Add(len(rows))
	tick := time.NewTicker(time.Second / time.Duration(rate/100))
	defer tick.Stop()
	for i := 0; i < len(rows); i += 100 {
		<-tick.C
		for j := i; j < min(len(rows), i+100); j++ {
			at := time.Now()
			if err := sink.Add(ctx, warehouse.Submissions, rows[j], func(err error) {
				if err != nil {
					failed.Add(1)
				}
				lat[j] = time.Since(at)
				wg.Done()
			}); err != nil {
				return 0, 0, err
			}
		}
	}
	wg.Wait()
	sort.Slice(lat, func(a, b int) bool { return lat[a] < lat[b] })
	return lat[len(lat)/2].Round(time.Millisecond), lat[len(lat)*99/100].Round(time.Millisecond), nil
}
