#!/usr/bin/env bash
# One command: install, create the account on first run, start the server on embedded defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/trailkeeper server "$@"
