# twill — see README.md. `make` builds dist/twill; `make test` is what CI runs.
SHELL := /bin/bash
NODE ?= node
TS_SOURCES := $(shell find cmd lib scripts tools test -name '*.ts' -o -name '*.mjs' 2>/dev/null)

BPF_CFLAGS := -O2 -g -fdebug-prefix-map=$(CURDIR)=. -target bpf -Wall -Werror -I/usr/include/$(shell uname -m)-linux-gnu

.PHONY: all build deps bpf abi bytecode-order image install docs test-stress test test-unit test-integration test-e2e typecheck bench demo install clean

all: build

deps:
	@scripts/install-deps.sh

lib/config/validate.generated.js: lib/config/schema.ts scripts/gen-validator.mjs
	$(NODE) scripts/gen-validator.mjs

build/.stamp: $(TS_SOURCES) lib/config/validate.generated.js tsconfig.json
	npx --no-install tsc -p tsconfig.json
	@touch $@

# The bundle both builds run (scripts/build.mjs --bundle-only).
dist/twill.cjs: build/.stamp bpf/twill_tc.o scripts/build.mjs package.json package-lock.json
	$(NODE) scripts/build.mjs --bundle-only

# The shipped executable: the bundle compiled by Bun (README "Start-up: Bun or Node").
dist/twill: dist/twill.cjs scripts/build-bun.sh $(wildcard scripts/bytecode-order/*.txt)
	scripts/build-bun.sh

# Re-records the bytecode layout profiles dist/twill is built with (root: the verbs run).
bytecode-order: dist/twill
	scripts/record-bytecode-order.sh
	rm -f dist/twill && $(MAKE) dist/twill

# The same program as a Node single executable: `TWILL_BIN=dist/twill-node` runs the tests
# against it, and make bench measures it beside dist/twill.
dist/twill-node: build/.stamp bpf/twill_tc.o scripts/build.mjs scripts/build-exe.sh scripts/sea-main.cjs scripts/warm-cache.cjs scripts/fetch-node.sh package.json package-lock.json
	NODE=$(NODE) scripts/build-exe.sh

build: deps dist/twill

typecheck: build/.stamp

test-unit: build/.stamp
	$(NODE) --test --test-reporter=spec build/test/unit/

# Integration tests need root and run one file at a time: they inspect host-wide state.
test-integration: dist/twill
	@if [ "$$(id -u)" -ne 0 ]; then echo "integration tests need root" >&2; exit 1; fi
	$(NODE) --test --test-concurrency=1 --test-reporter=spec build/test/integration/

# End-to-end: containerd's CRI (kubelet's path) drives twill; root, private runtime state.
test-e2e: dist/twill
	@if [ "$$(id -u)" -ne 0 ]; then echo "e2e tests need root" >&2; exit 1; fi
	$(NODE) --test --test-concurrency=1 --test-reporter=spec build/test/e2e/

# Everything against dist/twill; the integration suite again against the Node build, which
# must stay a drop-in replacement.
test: deps build dist/twill-node
	$(NODE) --test --test-concurrency=1 --test-reporter=spec build/test/unit/ build/test/integration/ build/test/e2e/
	TWILL_BIN=dist/twill-node $(NODE) --test --test-concurrency=1 --test-reporter=spec build/test/integration/

clean:
	rm -rf build dist lib/config/validate.generated.js

demo: build
	scripts/demo.sh

# Benchmarks: twill vs the reference plugins, interleaved; see README "Performance".
bench: build dist/twill-node
	TWILL_NODE=$$(scripts/fetch-node.sh) $(NODE) build/scripts/bench/run.js

# An OCI image of twill (dist/twill-image.tar), built offline; deploy/ runs it as a DaemonSet.
image: dist/twill
	$(NODE) build/scripts/image.js

# The tc program is committed precompiled; `make bpf` rebuilds it (needs clang, libbpf-dev).
bpf:
	clang $(BPF_CFLAGS) -c bpf/twill_tc.c -o bpf/twill_tc.o
	$(MAKE) abi

# lib/bpf/abi.generated.ts: the constants and map layouts of bpf/twill_maps.h, from the object's BTF.
abi: build/.stamp
	$(NODE) build/tools/build/gen-abi.js bpf/twill_tc.o lib/bpf/abi.generated.ts

# Installs dist/twill into /opt/cni/bin and, unless one exists, conf/twill.conflist as
# /etc/cni/net.d/10-twill.conflist (atomically). BIN_DIR/CONF_DIR/CONFLIST override.
BIN_DIR ?= /opt/cni/bin
CONF_DIR ?= /etc/cni/net.d
CONFLIST ?= conf/twill.conflist
install: build
	dist/twill install --bin-dir $(BIN_DIR) --conf-dir $(CONF_DIR) --conflist $(CONFLIST)

# docs/config.md is generated from the JSON Schema; a unit test fails when it is stale.
docs: build/.stamp
	$(NODE) build/scripts/gen-config-doc.js > docs/config.md

# The long part: ≥ 200 random SIGKILLs, 16-caller storms for 60 s with the reference
# host-local on the same pool, ≥ 10,000 hostile inputs. Prints a summary table.
test-stress: build
	$(NODE) build/scripts/stress/run.js
