# eprostream — the two commands a newcomer needs are `make demo` and `make test`.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
GO ?= go
STACK := bash devstack/stack.sh
TESTFLAGS ?= -race -count=1 -timeout 30m

.PHONY: up down status build browser demo test vet fmt-check tracked-check layout-check unit bench-anchors bench-spine bench-sink bench-e2e bench-gateway bench-views bench-micro compose-check faults

up: ## install what is missing and start Kafka, Redis, ClickHouse on 127.0.0.1
	$(STACK) up

down: ## stop what `make up` started
	$(STACK) down

status: ## one line per service
	$(STACK) status

build:
	$(GO) build -o bin/eprostream ./cmd/eprostream

DEMO_LINGER ?= 2m
demo: up build ## a minute of a synthetic trial through the groups, then what happened; the dashboard stays up DEMO_LINGER
	bin/eprostream demo --linger $(DEMO_LINGER)

vet:
	$(GO) vet ./...

# No build output or data in the repository: every tracked file is under 1 MB
# and none is an executable binary (ELF, Mach-O, PE).
tracked-check:
	@bad=0; while IFS= read -r -d '' f; do [[ -f $$f ]] || continue; \
	  if (( $$(stat -c %s -- "$$f") > 1048576 )); then echo "tracked file over 1 MB: $$f"; bad=1; fi; \
	  magic=$$(head -c 4 -- "$$f" | od -An -tx1 | tr -d ' \n'); \
	  case $$magic in 7f454c46|cffaedfe|cefaedfe|feedface|feedfacf|4d5a*) echo "tracked executable binary: $$f"; bad=1 ;; esac; \
	done < <(git ls-files -z); exit $$bad

# README's Layout section names every folder at the root and every folder
# that holds Go code (or a folder above it).
layout-check:
	@layout=$$(sed -n '/^## Layout/,/^## /p' README.md | sed -n '/^```/,/^```/p' | grep -oE '^[a-z][a-z0-9/._-]*/'); \
	  bad=0; for d in $$(git ls-files | grep '/' | cut -d/ -f1 | sort -u | grep -v '^\.'); do \
	    grep -qx "$$d/" <<<"$$layout" || { echo "README Layout lacks $$d/"; bad=1; }; done; \
	  for d in $$(git ls-files '*.go' | xargs -n1 dirname | sort -u); do \
	    ok=0; p=$$d; while [[ $$p != . ]]; do grep -qx "$$p/" <<<"$$layout" && { ok=1; break; }; p=$$(dirname $$p); done; \
	    (( ok )) || { echo "README Layout lacks $$d/ (or a folder above it)"; bad=1; }; done; \
	  for d in $$layout; do [[ -d $$d ]] || { echo "README Layout names $$d, which does not exist"; bad=1; }; done; exit $$bad

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [[ -n "$$out" ]]; then echo "gofmt would change: $$out"; exit 1; fi

# Every test, the integration tests included: they talk to the real stack that
# `up` starts. Fault tests, which stop services of the stack, run afterwards on
# their own. The full log is kept in .devstack/test.log.
TESTFILTER := grep --line-buffered -E '^(--- (PASS|FAIL|SKIP)|FAIL|ok |PASS$$|panic:)|^\s+\S+_test\.go:[0-9]+:'
# The cluster tier of `make test`: a three-node Kafka cluster of its own,
# beside the default stack (whose Redis and ClickHouse it shares), so killing
# one of its brokers touches no other test. Stopped afterwards, pass or fail.
CLUSTER_ENV := DEVSTACK_DIR=$(CURDIR)/.devstack/cluster DEVSTACK_KAFKA_NODES=3 DEVSTACK_KAFKA_PORT=19092 DEVSTACK_KAFKA_CONTROLLER_PORT=19093
CLUSTER_BROKERS := 127.0.0.1:19092,127.0.0.1:19094,127.0.0.1:19096

browser: ## headless Chromium for the dashboard test (Debian's chromium)
	@command -v chromium >/dev/null || $(STACK) apt chromium

