#!/usr/bin/env bash
# One command: install everything the tests need, then run the whole suite (lint, types, tests).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
.venv/bin/ruff check src tests bench
.venv/bin/mypy
exec .venv/bin/python -m pytest -p no:cacheprovider "$@"
