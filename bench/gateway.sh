#!/usr/bin/env bash
# Gateway benchmark (docs/benchmarks.md, "Gateway"): the same model-server
# replicas behind Meridian's gateway and behind Debian's nginx (upstream
# least_conn, keep-alive pool, next upstream on errors and 5xx, POST included:
# predictions are idempotent, as the gateway treats them), both driven
# by the same wrk load, one scenario after the other, in one run:
#   equal    4 replicas, each prediction takes DELAY ms
#   slow     one of them 5x slower
#   failing  one of them answers 500 to every request
# Each scenario runs ROUNDS times (default 3), alternating which proxy goes
# first. Prints one JSON line per scenario and proxy: the median requests/s,
# p50 and p99 over the rounds, every round's requests/s, and errors summed
# (non-2xx answers and socket errors seen by wrk); then, where both proxies
# ran, one line per scenario with the issue's target for it and whether this
# run met it ("met"), with Meridian's throughput over nginx's ("rps_ratio")
# and nginx's p99 over Meridian's ("p99_ratio": above 1, Meridian's is lower).
#
#   bench/gateway.sh [--duration S] [--connections C] [--delay-ms D] [--replicas N]
#                    [--policy P] [--scenarios "equal slow failing"] [--rounds 3]
#                    [--gateway-threads 2] [--proxies "meridian nginx"]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=10 CONNECTIONS=32 DELAY=10 REPLICAS=4 POLICY=least_request SCENARIOS="equal slow failing" GW_THREADS=2 PROXIES="meridian nginx" ROUNDS=3
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION=$2; shift 2 ;;
    --connections) CONNECTIONS=$2; shift 2 ;;
    --delay-ms) DELAY=$2; shift 2 ;;
    --replicas) REPLICAS=$2; shift 2 ;;
    --policy) POLICY=$2; shift 2 ;;
    --scenarios) SCENARIOS=$2; shift 2 ;;
    --gateway-threads) GW_THREADS=$2; shift 2 ;;
    --proxies) PROXIES=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    -h|--help) sed -n 2,21p "$0"; exit 0 ;;
    *) echo "bench/gateway.sh: unknown argument $1 (try --help)" >&2; exit 1 ;;
  esac
done
NAME=bench/gateway.sh
# shellcheck source=bench/gateway_lib.sh
. bench/gateway_lib.sh

