#!/usr/bin/env bash
# Builds the page and serves it on http://127.0.0.1:PORT (default 8080): web/serve.sh [PORT]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bash "$here/build.sh"
exec node "$here/serve.mjs" "${1:-8080}"
