#!/usr/bin/env bash
# Quick start, command 1: set up, build, and run the main job — validate the
# example multi-region fleet and job mix, place the jobs and print every
# decision with its regions, nodes, scores and, for waiting jobs, the reasons
# per region; then replay a synthetic trace through three policies on the same
# fleet with the simulator and write an HTML report.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh release
echo
echo "== meridian validate =="
build/meridian validate examples/fleets/multi-region.yaml examples/jobs/mixed.yaml
echo
echo "== meridian place =="
build/meridian place --fleet examples/fleets/multi-region.yaml --jobs examples/jobs/mixed.yaml
echo
echo "== meridian sim (synthetic trace, 3000 jobs) =="
mkdir -p out
build/meridian sim --fleet examples/fleets/multi-region.yaml --trace synthetic:3000:400 \
  --policy fifo --policy tiresias --policy drf --scenario "Demo: synthetic jobs on the example fleet" \
  --json out/demo.json --report out/demo.html
echo "report: out/demo.html (open in a browser; no network needed)"
