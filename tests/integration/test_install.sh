#!/usr/bin/env bash
# The library as another C program meets it: `cmake --install` into a fresh prefix, build the
# quick start against it with nothing but pkg-config, link the shared library, run it (no
# credential: the stub answer) and check that it streamed to stream_complete.
set -euo pipefail
SRC=${CGW_SOURCE_DIR:?}
BIN=${CGW_BINARY_DIR:?}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

cmake --install "$BIN" --prefix "$WORK/prefix" >/dev/null
pc=$(find "$WORK/prefix" -name cgw.pc | head -1)
[ -n "$pc" ] || { echo "FAIL: no cgw.pc installed"; exit 1; }
[ -f "$WORK/prefix/include/cgw.h" ] || { echo "FAIL: cgw.h not installed"; exit 1; }
export PKG_CONFIG_PATH=$(dirname "$pc")
[ "$(pkg-config --modversion cgw)" = "$("$BIN/claude-gateway" --version | awk '{print $2}')" ] ||
    { echo "FAIL: pkg-config version differs from the binary's"; exit 1; }
libdir=$(pkg-config --variable=libdir cgw)
extra=()   # a sanitized build installs a sanitized library: link the runtime too
grep -q '^CGW_SANITIZE:BOOL=ON' "$BIN/CMakeCache.txt" && extra=(-fsanitize=address,undefined)
# shellcheck disable=SC2046
gcc -std=c17 -Wall -Wextra -Werror "$SRC/examples/quickstart.c" -o "$WORK/quickstart" \
    $(pkg-config --cflags --libs cgw) -Wl,-rpath,"$libdir" "${extra[@]}"
# (ldd's output is captured first: with pipefail, `grep -q` closing the pipe early would make
# ldd die of SIGPIPE and fail the check.)
linked=$(ldd "$WORK/quickstart")
grep -q "$libdir/libcgw.so" <<<"$linked" ||
    { echo "FAIL: not linked against the installed libcgw.so"; exit 1; }
out=$(cd "$WORK" && env -u ANTHROPIC_API_KEY -u ANTHROPIC_AUTH_TOKEN HOME="$WORK" \
    "$WORK/quickstart" 2>/dev/null || true)
grep -q '"type":"text_delta"' <<<"$out" || { echo "FAIL: no text_delta: $out"; exit 1; }
tail -1 <<<"$out" | grep -q '"type":"stream_complete"' ||
    { echo "FAIL: did not end with stream_complete: $out"; exit 1; }
echo "1 passed, 0 failed"
