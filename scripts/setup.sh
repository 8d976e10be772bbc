#!/usr/bin/env bash
# Installs what claude-gateway needs to build and test on Debian 12, and nothing twice:
#   - Debian packages, with apt-get, only those that are missing;
#   - the MCP servers the tests run, from npm, into .cache/npm (git-ignored), pinned.
# A second run with nothing to do takes about a second. Needs root (or sudo) only when a
# Debian package is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

DEB_PACKAGES=(
    gcc make cmake pkg-config ca-certificates
    libevent-dev libcurl4-openssl-dev libjansson-dev libsqlite3-dev libhiredis-dev
    libcmocka-dev redis-server curl util-linux
)
# clang + its runtime build the libFuzzer targets (make fuzz); the test suite replays the
# corpora under gcc, so these are only needed for fuzzing.
if [ "${CGW_SETUP_FUZZ:-0}" = 1 ]; then
    DEB_PACKAGES+=(clang libclang-rt-14-dev)
fi
# Node.js runs the npm MCP servers; a machine that already has node keeps its own.
command -v node >/dev/null 2>&1 || DEB_PACKAGES+=(nodejs)
command -v npm >/dev/null 2>&1 || DEB_PACKAGES+=(npm)

NPM_DIR=.cache/npm
NPM_PACKAGES=(
    "@modelcontextprotocol/server-everything@2026.8.31"
    "@modelcontextprotocol/server-filesystem@2026.8.31"
    "@modelcontextprotocol/server-memory@2026.8.31"
    "@anthropic-ai/sdk@1.10.0"
    "@modelcontextprotocol/sdk@1.32.2"
)

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

missing=()
for p in "${DEB_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing Debian packages: ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
fi

npm_missing=()
for spec in "${NPM_PACKAGES[@]}"; do
    name=${spec%@*}
    want=${spec##*@}
    have=$(node -p "try{require('./$NPM_DIR/node_modules/$name/package.json').version}catch(e){''}" 2>/dev/null || true)
    [ "$have" = "$want" ] || npm_missing+=("$spec")
done
if [ ${#npm_missing[@]} -gt 0 ]; then
    echo "setup: installing npm packages into $NPM_DIR: ${npm_missing[*]}"
    mkdir -p "$NPM_DIR"
    [ -f "$NPM_DIR/package.json" ] || echo '{"name":"cgw-test-servers","private":true}' > "$NPM_DIR/package.json"
    npm install --prefix "$NPM_DIR" --no-audit --no-fund --loglevel=error "${npm_missing[@]}"
fi
echo "setup: ok"
