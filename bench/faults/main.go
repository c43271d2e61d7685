// Command faults is eprostream's fault campaign: the whole system as separate
// processes on a stack of its own, under HTTP load, with one fault injected
// per scenario, then an exact count from ClickHouse of what was accepted,
// lost and duplicated.
//
//	make faults                      # or: go run ./bench/faults
//	go run ./bench/faults -only kill-subject,redis-down -load 40s
//
// The campaign starts Kafka, Redis and ClickHouse through devstack/stack.sh
// in .devstack/faults on ports of its own (Kafka 29092, controller 29093,
// Redis 26379, ClickHouse 29000 / 28123), so it never touches the default
// local stack, and stops them at the end. When stack.sh knows
// DEVSTACK_KAFKA_NODES, Kafka is a cluster of three KRaft nodes (broker ports
// 29092, 29094, 29096) and the topics are replicated three times
// (min.insync.replicas=2); otherwise one node, and the leader-kill scenario
// is reported as not run.
//
// It builds bin/eprostream, migrates under a fresh topic prefix and
// ClickHouse database, creates a submit key for study FLT-100, enrols its
// subjects (`eprostream enroll`), and runs `eprostream ingest`, `process
// --group intake`, two `process --group subject` (sharing the partitions)
// and `process --group warehouse`, each with its own --state-dir and admin
// port. Every scenario sends native JSON submissions over 8 connections at
// -rate per second for -load (and until 15 s after the fault is over), each
// with a unique message_id (a client retries a 409, 429, 5xx or broken
// connection with the same bytes, as an app does, for up to 2 minutes); the
// fault comes -fault-at into the load. Then the campaign waits until every
// group has committed everything and counts, from ClickHouse, the rows each
// accepted (202) id has: none is lost, more than one is duplicated. Alert
// ids must be unique in `alerts`.
//
// Scenarios, in order (names for -only): kill-ingest, kill-intake,
// kill-subject, kill-warehouse, subject-rebalance, clickhouse-down,
// redis-down, kafka-restart, leader-kill. docs/reliability.md states what
// each one checks and the guarantees behind it.
//
// It prints a Markdown table (also written to .devstack/faults/report.md),
// keeps every request's answer and time in .devstack/faults/requests.csv and
// every process's log in .devstack/faults/logs/, and exits non-zero if
// anything was lost or duplicated, or a fault was not observed to happen.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

type options struct {
	root     string
	dir      string
	rate     int
	conns    int
	load     time.Duration
	faultAt  time.Duration
	only     map[string]bool
	budget   time.Duration
	keep     bool
	subjects int
}

func main() {
	_, here, _, _ := runtime.Caller(0)
	o := options{root: filepath.Clean(filepath.Join(filepath.Dir(here), "..", ".."))}
	only := ""
	flag.StringVar(&o.root, "repo", o.root, "the repository (its devstack/stack.sh and cmd/eprostream)")
	flag.IntVar(&o.rate, "rate", 400, "submissions offered per second")
	flag.IntVar(&o.conns, "conns", 8, "HTTP connections")
	flag.DurationVar(&o.load, "load", 70*time.Second, "load per scenario")
	flag.DurationVar(&o.faultAt, "fault-at", 10*time.Second, "when the fault comes, into the load")
	flag.StringVar(&only, "only", "", "comma-separated scenarios to run (default: all)")
	flag.DurationVar(&o.budget, "budget", 25*time.Minute, "the whole campaign stops after this, whatever happens")
	flag.BoolVar(&o.keep, "keep", false, "leave the campaign's stack running at the end")
	flag.IntVar(&o.subjects, "subjects", 400, "enrolled subjects the load is spread over")
	flag.Parse()
	if only != "" {
		o.only = map[string]bool{}
		for _, s := range strings.Split(only, ",") {
			o.only[strings.TrimSpace(s)] = true
		}
	}
	o.dir = filepath.Join(o.root, ".devstack", "faults")

	// A signal or the budget ends the campaign through ctx: everything it
	// started is stopped on the way out either way.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, o.budget)
	defer cancel()
	ok, err := run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
		os.Exit(2)
	}
	if !ok {
		os.Exit(1)
	}
}
