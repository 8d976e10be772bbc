#!/usr/bin/env bash
# The gateway's HTTP API end to end (tests/integration/gateway_api.mjs): real claude-gateway
# serve + mock-api + server-everything on loopback.
set -euo pipefail
cd "$(dirname "$0")"
exec node gateway_api.mjs "$@"