run_scenario() {  # name, then the extra flags of replica 0
  local name=$1; shift
  local addrs=() pids=()
  for i in $(seq 0 $((REPLICAS - 1))); do
    local extra=(--inject-delay-ms "$DELAY")
    [ "$i" -eq 0 ] && extra=("$@")
    rm -f "$WORK/r$i.addr"
    "$M" serve --model "$WORK/model" --listen 127.0.0.1:0 --address-file "$WORK/r$i.addr" \
      "${extra[@]}" > "$WORK/r$i.log" 2>&1 &
    pids+=($!)
  done
  for i in $(seq 0 $((REPLICAS - 1))); do wait_file "$WORK/r$i.addr"; addrs+=("$(cat "$WORK/r$i.addr")"); done

  local gport nport ups=() servers=""
  gport=$(free_port); nport=$(free_port)
  for a in "${addrs[@]}"; do ups+=(--upstream "$a"); servers+="    server $a max_fails=5 fail_timeout=5s;"$'\n'; done
  rm -f "$WORK/gw.addr"
  as_service "$M" gateway --listen "127.0.0.1:$gport" --address-file "$WORK/gw.addr" --threads "$GW_THREADS" \
    --policy "$POLICY" "${ups[@]}" > "$WORK/gw.log" 2>&1 &
  local gpid=$!
  nginx_start "$nport" "$servers"
  wait_file "$WORK/gw.addr"
  # Rounds alternate which proxy goes first; each proxy's runs are kept
  # apart and summarised by their medians (this machine is noisy).
  rm -f "$WORK/runs-$name.jsonl"
  local order=$PROXIES
  for _ in $(seq "$ROUNDS"); do
    for proxy in $order; do
      local port=$gport
      [ "$proxy" = nginx ] && port=$nport
      # A short warm-up fills the connection pools (and lets the gateway find
      # the failing replica, as its first ejection happens there).
      wrk -t 1 -c "$CONNECTIONS" -d 2s -s "$WORK/post.lua" "http://127.0.0.1:$port/v1/predict" >/dev/null
      wrk -t 2 -c "$CONNECTIONS" -d "${DURATION}s" --latency -s "$WORK/post.lua" \
        "http://127.0.0.1:$port/v1/predict" > "$WORK/wrk-$proxy.txt"
      bench/wrk_json.py "$WORK/wrk-$proxy.txt" proxy="$proxy" >> "$WORK/runs-$name.jsonl"
    done
    order=$(echo "$order" | awk '{for (i = NF; i > 0; i--) printf "%s%s", $i, (i > 1 ? " " : "")}')
  done
  python3 - "$name" "$WORK/runs-$name.jsonl" "$CONNECTIONS" "$DURATION" "$POLICY" "$ROUNDS" <<'PY'
import json, statistics, sys
name, path, conns, dur, policy, rounds = sys.argv[1:7]
runs = [json.loads(l) for l in open(path)]
summary = {}
for proxy in dict.fromkeys(r["proxy"] for r in runs):
    mine = [r for r in runs if r["proxy"] == proxy]
    med = lambda k: statistics.median(r[k] for r in mine)
    out = {"benchmark": "gateway", "scenario": name, "proxy": proxy,
           "requests": sum(r["requests"] for r in mine), "rps": round(med("rps"), 1),
           "p50_ms": round(med("p50_ms"), 3), "p99_ms": round(med("p99_ms"), 3),
           "errors": sum(r["errors"] for r in mine), "rounds": int(rounds),
           "rps_runs": [round(r["rps"], 1) for r in mine], "connections": int(conns),
           "duration_s": int(dur)}
    if proxy == "meridian":
        out["policy"] = policy
    print(json.dumps(out))
    summary[proxy] = out
# The issue's target for this scenario, against nginx in the same run.
if "meridian" in summary and "nginx" in summary:
    m, n = summary["meridian"], summary["nginx"]
    verdict = {"benchmark": "gateway", "scenario": name,
               "rps_ratio": round(m["rps"] / n["rps"], 4) if n["rps"] else None,
               "p99_ratio": round(n["p99_ms"] / m["p99_ms"], 3) if m["p99_ms"] else None}
    if name == "equal":
        verdict["target"] = "throughput >= nginx and p99 no worse"
        verdict["met"] = m["rps"] >= n["rps"] and m["p99_ms"] <= n["p99_ms"]
    elif name == "slow":
        verdict["target"] = "p99 at least 2x better than nginx"
        verdict["met"] = m["p99_ms"] * 2 <= n["p99_ms"]
    else:
        verdict["target"] = "no client-visible errors after the first ejection (in the warm-up)"
        verdict["met"] = m["errors"] == 0
    print(json.dumps(verdict))
PY
  kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
  kill "$gpid" "${pids[@]}" 2>/dev/null || true
  wait "$gpid" "${pids[@]}" 2>/dev/null || true
  rm -f "$WORK/nginx.pid"
}

for s in $SCENARIOS; do
  case "$s" in
    equal) run_scenario equal --inject-delay-ms "$DELAY" ;;
    slow) run_scenario slow --inject-delay-ms "$(python3 -c "print($DELAY * 5)")" ;;
    failing) run_scenario failing --inject-delay-ms "$DELAY" --inject-error-rate 1 ;;
    *) echo "bench/gateway.sh: unknown scenario $s (equal, slow, failing)" >&2; exit 1 ;;
  esac
done
