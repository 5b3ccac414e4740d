#!/usr/bin/env bash
# Runs the simulator scenarios of docs/results.md on the real traces in
# ../shared/data (read at run time) and writes JSON + HTML reports to out/.
#   (a) Philly on its own fleet: fifo, sjf, tiresias, drf
#   (b) openb, the FGD paper's method (shuffled arrivals, 10 seeds), GPU-node and all-node
#       fleets: fgd, fgd_published, best_fit, dot_product, random
#   (c) cross-region: Philly jobs on a GCP fleet (real prices, Skyplane links)
#       with datasets and residency: cheapest, fastest, meridian
#   (d) heterogeneity: Philly jobs on a K80/P100/V100 fleet with Gavel's measured
#       per-type throughputs: fifo (heterogeneity-unaware) vs gavel (aware)
#   (e) Pollux workload-6 on the Pollux testbed (16 x 4 T4): fifo, sjf, tiresias
#       event-driven with fixed durations; tiresias and adaptive with the
#       artifact's modelling (60 s rounds, 30 s restarts, goodput model)
#   (i) Gavel's traces (20 and 40 jobs/h) on 36 K80 + 36 P100 + 36 V100, 360 s
#       rounds: fifo (agnostic) and gavel (heterogeneity-aware), both fleet orders
#   (j) cross-region adaptive: workload-6 on two regions of 8 x 4 T4 joined by
#       Skyplane's measured us-east-1 <-> us-west-2 link: adaptive vs its
#       WAN-blind variant
# Usage: scripts/scenarios.sh [a|b|c|d|e|i|j ...]   (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${MERIDIAN_DATA:-../shared/data}"
if [ ! -d "$DATA/philly-pollux" ]; then
  echo "scenarios: $DATA not found (set MERIDIAN_DATA); the real traces are needed" >&2
  exit 2
