# Consulate — build, test and demo. See README.md.
SHELL := /bin/bash
GO ?= go
CONSUL_VERSION := 1.14.11
# The Consul binary is cached per user, outside the clone, so a fresh clone
# (CI) reuses it: the first build takes minutes, the next seconds.
CACHE_DIR ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/consulate
CONSUL_BIN ?= $(CACHE_DIR)/consul-$(CONSUL_VERSION)
export CONSUL_BIN
GOTEST_FLAGS ?= -race -count=1 -timeout 30m
# The sidecar is built as the container image builds it (deploy/docker):
# static (CGO_ENABLED=0: no libc mapped, 1.5 MiB less resident) and with
# grpcnotrace, which leaves out grpc-go's golang.org/x/net/trace (and with
# it html/template), which the sidecar never serves: 7 MiB less binary,
# 2.7 MiB less resident (issue 8, bench/README.md; TestBinaryFootprint).
SIDECAR_TAGS ?= grpcnotrace
SIDECAR_BUILD = CGO_ENABLED=0 $(GO) build -tags '$(SIDECAR_TAGS)'

.PHONY: all build test consul demo bench bench-proxies fmt vet clean

all: build

build:
	$(GO) build -o bin/control-plane ./control-plane
	$(SIDECAR_BUILD) -o bin/sidecar ./sidecar

# Builds the Consul agent from the Go module proxy in its own nested module
# (deploy/consul) and caches it; a second run takes seconds.
consul:
	@if [ -x "$(CONSUL_BIN)" ]; then \
		echo "consul: using cached $(CONSUL_BIN)"; \
	else \
		mkdir -p "$(dir $(CONSUL_BIN))" && \
		echo "consul: building v$(CONSUL_VERSION) into $(CONSUL_BIN) (first time: about 5 minutes on 2 cores)" && \
		(cd deploy/consul && $(GO) build -trimpath -o "$(CONSUL_BIN).tmp" github.com/hashicorp/consul) && \
		mv "$(CONSUL_BIN).tmp" "$(CONSUL_BIN)"; \
	fi
	@"$(CONSUL_BIN)" version | head -1

vet:
	$(GO) vet ./...

test: consul vet
	$(GO) test $(GOTEST_FLAGS) ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# Data-plane comparison (bench/README.md): the sidecar against direct,
# nginx, HAProxy and Caddy on loopback, pinned with taskset. bench/setup.sh
# installs the peers and wrk from Debian packages (once). Results: a table
# on stdout and bench/results/latest.json. BENCH_FLAGS passes flags, e.g.
# BENCH_FLAGS='-rounds 5 -targets direct,sidecar,nginx'; BENCH_FLAGS='-profile
# /tmp/sidecar-profile' profiles the sidecar's data path instead.
bench-proxies:
	bash bench/setup.sh
	$(SIDECAR_BUILD) -o bin/sidecar ./sidecar
	$(GO) build -o bin/bench-upstream ./bench/cmd/upstream
	$(GO) build -o bin/proxybench ./bench/cmd/proxybench
	$(GO) build -o bin/sidecarprof ./bench/cmd/sidecarprof
	bin/proxybench $(BENCH_FLAGS)

# The whole mesh on loopback (deploy/demo): Consul, the control plane, demo
# services with their sidecars; a story of some traffic; Ctrl-C stops it all.
# DEMO_FLAGS passes flags to the runner, e.g. DEMO_FLAGS='-duration 30s'.
demo: build consul
	$(GO) build -o bin/demo-app ./deploy/demo/app
	$(GO) build -o bin/demo ./deploy/demo/run
	bin/demo -bin bin -consul "$(CONSUL_BIN)" $(DEMO_FLAGS)

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin

# Control-plane scale harness (bench/controlplane): a real Consul with 1,000
# and 10,000 services, the control plane, 1,000 simulated sidecars (SotW and
# Delta); prints a table, writes bench/results/controlplane.json. About 10
# minutes; not part of `make test`. CP_BENCH_FLAGS passes harness flags, e.g.
# CP_BENCH_FLAGS='-services 1000 -changes 10'.
.PHONY: bench-controlplane
bench-controlplane: consul
	$(GO) build -o bin/control-plane ./control-plane
	$(GO) run ./bench/controlplane -control-plane bin/control-plane -out bench/results/controlplane.json $(CP_BENCH_FLAGS)
