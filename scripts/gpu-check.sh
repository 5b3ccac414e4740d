#!/usr/bin/env bash
# GPU check on a machine with an NVIDIA GPU and PyTorch (docs/results.md,
# "GPU discovery and assignment on a real GPU"): NVML discovery against
# nvidia-smi (agent.GpuDiscoveryTest), then a real controller and agent on
# 127.0.0.1 whose agent discovers the GPUs, and four jobs: one whole GPU, one
# with none, two half GPUs. Each prints its CUDA_VISIBLE_DEVICES and what
# PyTorch sees, and multiplies two matrices on the GPU it got.
#
#   scripts/gpu-check.sh                  uses build/meridian and build/tests/agent/gpus_test
#   scripts/gpu-check.sh --bundle DIR     copies both (stripped) and the shared libraries
#                                         they need into DIR, for a machine without them;
#                                         run there as DIR/gpu-check.sh
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
if [ "${1:-}" = --bundle ]; then
  DIR=${2:?--bundle needs a folder}
  cd "$HERE/.." || exit 1
  mkdir -p "$DIR/lib"
  strip -o "$DIR/meridian" build/meridian && strip -o "$DIR/gpus_test" build/tests/agent/gpus_test || exit 1
  cp "$HERE/gpu-check.sh" "$DIR/"
  # Everything but the C and C++ runtimes, which the other machine has.
  for b in build/meridian build/tests/agent/gpus_test; do ldd "$b" | awk '$3 ~ /^\// {print $3}'; done |
    sort -u | grep -v -E '/(libc|libm|libstdc\+\+|libgcc_s|libpthread|libdl|librt)\.so|/ld-linux' |
    xargs -I{} cp -L {} "$DIR/lib/"
  du -sh "$DIR"
  exit 0
fi
if [ -x "$HERE/meridian" ]; then  # a bundle
  M=$HERE/meridian T=$HERE/gpus_test
  export LD_LIBRARY_PATH=$HERE/lib
else
  M=$HERE/../build/meridian T=$HERE/../build/tests/agent/gpus_test
fi
echo "== nvidia-smi -L"; nvidia-smi -L 2>&1 | head -8
echo "== NVML discovery against nvidia-smi"
"$T" --gtest_filter='GpuDiscovery*' 2>&1 | grep -E "discovered|OK|FAILED|SKIPPED|Failure|Which is|Expected"
echo "== controller and agent"
W=$(mktemp -d /tmp/meridian-gpu-check.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null' EXIT
"$M" controller --data-dir "$W/ctl" --listen 127.0.0.1:0 > "$W/ctl.log" 2>&1 &
for _ in $(seq 100); do [ -s "$W/ctl/controller.addr" ] && break; sleep 0.1; done
"$M" agent --controller "$(cat "$W/ctl/controller.addr")" --token-file "$W/ctl/token" \
  --name gpu-node --region local --state-dir "$W/agent" --no-limits > "$W/agent.log" 2>&1 &
for _ in $(seq 100); do "$M" node list --data-dir "$W/ctl" 2>/dev/null | grep -q gpu-node && break; sleep 0.1; done
head -1 "$W/agent.log"
"$M" node list --data-dir "$W/ctl"
cat > "$W/probe.py" <<'PY'
import os, time, torch
print("CUDA_VISIBLE_DEVICES=" + os.environ.get("CUDA_VISIBLE_DEVICES", "unset"))
n = torch.cuda.device_count()
print("torch sees", n, "GPU(s)", torch.cuda.get_device_name(0) if n else "")
if n:
    x = torch.randn(2048, 2048, device="cuda")
    print("matmul finite:", bool((x @ x).isfinite().all()))
time.sleep(float(os.environ.get("HOLD", "0")))
PY
files=()
# name, gpus, seconds held after the check. Each job also sets
# CUDA_VISIBLE_DEVICES=7 in its env, which the agent's choice must override.
for j in "whole 1 0" "cpu 0 0" "share-a 0.5 3" "share-b 0.5 3"; do
  set -- $j
  printf 'kind: job\nname: %s\nshape: {cpu: 1, memory: 4Gi, gpus: %s}\nenv: {HOLD: "%s", CUDA_VISIBLE_DEVICES: "7"}\ncommand: [python3, %s]\n' \
    "$1" "$2" "$3" "$W/probe.py" > "$W/$1.yaml"
  files+=(-f "$W/$1.yaml")
done
timeout "${JOB_TIMEOUT:-150}" "$M" job submit --data-dir "$W/ctl" "${files[@]}" --wait
echo "jobs: exit $?"
for id in 1 2 3 4; do
  echo "-- job $id: $("$M" job get --data-dir "$W/ctl" "$id" -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["name"])')"
  "$M" job logs --data-dir "$W/ctl" "$id"
  "$M" job logs --data-dir "$W/ctl" --stderr "$id" | tail -2
done
echo "== what the agent recorded (MILLI DEVICES per run)"
for f in "$W"/agent/runs/*/gpus; do echo "$(basename "$(dirname "$f")"): $(cat "$f")"; done