fi
[ -x "${MERIDIAN_BIN:-build/meridian}" ] || scripts/build.sh release
M=${MERIDIAN_BIN:-build/meridian}
mkdir -p out
want() { local x=$1; shift; [ $# -eq 0 ] || [[ " $* " == *" $x "* ]]; }
sel=("$@")
run_a() {
  $M sim --fleet examples/fleets/philly.yaml --trace "philly:$DATA/philly-pollux/philly.csv.gz" \
    --policy fifo --policy sjf --policy tiresias --policy drf \
    --scenario "Philly (Pollux-processed, 82,247 jobs) on a 512-GPU fleet" \
    --json out/philly.json --report out/philly.html
}
run_b() {
  # The FGD paper's method (Weng et al., ATC '23): the default pod list inflated to 130% of
  # the GPUs, arrivals in a seeded random order (seeds 42..51), no departures; unallocated
  # GPUs at 90..130% arrived. On the GPU nodes (the paper's fleet) and on all nodes.
  local openb="$DATA/alibaba-gpu-v2023-openb"
  for nodes in gpu_node all_node; do
    $M import openb --nodes "$openb/openb_node_list_$nodes.csv" -o "out/openb-$nodes.yaml"
    $M sim --fleet "out/openb-$nodes.yaml" --trace "openb:$openb/openb_pod_list_default.csv" \
      --lenient --no-departures --inflate 1.3 --shuffle 42 --seeds "${OPENB_SEEDS:-10}" \
      --policy fgd --policy fgd_published --policy best_fit --policy dot_product --policy random \
      --scenario "Alibaba openb ($nodes): unallocated GPUs as load grows (FGD's method)" \
      --json "out/openb-$nodes.json" --report "out/openb-$nodes.html"
  done
}
run_c() {
  regions=(us-central1 us-east4 us-west1 europe-west4 europe-west1 asia-east1 asia-northeast1
           australia-southeast1)
  args=()
  for r in "${regions[@]}"; do args+=(--region "$r"); done
  $M import gcp --prices "$DATA/gcp-pricing-cyclenerd/gcp_gpu_instance_prices.csv" \
    --skyplane "$DATA/skyplane-interregion" "${args[@]}" --gpu-type a100 --gpu-type h100-80gb \
    --gpu-type l4 --nodes-per-group 6 -o out/gcp.yaml
  # Datasets are part of the scenario, not of GCP's data: sizes are ours.
  cat >> out/gcp.yaml <<'YAML'
datasets:
  - {name: web-text, size_gb: 800, home: us-central1}
  - {name: images-eu, size_gb: 300, home: europe-west4}
  - {name: speech-asia, size_gb: 150, home: asia-east1}
  - {name: clicks-us-east, size_gb: 60, home: us-east4}
YAML
  $M validate out/gcp.yaml
  $M sim --fleet out/gcp.yaml --trace "philly:$DATA/philly-pollux/philly.csv.gz" --limit 20000 \
    --datasets --residency-share 0.2 \
    --gpu-speed l4=0.35 --gpu-speed a100=1.0 --gpu-speed h100-80gb=2.2 \
    --policy cheapest --policy fastest --policy meridian \
    --scenario "Cross-region: 20,000 Philly jobs on 8 GCP regions (real prices and links)" \
    --json out/cross-region.json --report out/cross-region.html
}
run_d() {
  # Each job gets a Gavel job type drawn for its scale factor (seeded), as
  # Gavel's simulator does for Philly-derived traces, and that type's true
  # k80/p100/v100 speeds; only the gavel policy plans with them.
  $M sim --fleet examples/fleets/philly-hetero.yaml \
    --trace "philly:$DATA/philly-pollux/philly.csv.gz" --limit 20000 \
    --gavel "$DATA/gavel-throughputs/simulation_throughputs.json.gz" \
    --policy fifo --policy gavel \
    --scenario "Heterogeneity: 20,000 Philly jobs with Gavel job types on 512 K80/P100/V100 GPUs" \
    --json out/gavel.json --report out/gavel.html
}
run_e() {
  $M sim --fleet examples/fleets/pollux-t4.yaml \
    --trace "pollux:$DATA/philly-pollux/workloads/workload-6.csv" \
    --round-s 0 --restart-penalty-s 0 --job-model fixed \
    --policy fifo --policy sjf --policy tiresias \
    --scenario "Pollux workload-6 (160 jobs) on 16 x 4 T4 GPUs, event-driven, fixed durations" \
    --json out/pollux-w6.json --report out/pollux-w6.html
  # The trace kind's defaults: the Pollux artifact's modelling.
  $M sim --fleet examples/fleets/pollux-t4.yaml \
    --trace "pollux:$DATA/philly-pollux/workloads/workload-6.csv" \
    --policy tiresias --policy adaptive \
    --scenario "Pollux workload-6 on 16 x 4 T4, 60 s rounds, 30 s restarts, goodput model" \
    --json out/pollux-w6-rounds.json --report out/pollux-w6-rounds.html
}
run_i() {
  # The same fleet with its GPU types listed in another order: fifo must not care.
  sed -n '/^node_groups:/q;p' examples/fleets/gavel-36x3.yaml > out/gavel-36x3-reversed.yaml
  { echo "node_groups:"; grep -E '^  - \{name: (v100|p100|k80)' examples/fleets/gavel-36x3.yaml | tac; } \
    >> out/gavel-36x3-reversed.yaml
  for lam in 180 90; do
    for fleet in examples/fleets/gavel-36x3.yaml out/gavel-36x3-reversed.yaml; do
      $M sim --fleet "$fleet" --trace "gavel:$DATA/gavel-traces/gavel-400-lam$lam-s0.trace" \
        --policy fifo --policy gavel \
        --scenario "Gavel trace, 400 jobs, lambda $lam s, 36:36:36 ($fleet)" \
        --json "out/gavel-lam$lam-$(basename "$fleet" .yaml).json"
    done
  done
}
run_j() {
  # Two AWS regions of 8 x 4 T4 (g4dn.12xlarge); the link between them is
  # Skyplane's measurement (avg ping RTT, iperf3 throughput with 64 connections).
  local rtt gbps usd
  rtt=$(awk -F, '$1=="aws:us-east-1" && $4=="aws:us-west-2" {print $8; exit}' "$DATA/skyplane-interregion/latency.csv")
  # (no early exit in awk: zcat would die of SIGPIPE and pipefail stop the script)
  gbps=$(zcat "$DATA/skyplane-interregion/throughput.csv.gz" |
    awk -F, '$1=="aws:us-east-1" && $4=="aws:us-west-2" && !done {printf "%.3f", $13 / 1e9; done=1}')
  usd=$(awk -F, '$1=="us-east-1" && $2=="us-west-2" {print $3; exit}' "$DATA/skyplane-interregion/aws_transfer_costs.csv")
  cat > out/pollux-2regions.yaml <<YAML
kind: fleet
regions:
  - {name: us-east-1, cloud: aws, location: Virginia, zones: [us-east-1a]}
  - {name: us-west-2, cloud: aws, location: Oregon, zones: [us-west-2a]}
node_groups:
  - {name: east, region: us-east-1, zone: us-east-1a, gpu_type: t4, gpus: 4, cpu: 48, memory: 192Gi, price_hour: 3.912, count: 8}
  - {name: west, region: us-west-2, zone: us-west-2a, gpu_type: t4, gpus: 4, cpu: 48, memory: 192Gi, price_hour: 3.912, count: 8}
links:
  - {from: us-east-1, to: us-west-2, rtt_ms: $rtt, gbps: $gbps, egress_usd_per_gb: $usd}
YAML
  $M sim --fleet out/pollux-2regions.yaml \
    --trace "pollux:$DATA/philly-pollux/workloads/workload-6.csv" \
    --policy adaptive --policy adaptive_wan_blind --policy tiresias \
    --scenario "Pollux workload-6 on 2 regions x 8 x 4 T4 (link: Skyplane us-east-1 <-> us-west-2, $rtt ms, $gbps Gbit/s)" \
    --json out/pollux-2regions.json --report out/pollux-2regions.html
}
if want a "${sel[@]}"; then run_a; fi
if want b "${sel[@]}"; then run_b; fi
if want c "${sel[@]}"; then run_c; fi
if want d "${sel[@]}"; then run_d; fi
if want e "${sel[@]}"; then run_e; fi
if want i "${sel[@]}"; then run_i; fi
if want j "${sel[@]}"; then run_j; fi
echo "reports in out/*.html, numbers in out/*.json"
