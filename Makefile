# HoodCloud: the control plane in one binary, and the ops-agent its hosts run.
# `make run` starts the appliance on its embedded defaults; `make test` runs every test.

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo none)
DATE    ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.date=$(DATE)

# The real servers adapter tests run against; unreachable ones are skipped
# loudly unless HOODCLOUD_TEST_REQUIRE_EXTERNAL=1. The Alertmanager round trip
# (Debian's prometheus-alertmanager) skips loudly without the binary unless
# HOODCLOUD_TEST_REQUIRE_ALERTMANAGER=1.
export HOODCLOUD_TEST_POSTGRES_URL ?= postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable
export HOODCLOUD_TEST_REDIS_URL    ?= redis://127.0.0.1:6379/0
export HOODCLOUD_TEST_NATS_URL     ?= nats://127.0.0.1:4222

# The root package links the embedded Temporal server: it is tested without
# the race detector, which would make its link and run several times slower.
# Packages without tests are left out of the race run too: it would only
# build them, and store/temporal/devserver would race-build the whole
# Temporal server (vet, staticcheck and the root package's tests build them).
ROOT := github.com/hoodcloud/hoodcloud
RACE_PKGS = $(shell go list -f '{{if or .TestGoFiles .XTestGoFiles}}{{.ImportPath}}{{end}}' ./... | grep -v '^$(ROOT)$$')
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: build run test test-stress lint bench soak generate clean chains

# The appliance serves bin/hoodcloud-agent, beside it, to the hosts it creates.
build:
	go build -trimpath -ldflags "$(LDFLAGS)" -o bin/hoodcloud .
	go build -trimpath -ldflags "$(LDFLAGS)" -o bin/hoodcloud-agent ./agent/cmd/hoodcloud-agent

run:
	go run . serve

test: lint
	go test -race -count=1 $(RACE_PKGS)
	go test -count=1 -timeout 20m $(ROOT)

# `make test` beside a busy loop on every core, as on a loaded CI runner: a
# test that races a timer fails here rather than there. Each loop also stops
# by itself once this recipe's shell is gone, however it ended.
test-stress:
	@hogs=; \
	for _ in $$(seq "$$(nproc)"); do \
		sh -c 'while kill -0 $$PPID 2>/dev/null; do i=0; while [ $$i -lt 20000 ]; do i=$$((i+1)); done; done' & \
		hogs="$$hogs $$!"; \
	done; \
	trap 'kill $$hogs 2>/dev/null' EXIT; \
	trap 'exit 130' INT TERM; \
	echo "test-stress: $$(nproc) busy loops beside make test"; \
	$(MAKE) test

# The real chain clients (cometbft, geth) the end-to-end tests run, built
# under the Go build cache; `make run` runs them too once they are on PATH.
chains:
	go run ./internal/chains/cmd/install-chains

lint:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	go vet ./...
	go run ./internal/depcheck
	go run $(STATICCHECK) ./...

bench: build
	./bin/hoodcloud bench startup
	go test -run '^$$' -bench . -benchtime 2000x ./store/storebench ./store/redis

# The crash battery at 200 provisions in flight (CI runs it at 50).
soak:
	HOODCLOUD_CRASH_PROVISIONS=200 go test -count=1 -timeout 30m -run TestCrashDuringProvisioning -v $(ROOT)
	HOODCLOUD_CUSTODY_VALIDATORS=10 go test -count=1 -timeout 30m -run TestMigratedValidatorsNeverSignTwice -v $(ROOT)

generate:
	sh proto/generate.sh

clean:
	rm -rf bin
