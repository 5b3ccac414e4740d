#!/usr/bin/env bash
# Quick start, command 1: set up, build, and run the main job — a live
# multi-region cluster on this machine: `meridian dev` starts a controller and
# six node agents (three regions x two nodes) as separate processes on
# 127.0.0.1, submits the example jobs in examples/cluster (one a 4-replica
# gang whose replicas check their rendezvous environment against each other
# over TCP, and the main one a training job across all three regions over
# emulated WAN links), follows them until they end and prints where each
# replica ran; then deploys the trained model as an endpoint (07-endpoint.yaml:
# six `meridian serve` replicas spread over the regions and their zones), starts a gateway
# that follows the controller, sends it 300 held-out digits, and stops the
# cluster. Then the scheduling core on its own: place
# the example job mix on the example fleet with reasons, and replay a synthetic
# trace through three policies in the simulator (HTML report).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh release
echo
echo "== meridian dev: 3 regions x 2 nodes, example jobs =="
rm -rf out/dev
mkdir -p out
jobs=examples/cluster
dataset=digits
if [ ! -f "${MERIDIAN_DATA:-../shared/data}/sklearn-digits/digits.csv.gz" ]; then
  # Without the real data (../shared/data or MERIDIAN_DATA) the training job
  # uses the generated digits-like set instead, and says so.
  echo "demo: UCI digits not found; the training job trains on the generated digits-like set"
  jobs=out/demo-jobs
  dataset=synthetic
  rm -rf "$jobs" && mkdir -p "$jobs" && cp examples/cluster/*.yaml "$jobs"/
  sed -i 's/^  dataset: digits$/  dataset: synthetic/' "$jobs"/06-train.yaml
fi
build/meridian dev --regions 3 --nodes-per-region 2 --wan-rtt-ms 40 --wan-mbps 200 \
  --data-dir out/dev --demo "$jobs"
echo
echo "== meridian place (example fleet and job mix) =="
build/meridian validate examples/fleets/multi-region.yaml examples/jobs/mixed.yaml
build/meridian place --fleet examples/fleets/multi-region.yaml --jobs examples/jobs/mixed.yaml
echo
echo "== meridian sim (synthetic trace, 3000 jobs) =="
build/meridian sim --fleet examples/fleets/multi-region.yaml --trace synthetic:3000:400 \
  --policy fifo --policy tiresias --policy drf --scenario "Demo: synthetic jobs on the example fleet" \
  --json out/demo.json --report out/demo.html
echo "report: out/demo.html (open in a browser; no network needed)"
