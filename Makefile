# Poststelle — build, test, benchmark.
# `make test` is the one command CI runs (see .ci/run and README.md).

GO ?= go
# Pinned so that a fresh machine needs no install: go run fetches it once
# from the module proxy into the module cache.
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: build test setup lint unit integration bench bench-quick bench-eventstore fuzz clean

build:
	$(GO) build -o poststelle ./cmd/poststelle

test: setup lint unit integration

setup:
	./test/setup.sh

# gofmt, go vet and staticcheck, also over the integration tests (build tag).
lint:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags integration ./test/integration/...
	$(GO) run $(STATICCHECK) -tags integration ./...

unit:
	$(GO) test -count=1 -timeout 20m ./...

# Every script runs, and a summary of the failures comes last (all.sh).
integration:
	@bash test/integration/all.sh

# Every measure of issue 16 in one run, then bench/report.md and
# bench/report.svg (bench/run.sh; the harnesses run under the peers lock).
bench:
	bash bench/run.sh

# A short smoke run of the same pipeline; the report goes to a temporary
# directory, bench/report.md stays as it is.
bench-quick:
	BENCH_QUICK=1 bash bench/run.sh

# The go test benchmarks of the event store (not in the report).
bench-eventstore:
	$(GO) test -run '^$$' -bench . -benchtime 2000x ./eventstore/...

fuzz:
	@for p in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$p 2>/dev/null | grep '^Fuzz'); do \
	    echo "== $$p $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime 30s $$p || exit 1; \
	  done; done

clean:
	rm -f poststelle
