# twill — see README.md. `make` builds dist/twill; `make test` is what CI runs.
SHELL := /bin/bash
NODE ?= node
TSC := npx --no-install tsc
# Sources by project: the product (cmd/, lib/) builds dist/twill; tests, tools, bench and
# stress each compile with their own tsconfig into build/, so editing one of them rebuilds
# neither the executable nor the others.
PRODUCT_SOURCES := $(shell find cmd lib -name '*.ts' 2>/dev/null) lib/config/validate.generated.js tsconfig.json tsconfig.base.json
sources = $(PRODUCT_SOURCES) $(shell find $(1) -name '*.ts' -o -name '*.mjs' -o -name 'tsconfig.json' 2>/dev/null)

BPF_CFLAGS := -O2 -g -fdebug-prefix-map=$(CURDIR)=. -target bpf -Wall -Werror -I/usr/include/$(shell uname -m)-linux-gnu

.PHONY: all build deps bpf abi bytecode-order image install docs test-stress test test-unit test-integration test-e2e typecheck bench demo install clean

all: build

deps:
	@tools/build/install-deps.sh

lib/config/validate.generated.js: lib/config/schema.ts tools/build/gen-validator.mjs
	$(NODE) tools/build/gen-validator.mjs

# The product's type check (tsconfig.json: cmd/ and lib/ only).
build/.stamp-product: $(PRODUCT_SOURCES)
	$(TSC) -p tsconfig.json
	@touch $@

# The tests (build/test/{unit,integration,e2e}/), with the kit and tools they import.
build/.stamp-test: $(call sources,test testkit tools)
	$(TSC) -p test
	@touch $@

build/.stamp-tools: $(call sources,tools)
	$(TSC) -p tools
	@touch $@

build/.stamp-bench: $(call sources,bench testkit)
	$(TSC) -p bench
	@touch $@

build/.stamp-stress: $(call sources,stress testkit)
	$(TSC) -p stress
	@touch $@

# What the tests run from build/: the product and the tests.
build/.stamp: build/.stamp-product build/.stamp-test
	@touch $@

# The bundle both builds run (tools/build/build.mjs --bundle-only).
dist/twill.cjs: build/.stamp-product bpf/twill_tc.o bpf/twill_sock.o bpf/twill_nodeport.o tools/build/build.mjs package.json package-lock.json
	$(NODE) tools/build/build.mjs --bundle-only

# The shipped executable: the bundle compiled by Bun (docs/performance.md, "start-up, per call").
dist/twill: dist/twill.cjs tools/build/build-bun.sh $(wildcard tools/build/bytecode-order/*.txt.gz)
	tools/build/build-bun.sh

# Re-records the bytecode layout profiles dist/twill is built with (root: the verbs run).
bytecode-order: dist/twill
	tools/build/record-bytecode-order.sh
	rm -f dist/twill && $(MAKE) dist/twill

# The same program as a Node single executable: `TWILL_BIN=dist/twill-node` runs the tests
# against it, and make bench measures it beside dist/twill.
dist/twill-node: build/.stamp-product bpf/twill_tc.o bpf/twill_sock.o bpf/twill_nodeport.o tools/build/build.mjs tools/build/build-exe.sh tools/build/sea-main.cjs tools/build/warm-cache.cjs tools/build/fetch-node.sh package.json package-lock.json
	NODE=$(NODE) tools/build/build-exe.sh

build: deps dist/twill

# Every project, bench and stress included (make test runs it: a lib/ change that breaks them fails CI).
typecheck: build/.stamp build/.stamp-tools build/.stamp-bench build/.stamp-stress

test-unit: build/.stamp
	$(NODE) --test --test-reporter=spec build/test/unit/

# Integration tests need root and run one file at a time: they inspect host-wide state.
test-integration: dist/twill build/.stamp
	@if [ "$$(id -u)" -ne 0 ]; then echo "integration tests need root" >&2; exit 1; fi
	$(NODE) --test --test-concurrency=1 --test-reporter=spec build/test/integration/

# End-to-end: containerd's CRI (kubelet's path) drives twill; root, private runtime state.
test-e2e: dist/twill build/.stamp
	@if [ "$$(id -u)" -ne 0 ]; then echo "e2e tests need root" >&2; exit 1; fi
	$(NODE) --test --test-concurrency=1 --test-reporter=spec build/test/e2e/

# Everything against dist/twill; the integration suite again against the Node build, which
# must stay a drop-in replacement.
test: deps build dist/twill-node typecheck
	$(NODE) --test --test-concurrency=1 --test-reporter=spec build/test/unit/ build/test/integration/ build/test/e2e/
	TWILL_BIN=dist/twill-node $(NODE) --test --test-concurrency=1 --test-reporter=spec build/test/integration/

clean:
	rm -rf build dist lib/config/validate.generated.js

demo: build build/.stamp-tools
	tools/dev/demo.sh

# Benchmarks: twill vs the reference plugins, interleaved; see docs/performance.md.
bench: build dist/twill-node build/.stamp-bench
	TWILL_NODE=$$(tools/build/fetch-node.sh) $(NODE) build/bench/run.js

# An OCI image of twill (dist/twill-image.tar), built offline; deploy/ runs it as a DaemonSet.
image: dist/twill build/.stamp-tools
	$(NODE) build/tools/build/image.js

# The tc program is committed precompiled; `make bpf` rebuilds it (needs clang, libbpf-dev).
bpf:
	clang $(BPF_CFLAGS) -c bpf/twill_tc.c -o bpf/twill_tc.o
	clang $(BPF_CFLAGS) -c bpf/twill_sock.c -o bpf/twill_sock.o
	clang $(BPF_CFLAGS) -c bpf/twill_nodeport.c -o bpf/twill_nodeport.o
	$(MAKE) abi

# lib/bpf/abi.generated.ts: the constants and map layouts of bpf/twill_maps.h, from the object's BTF.
abi: build/.stamp-tools
	$(NODE) build/tools/build/gen-abi.js bpf/twill_tc.o lib/bpf/abi.generated.ts
	$(NODE) build/tools/build/gen-abi.js bpf/twill_sock.o lib/bpf/abi-sock.generated.ts bpf/twill_sock_abi.h

# Installs dist/twill into /opt/cni/bin and, unless one exists, conf/twill.conflist as
# /etc/cni/net.d/10-twill.conflist (atomically). BIN_DIR/CONF_DIR/CONFLIST override.
BIN_DIR ?= /opt/cni/bin
CONF_DIR ?= /etc/cni/net.d
CONFLIST ?= conf/twill.conflist
install: build
	dist/twill install --bin-dir $(BIN_DIR) --conf-dir $(CONF_DIR) --conflist $(CONFLIST)

# docs/config.md is generated from the JSON Schema; a unit test fails when it is stale.
docs: build/.stamp-tools
	$(NODE) build/tools/build/gen-config-doc.js > docs/config.md

# The long part: ≥ 200 random SIGKILLs, 16-caller storms for 60 s with the reference
# host-local on the same pool, ≥ 10,000 hostile inputs. Prints a summary table.
test-stress: build build/.stamp-stress
	$(NODE) build/stress/run.js
