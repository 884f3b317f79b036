# tusker: `make demo` runs a local 3-node cluster; `make test` installs what the tests need and runs
# them all. Both work on a fresh Debian 12 machine with Go.
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
BIN      := bin

.PHONY: all build deps test-deps test unit vet fuzz demo bench nemesis image deb clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/tusker ./cmd/tusker
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/tuskerctl ./cmd/tuskerctl

# PostgreSQL 15 (Debian) if absent, etcd 3.4 and ZooKeeper (Debian), etcd 3.6, Consul and
# Kubernetes built from the Go module proxy and cached outside the repo, and the tools of the
# image, Kubernetes node and Debian package tests (scripts/install-deps.sh says which).
deps:
	bash scripts/install-deps.sh

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...

# What the tests need; the Kubernetes node components build in the background meanwhile
# (scripts/install-deps.sh --test), for the suite that runs last but one.
test-deps:
	bash scripts/install-deps.sh --test

# Packages run one at a time: the real-component suites start PostgreSQL and etcd processes and a
# 2-core machine gives them steadier timing that way.
# The packages whose tests run in-process with goroutines (the REST API, the management calls on a
# Node, the clients): run again under the race detector. The e2e and server suites run the
# daemon as a separate binary: the lifecycle test runs once more with the daemon built with -race
# (TUSKER_E2E_RACE), the rest without, where -race would only slow the servers' timing down.
RACE_PKGS := ./ha/... ./restapi/... ./config/... ./patroni/... ./ctl/... ./dcs ./internal/... ./callbacks/... ./watchdog/... ./cmd/tusker

test: test-deps vet
	$(GO) test -race -count=1 $(RACE_PKGS)
	TUSKER_E2E_RACE=1 $(GO) test -count=1 -run '^TestClusterLifecycle$$' ./test/e2e
	$(GO) test -count=1 -p 1 -timeout 45m ./...

unit:
	$(GO) test -count=1 ./config/... ./dcs ./ha/... ./restapi/...

# Every fuzz target of the module, one at a time, FUZZTIME each (FUZZPARALLEL workers); the new
# inputs it finds are kept in the packages' testdata/fuzz/, where `make test` runs them as seeds
# (scripts/fuzz.sh, which also takes FUZZ=<regexp> to pick targets).
FUZZTIME     ?= 30s
FUZZPARALLEL ?= 2
fuzz:
	FUZZTIME=$(FUZZTIME) FUZZPARALLEL=$(FUZZPARALLEL) GO=$(GO) bash scripts/fuzz.sh

demo: build
	bash scripts/install-deps.sh --demo
	$(GO) run ./test/demo -tusker $(BIN)/tusker

bench: build
	bash scripts/install-deps.sh --bench
	$(GO) run ./test/bench -tusker $(BIN)/tusker
	$(GO) run ./test/bench -tusker $(BIN)/tusker -failover-only
	$(GO) run ./test/bench -tusker $(BIN)/tusker -memory-only

# Fault injection (docs/nemesis.md): NEMESIS_FAULTS (default 100), NEMESIS_SEED (replays a run),
# NEMESIS_MODE (on, quorum, strict, off). Needs root: every node runs in its own network namespace.
nemesis: build
	bash scripts/install-deps.sh --nemesis
	$(GO) run ./test/nemesis -tusker $(BIN)/tusker

# The container image (docker/Dockerfile, built here without a registry): localhost/tusker:latest
# in the podman store and bin/tusker-image.tar. Needs root.
image: build
	bash scripts/install-deps.sh --image
	bash scripts/build-image.sh

# The Debian package for VMs (deploy/systemd: the unit, an example configuration) in bin/.
deb: build
	bash scripts/build-deb.sh

clean:
	rm -rf $(BIN)
