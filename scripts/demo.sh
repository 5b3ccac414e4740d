#!/usr/bin/env bash
# Quick start, command 1: set up, build, and run the main job — validate the
# example multi-region fleet and job mix, then place the jobs and print every
# decision with its regions, nodes, scores and, for waiting jobs, the reasons
# per region.
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
