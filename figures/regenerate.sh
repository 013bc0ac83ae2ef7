#!/usr/bin/env bash
# Regenerate every figure in figures/ from the saved run tables beside them (no model needed).
# Each figures/<run>/ holds the CSV tables and run.json of a run recorded in README.md.
set -euo pipefail
cd "$(dirname "$0")"
for run in */; do
  if [ -f "$run/run.json" ]; then workbench figures "$run"; fi
done
# the cross-model comparison is drawn from the two audits' tables
workbench compare audit-quick-0.5b audit-quick --out compare-quick
