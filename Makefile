# The two commands of the README:
#   make run    set up, build, start the gateway
#   make test   set up, build, run every test (plain build, then ASan+UBSan with leak checks)
# Everything else here is a convenience for developers.

BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_ARGS ?=

.PHONY: all setup build build-asan test test-fast test-asan run bench fuzz clean

all: build

setup:
	@bash scripts/setup.sh

build: setup
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_ARGS) >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

build-asan: setup
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DCGW_SANITIZE=ON \
		-DCGW_BUILD_BENCH=OFF $(CMAKE_ARGS) >/dev/null
	@cmake --build $(ASAN_BUILD) -j$(JOBS)

# Every test of the plain build, then every test again under AddressSanitizer +
# UndefinedBehaviorSanitizer with LeakSanitizer on (integration tests then drive the
# sanitized claude-gateway binary).
test: build build-asan
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)
	$(MAKE) --no-print-directory test-asan

test-fast: build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

test-asan: build-asan
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		ctest --output-on-failure -j$(JOBS)

# The gateway on 127.0.0.1:8080, data in ./data (git-ignored). Settings: docs/server.md.
LISTEN ?= 127.0.0.1:8080
run: build
	@echo "claude-gateway serve on http://$(LISTEN) (data in ./data; Ctrl-C stops it)"
	@echo "In another terminal:"
	@echo "  curl -s http://$(LISTEN)/healthz"
	@echo "  S=\$$(curl -s -X POST http://$(LISTEN)/v1/sessions | grep -o 'sess_[A-Za-z0-9_-]*')"
	@echo "  curl -N -X POST http://$(LISTEN)/v1/sessions/\$$S/messages -H 'Accept: text/event-stream' -d '{\"content\":\"Hello!\"}'"
	@echo "Without ANTHROPIC_API_KEY (or ANTHROPIC_AUTH_TOKEN) every run answers with a stub text."
	@exec $(BUILD)/claude-gateway serve --listen $(LISTEN) --data-dir data

bench: build
	@for b in $(BUILD)/bench/bench_*; do echo "== $$b"; $$b || exit 1; done

# libFuzzer builds (clang); FUZZ_SECONDS per target. See docs/development.md.
FUZZ_SECONDS ?= 60
fuzz:
	@CGW_SETUP_FUZZ=1 bash scripts/setup.sh
	@cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug \
		-DCGW_SANITIZE=ON -DCGW_FUZZ=ON -DCGW_BUILD_BENCH=OFF >/dev/null
	@cmake --build build-fuzz -j$(JOBS)
	@for f in build-fuzz/tests/fuzz_*; do t=$${f##*/fuzz_}; \
		echo "== fuzz $$t"; mkdir -p tests/fuzz/corpus/$$t; \
		$$f -max_total_time=$(FUZZ_SECONDS) tests/fuzz/corpus/$$t || exit 1; done

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) build-fuzz
