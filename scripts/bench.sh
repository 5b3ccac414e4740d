#!/usr/bin/env bash
# Runs the benchmarks recorded in docs/benchmarks.md and prints one JSON line
# each. Run on a quiet machine; numbers vary with load.
set -euo pipefail
cd "$(dirname "$0")/.."
M=${MERIDIAN_BIN:-build/meridian}
[ -x "$M" ] || scripts/build.sh release
DATA="${MERIDIAN_DATA:-../shared/data}"
for g in 1 8 64; do
  $M bench placement --nodes 10000 --tasks 100000 --gang "$g" --json
done
$M bench submit --jobs 20000 --json
$M bench agents --agents 2000 --hz 1 --seconds 30 --json
sim_time() {  # label, then sim arguments
  local label=$1; shift
  local t0 t1
  t0=$(date +%s.%N)
  $M sim -q "$@" --json /tmp/meridian-bench-sim.json
  t1=$(date +%s.%N)
  python3 - "$label" "$t0" "$t1" <<'PY'
import json, sys
label, t0, t1 = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
d = json.load(open("/tmp/meridian-bench-sim.json"))
for name, p in d["policies"].items():
    print(json.dumps({"benchmark": "sim", "scenario": label, "policy": name,
                      "jobs": p["jobs_total"], "sim_wall_s": round(p["wall_s"], 2),
                      "process_wall_s": round(t1 - t0, 2)}))
PY
}
if [ -f "$DATA/philly-pollux/philly.csv.gz" ]; then
  for p in fifo tiresias; do
    sim_time philly --fleet examples/fleets/philly.yaml --trace "philly:$DATA/philly-pollux/philly.csv.gz" --policy $p
  done
else
  echo "bench: $DATA absent, skipping the Philly simulation" >&2
fi
# Round mode (docs/benchmarks.md, "Simulator"): the artifacts' own inputs.
if [ -f "$DATA/philly-pollux/workloads/workload-6.csv" ]; then
  sim_time pollux-w6-rounds --fleet examples/fleets/pollux-t4.yaml \
    --trace "pollux:$DATA/philly-pollux/workloads/workload-6.csv" --policy tiresias --policy adaptive
fi
for lam in 180 90; do
  [ -f "$DATA/gavel-traces/gavel-400-lam$lam-s0.trace" ] || continue
  sim_time "gavel-lam$lam" --fleet examples/fleets/gavel-36x3.yaml \
    --trace "gavel:$DATA/gavel-traces/gavel-400-lam$lam-s0.trace" --policy gavel --policy fifo
done
sim_time synthetic-1M --fleet examples/fleets/synthetic-10k.yaml --trace synthetic:1000000:23000 --policy fifo
# Training runtime (docs/benchmarks.md, "Training across regions").
$M bench collective --procs 2 --bytes 16777216 --iters 20 --json
if [ -f "$DATA/sklearn-digits/digits.csv.gz" ]; then
  for mode in allreduce central hierarchical diloco; do
    $M train --standalone --workers 6 --regions 3 --mode $mode --dataset digits --shares equal --quiet --json
  done
  for c in fp16 int8; do
    $M train --standalone --workers 6 --regions 3 --mode diloco --compression $c --dataset digits --shares equal --quiet --json
  done
fi
LARGE="--standalone --workers 6 --regions 3 --dataset large --epochs 5 --batch 384 --lr 0.05 --eval-samples 1000 --target-accuracy 0.9 --wan-rtt-ms 80 --wan-mbps 100 --quiet --json"
$M train $LARGE --mode allreduce --eval-every 2
$M train $LARGE --mode diloco --local-steps 15 --compression int8 --overlap
$M train $LARGE --mode diloco --local-steps 50 --compression int8 --overlap
$M train $LARGE --mode diloco --local-steps 15 --compression int8
$M train $LARGE --mode diloco --local-steps 15
# One worker 3x slower: equal against dynamic shares. Two workers have a core each
# here; three oversubscribe the two cores.
for s in equal dynamic; do
  $M train --standalone --workers 2 --regions 1 --mode allreduce --dataset large --hidden 1024 --epochs 10 --batch 2048 --rebalance-every 3 --slow-rank 1 --slow-factor 3 --shares $s --quiet --json
done
for s in equal dynamic; do
  $M train --standalone --workers 3 --regions 1 --mode allreduce --dataset large --hidden 1024 --epochs 10 --batch 3072 --rebalance-every 3 --slow-rank 2 --slow-factor 3 --shares $s --quiet --json
done
# Gateway against nginx least_conn (docs/benchmarks.md, "Gateway").
bench/gateway.sh
