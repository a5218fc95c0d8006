# Poststelle — build, test, benchmark.
# `make test` is the one command CI runs (see .ci/run and README.md).

GO ?= go
INTEGRATION := $(wildcard test/integration/*/run.sh)

.PHONY: build test setup unit integration bench fuzz clean

build:
	$(GO) build -o poststelle ./cmd/poststelle

test: setup unit integration

setup:
	./test/setup.sh

unit:
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 20m ./...

integration:
	@set -e; for s in $(INTEGRATION); do echo "== $$s"; bash $$s; done

bench: build
	./poststelle bench
	$(GO) test -run '^$$' -bench . -benchtime 2000x ./eventstore/...

fuzz:
	@for p in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$p 2>/dev/null | grep '^Fuzz'); do \
	    echo "== $$p $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime 30s $$p || exit 1; \
	  done; done

clean:
	rm -f poststelle