test: tracked-check layout-check up browser vet fmt-check compose-check
	@echo "==> go test $(TESTFLAGS) ./... (against Kafka, Redis and ClickHouse on 127.0.0.1)"
	$(GO) test $(TESTFLAGS) -v ./... 2>&1 | tee .devstack/test.log | $(TESTFILTER)
	@echo "==> fault tests: go test -tags faults -p 1 -run Fault ./processors/ ./gateway/ (stop and start ClickHouse, Kafka, Redis)"
	$(GO) test $(TESTFLAGS) -tags faults -p 1 -run Fault -v ./processors/ ./gateway/ 2>&1 | tee -a .devstack/test.log | $(TESTFILTER)
	@echo "==> secured tier: go test -tags secure -p 1 -run Secure ./processors/ (DEVSTACK_SECURE=1: Kafka over SASL_SSL, Redis and ClickHouse over TLS, passwords from files)"
	@rc=0; DEVSTACK_SECURE=1 DEVSTACK_KAFKA_LIBS=$(CURDIR)/.devstack/kafka/libs $(STACK) up || rc=$$?; \
	  if (( rc == 0 )); then \
	    env $$(DEVSTACK_SECURE=1 $(STACK) env) $(GO) test $(TESTFLAGS) -tags secure -p 1 -run Secure -v ./processors/ 2>&1 \
	      | tee -a .devstack/test.log | $(TESTFILTER) || rc=$$?; \
	  fi; \
	  DEVSTACK_SECURE=1 $(STACK) down || true; \
	  exit $$rc
	@echo "==> cluster tier: go test -tags cluster -p 1 -run Cluster ./processors/ (three Kafka nodes on $(CLUSTER_BROKERS), a partition leader killed under load)"
	@rc=0; $(CLUSTER_ENV) $(STACK) up kafka || rc=$$?; \
	  if (( rc == 0 )); then \
	    $(CLUSTER_ENV) KAFKA_BROKERS=$(CLUSTER_BROKERS) $(GO) test $(TESTFLAGS) -tags cluster -p 1 -run Cluster -v ./processors/ 2>&1 \
	      | tee -a .devstack/test.log | $(TESTFILTER) || rc=$$?; \
	  fi; \
	  $(CLUSTER_ENV) $(STACK) down kafka || true; \
	  pass=$$(grep -c -- '^\s*--- PASS' .devstack/test.log || true); \
	  fail=$$(grep -c -- '^\s*--- FAIL' .devstack/test.log || true); \
	  skip=$$(grep -c -- '^\s*--- SKIP' .devstack/test.log || true); \
	  echo "tests: $$pass passed, $$fail failed, $$skip skipped"; \
	  exit $$rc

# Unit tests only: no stack needed.
unit:
	$(GO) test -count=1 -short ./...

bench-anchors: ## Kafka/Redis/ClickHouse anchor figures for bench/RESULTS.md
	bash bench/anchors.sh

bench-spine: up ## spine throughput beside a sarama pass-through, table recovery
	$(GO) run ./bench/spinebench -records 200000

PEER_DIR ?=
PEER_RECORDS ?= 500000
bench-peer: ## the subject group beside the Kafka Streams peer in PEER_DIR, same records, twice alternating: rates, ratio, equal alert ids
	@if [ -z "$(PEER_DIR)" ] || [ ! -x "$(PEER_DIR)/run.sh" ]; then \
	  echo "bench-peer: PEER_DIR must name the directory of the Kafka Streams peer (the one with run.sh; it needs Java 17 and Maven, see bench/RESULTS.md), e.g. make bench-peer PEER_DIR=/path/to/kstreams" >&2; exit 2; fi
	$(MAKE) up
	$(GO) run ./bench/spinebench -peer "$(abspath $(PEER_DIR))" -records $(PEER_RECORDS)

bench-sink: up ## warehouse sink beside a bare PrepareBatch loop, latency at 5k rows/s
	$(GO) run ./bench/sinkbench -rows 500000

E2E_RATE ?= 5000
E2E_DURATION ?= 60s
E2E_BATCH ?= 1
bench-e2e: up build ## every part a process of its own, E2E_RATE submissions/s through the gateway: submit → alert, submit → queryable, memory
	$(GO) run ./bench/e2ebench -rate $(E2E_RATE) -duration $(E2E_DURATION) -batch $(E2E_BATCH)

bench-gateway: up ## the ingest API with wrk beside Kafka's and Redis's own tools
	bash bench/gateway.sh

bench-views: up ## GET subject with wrk, cached site dashboards, SSE fan-out to 1,000 subscribers
	command -v wrk >/dev/null || $(STACK) apt wrk
	$(GO) run ./bench/viewsbench

# The fault campaign runs on a stack of its own (.devstack/faults, other
# ports), never the one `up` starts; see docs/reliability.md.
FAULTSFLAGS ?=
faults: ## kill -9 of each process, Kafka/Redis/ClickHouse outages, leader kill, rebalance under load; lost and duplicated counted
	$(GO) run ./bench/faults $(FAULTSFLAGS)

bench-micro: ## codec, rule and callback micro-benchmarks (no stack needed)
	$(GO) test -run XXX -bench . -benchmem ./processors/intake ./processors/subject ./rules ./internal/loadgen ./fhir

compose-check: ## validate docker/compose.yml (needs docker compose or docker-compose, not an engine)
	@if docker compose version >/dev/null 2>&1; then docker compose -f docker/compose.yml config --quiet; \
	  else command -v docker-compose >/dev/null || bash devstack/stack.sh apt docker-compose; \
	  docker-compose -f docker/compose.yml config --quiet; fi
	@echo "docker/compose.yml is valid"
