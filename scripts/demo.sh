#!/usr/bin/env bash
# Quick start, command 1: set up, build, and run the main job — a live
# multi-region cluster on this machine: `meridian dev` starts a controller and
# six node agents (three regions x two nodes) as separate processes on
# 127.0.0.1, submits the example jobs in examples/cluster (one a 4-replica
# gang whose replicas check their rendezvous environment against each other
# over TCP, and the main one a training job across all three regions over
# emulated WAN links), follows them until they end, prints where each replica
# ran and a summary, and stops the cluster; then serves the trained model and
# sends it 200 held-out digits. Then the scheduling core on its own: place
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
echo "== meridian serve: the model the cluster just trained, and traffic to it =="
rm -f out/serve.addr
build/meridian serve --model out/dev/shared/models/digits.model --listen 127.0.0.1:0 \
  --address-file out/serve.addr &
serve_pid=$!
for _ in $(seq 100); do [ -s out/serve.addr ] && break; sleep 0.1; done
build/meridian predict --server "$(cat out/serve.addr)" --dataset "$dataset" --samples 200
kill -TERM "$serve_pid"
wait "$serve_pid" || true
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
