#!/usr/bin/env bash
# The scale benchmark: our job binary, raw Dask and Python dagster-dask side by side.
#   bash benches/scale/run.sh [--quick]
# Sets up what it needs (a venv with the pinned distributed, dagster and dagster-dask at
# target/bench-venv; the job binary in release), then runs benches/scale/bench.py, which
# writes benches/RESULTS.md. See benches/README.md.
set -euo pipefail
cd "$(dirname "$0")/../.."

venv=target/bench-venv
if ! "$venv/bin/python" -c "import dagster, dagster_dask, distributed" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet -r benches/scale/requirements.txt
fi
cargo build --release --quiet -p benches --bin scale-job
exec "$venv/bin/python" benches/scale/bench.py --binary target/release/scale-job "$@"
