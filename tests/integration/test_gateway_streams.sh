#!/usr/bin/env bash
# The gateway's SSE delivery and durability (tests/integration/gateway_streams.mjs): resume, slow
# readers, pings, disconnects, kill -9 and SIGTERM of the real claude-gateway serve.
set -euo pipefail
cd "$(dirname "$0")"
exec node gateway_streams.mjs "$@"
