# The kern trace gateway. `make run` builds everything and starts the gateway
# on embedded SQLite; `make test` runs the whole suite (starting a PostgreSQL
# and installing Chromium when needed); `make bench` compares the gateway
# with a raw COPY and with an OpenTelemetry Collector (scripts/bench.sh says
# how to tune it: BENCH_FLAGS, SOAK=1).
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
CONFIG  ?= config.example.yaml

.PHONY: build run test bench proto release fmt vet clean

build:
	@mkdir -p bin
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/ ./cmd/...
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/jsonl-plugin ./plugins/examples/jsonl

run: build
	./bin/gateway run --config $(CONFIG)

test:
	./scripts/test.sh

bench:
	./scripts/bench.sh

proto:
	./scripts/gen-proto.sh

release:
	VERSION=$(VERSION) COMMIT=$(COMMIT) ./scripts/release.sh

fmt:
	gofmt -w $$(git ls-files '*.go')

vet:
	$(GO) vet ./...

clean:
	rm -rf bin test-artifacts
