#!/usr/bin/env bash
# Paired comparison of gateway builds or settings against nginx (docs/benchmarks.md,
# "Gateway"): keeps one set of replicas, nginx (least_conn) and every variant up at
# once, and runs short wrk rounds against each in a shuffled order per round, so
# that the machine's drift hits all of them alike. Prints each round, then per
# variant the median requests/s and its ratio to nginx within the same round,
# and the median p99 and its difference to nginx's in the same round.
#
#   bench/gateway_ab.sh [--rounds 8] [--duration 5] [--connections 32] [--delay-ms 10]
#                       [--variant NAME=BINARY[:FLAG,FLAG...]]... [--nginx-workers "2 1"]
# Without --variant: one variant, build/meridian with --threads 2.
# Example: --variant old=/tmp/meridian-old --variant new=build/meridian:--threads,2
# --nginx-workers: the first count is the nginx every ratio is taken against
# ("nginx"); each further count adds an nginx with that many workers as a
# variant of its own, "nginx-wN" (default: $NGINX_WORKERS, else 2).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=8 DURATION=5 CONNECTIONS=32 DELAY=10 VARIANTS=() NGINX_LIST=${NGINX_WORKERS:-2}
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --connections) CONNECTIONS=$2; shift 2 ;;
    --delay-ms) DELAY=$2; shift 2 ;;
    --variant) VARIANTS+=("$2"); shift 2 ;;
    --nginx-workers) NGINX_LIST=$2; shift 2 ;;
    -h|--help) sed -n 2,15p "$0"; exit 0 ;;
    *) echo "bench/gateway_ab.sh: unknown argument $1 (try --help)" >&2; exit 1 ;;
  esac
done
[ ${#VARIANTS[@]} -gt 0 ] || VARIANTS=("meridian=build/meridian:--threads,2")
NAME=bench/gateway_ab.sh
# shellcheck source=bench/gateway_lib.sh
. bench/gateway_lib.sh

ups=() servers=""
for i in 0 1 2 3; do
  "$M" serve --model "$WORK/model" --listen 127.0.0.1:0 --address-file "$WORK/r$i.addr" \
    --inject-delay-ms "$DELAY" > "$WORK/r$i.log" 2>&1 &
  PIDS+=($!)
done
for i in 0 1 2 3; do
  wait_file "$WORK/r$i.addr"; a=$(cat "$WORK/r$i.addr")
  ups+=(--upstream "$a"); servers+="    server $a max_fails=5 fail_timeout=5s;"$'\n'
done
declare -A PORT
names=(nginx)
for v in "${VARIANTS[@]}"; do
  name=${v%%=*}; rest=${v#*=}; bin=${rest%%:*}; flags=""
  [ "$rest" != "$bin" ] && flags=${rest#*:}
  [ -x "$bin" ] || { echo "bench/gateway_ab.sh: variant $name: no executable $bin" >&2; exit 1; }
  PORT[$name]=$(free_port)
  # shellcheck disable=SC2086  # the flags are split on purpose
  as_service "$bin" gateway --listen "127.0.0.1:${PORT[$name]}" --address-file "$WORK/$name.addr" \
    ${flags//,/ } "${ups[@]}" > "$WORK/$name.log" 2>&1 &
  PIDS+=($!)
  names+=("$name")
done
read -r -a nginx_workers <<< "$NGINX_LIST"
for w in "${nginx_workers[@]}"; do
  [[ "$w" =~ ^[1-9][0-9]*$ ]] || { echo "$NAME: --nginx-workers: '$w' is not a count" >&2; exit 1; }
done
PORT[nginx]=$(free_port)
NGINX_WORKERS=${nginx_workers[0]} nginx_start "${PORT[nginx]}" "$servers"
for w in "${nginx_workers[@]:1}"; do
  PORT[nginx-w$w]=$(free_port)
  NGINX_WORKERS=$w nginx_start "${PORT[nginx-w$w]}" "$servers" "-w$w"
  names+=("nginx-w$w")
done
for n in "${names[@]}"; do [[ "$n" = nginx* ]] || wait_file "$WORK/$n.addr"; done
for n in "${names[@]}"; do
  wrk -t 1 -c "$CONNECTIONS" -d 2s -s "$WORK/post.lua" "http://127.0.0.1:${PORT[$n]}/v1/predict" >/dev/null
done
for r in $(seq "$ROUNDS"); do
  for n in $(printf '%s\n' "${names[@]}" | shuf --random-source=<(yes "$r")); do
    out=$(wrk -t 2 -c "$CONNECTIONS" -d "${DURATION}s" --latency -s "$WORK/post.lua" \
      "http://127.0.0.1:${PORT[$n]}/v1/predict")
    line=$(bench/wrk_json.py - round="$r" variant="$n" <<< "$out")
    echo "$line" >> "$WORK/rounds.jsonl"
    echo "round $r $n $line" >&2
  done
done
python3 - "$WORK/rounds.jsonl" <<'PY'
import collections, json, statistics, sys
by = collections.defaultdict(dict)
p99 = collections.defaultdict(dict)
for line in open(sys.argv[1]):
    run = json.loads(line)
    by[run["round"]][run["variant"]] = run["rps"]
    p99[run["round"]][run["variant"]] = run["p99_ms"]
names = list(dict.fromkeys(n for r in by.values() for n in r))
for n in names:
    ratios = [by[r][n] / by[r]["nginx"] for r in by]
    print(json.dumps({"benchmark": "gateway_ab", "variant": n, "rounds": len(by),
                      "rps_median": round(statistics.median(by[r][n] for r in by), 1),
                      "ratio_to_nginx_mean": round(statistics.mean(ratios), 4),
                      "ratio_to_nginx_median": round(statistics.median(ratios), 4),
                      "ratio_min": round(min(ratios), 4), "ratio_max": round(max(ratios), 4),
                      "p99_ms_median": round(statistics.median(p99[r][n] for r in by), 2),
                      # p99 minus nginx's p99 in the same round (negative: better)
                      "p99_vs_nginx_ms_median": round(
                          statistics.median(p99[r][n] - p99[r]["nginx"] for r in by), 3)}))
PY
