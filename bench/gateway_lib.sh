# shellcheck shell=bash
# Shared by bench/gateway.sh and bench/gateway_ab.sh (sourced, not run):
# a work folder with a model and a wrk script, helpers, and the nginx
# configuration both compare against. Expects NAME (the calling script, for
# messages); sets M (the meridian binary, built if missing) and PIDS (pids that
# the exit trap stops: add every process started).

M=${MERIDIAN_BIN:-build/meridian}
[ -x "$M" ] || scripts/build.sh release
scripts/install-deps.sh bench >&2
PIDS=()
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
WORK=$(mktemp -d /tmp/meridian-gateway-bench.XXXXXX)
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for f in "$WORK"/nginx*.pid; do [ -f "$f" ] && { kill "$(cat "$f")" 2>/dev/null || true; }; done
  wait 2>/dev/null || true
  [ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT

# as_service CMD...: runs CMD in a session of its own, as nginx runs once it
# daemonizes (`daemon on` calls setsid). Where the kernel's autogroup
# scheduling is on (kernel.sched_autogroup_enabled=1, as on the machine of
# docs/benchmarks.md), each session is a scheduling group with its own CPU
# share: a proxy left in this script's session would share one group with wrk
# and every replica while nginx has a group to itself, and it would wait for
# a CPU longer after each wake-up. Start it in the background
# (`as_service CMD &`): $! is then CMD's pid, since a background job of a
# script leads no process group and setsid needs no fork.
as_service() { exec setsid "$@"; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_file() {
  for _ in $(seq 100); do [ -s "$1" ] && return 0; sleep 0.05; done
  echo "$NAME: $1 never appeared" >&2; exit 2
}

# A small model to serve (its accuracy does not matter here) and a wrk script
# that posts one 64-value input.
"$M" train --dataset synthetic --epochs 1 --save "$WORK/model" --quiet >/dev/null
python3 -c 'import json; print(json.dumps({"input": [0.5] * 64}))' > "$WORK/body.json"
cat > "$WORK/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("$WORK/body.json", "r")
wrk.body = f:read("*a")
f:close()
LUA

# nginx_start PORT SERVERS: nginx on 127.0.0.1:PORT in front of SERVERS (nginx
# `server ...;` lines): least_conn, a keep-alive pool, HTTP/1.1 upstream, and the
# next upstream on errors and 5xx, POST included (predictions are idempotent, as
# the gateway treats them).
# NGINX_WORKERS (default 2, as the gateway's threads) sets worker_processes.
# TAG (optional third argument) names a second instance: its files are then
# $WORK/nginxTAG.conf, $WORK/nginxTAG.pid and $WORK/nginxTAG/.
nginx_start() {
  local d="$WORK/nginx${3:-}"
  mkdir -p "$d"
  cat > "$d.conf" <<NGX
worker_processes ${NGINX_WORKERS:-2};
daemon on;
pid $d.pid;
error_log $d/error.log error;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $d/body;
  proxy_temp_path $d/proxy;
  fastcgi_temp_path $d/fastcgi;
  uwsgi_temp_path $d/uwsgi;
  scgi_temp_path $d/scgi;
  upstream replicas {
    least_conn;
$2    keepalive 256;
  }
  server {
    listen 127.0.0.1:$1;
    location / {
      proxy_pass http://replicas;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_next_upstream error timeout http_500 http_502 http_503 http_504 non_idempotent;
    }
  }
}
NGX
  "$NGINX" -c "$d.conf" -p "$d" 2>>"$d/error.log"
}
