#!/usr/bin/env bash
# A seek on a cold cache: `Range: bytes=-1048576` (the last MiB) of a 1 GiB object behind an
# HTTP origin throttled to 50 MiB/s, through homefront and through nginx (proxy_cache with the
# `slice` module, 1 MiB slices, proxy_cache_lock on), over plain HTTP on loopback.
#
#   benches/load/range_seek.sh
#
# For each server, from a cold cache: the time to the seek's answer for one viewer, then (cold
# again) two viewers seeking at once, and the bytes the origin sent in each case (its access
# log's $body_bytes_sent, once every request to it has ended: homefront also fills the whole
# object in the background; nginx fetches only the slices asked for). Needs nginx and curl.
set -euo pipefail
cd "$(dirname "$0")/../.."
source benches/load/lib.sh
need nginx nginx
need curl curl
build_homefront

work=$(mktemp -d /tmp/homefront-seek.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

SIZE=$((1 << 30))
mkdir -p "$work/www" "$work/logs"
# Not sparse zeros only: a pattern, so a wrong range would show in the checksum.
python3 - "$work/www/video.bin" "$SIZE" <<'PY'
import sys
block = bytes(range(256)) * 4096  # 1 MiB
with open(sys.argv[1], "wb") as f:
    for _ in range(int(sys.argv[2]) // len(block)):
        f.write(block)
PY
expected=$(tail -c 1048576 "$work/www/video.bin" | md5sum | cut -d' ' -f1)

origin=$(port)
cat > "$work/origin.conf" <<NGINX
user root;
worker_processes 1;
daemon off;
pid $work/origin.pid;
error_log $work/logs/origin-error.log warn;
events { worker_connections 1024; }
http {
  log_format bytes '\$request_uri \$http_range \$status \$body_bytes_sent';
  access_log $work/logs/origin.log bytes;
  server {
    listen 127.0.0.1:$origin;
    root $work/www;
    limit_rate 50m;                 # 50 MiB/s per request
    add_header Cache-Control "max-age=3600";
  }
}
NGINX
nginx -c "$work/origin.conf" -p "$work" &
pids+=($!)
wait_port "$origin"

start_homefront() {
  hf=$(port)
  rm -rf "$work/hf"
  mkdir -p "$work/hf"
  cat > "$work/hf/homefront.yaml" <<YAML
listen: { http: "127.0.0.1:$hf" }
cache: { disk_size: 5GiB, memory_size: 64MiB }
origins:
  www: { http: "127.0.0.1:$origin", response_timeout: 60s }
distributions:
  - domains: ["*"]
    behaviors:
      - { path_pattern: "*", origin: www }
YAML
  (cd "$work/hf" && HOMEFRONT_LOG=warn exec "$bin" serve -c homefront.yaml > homefront.log 2>&1) &
  hf_pid=$!
  wait_port "$hf"
  server_port=$hf
}

start_nginx() {
  ng=$(port)
  rm -rf "$work/ng"
  mkdir -p "$work/ng/cache"
  cat > "$work/ng/nginx.conf" <<NGINX
user root;
worker_processes 1;
daemon off;
pid $work/ng/nginx.pid;
error_log $work/ng/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  proxy_cache_path $work/ng/cache keys_zone=edge:64m max_size=5g inactive=1h use_temp_path=off;
  server {
    listen 127.0.0.1:$ng;
    location / {
      slice 1m;
      proxy_cache edge;
      proxy_cache_key \$uri\$slice_range;
      proxy_set_header Range \$slice_range;
      proxy_cache_valid 200 206 1h;
      proxy_cache_lock on;
      proxy_http_version 1.1;
      proxy_pass http://127.0.0.1:$origin;
    }
  }
}
NGINX
  nginx -c "$work/ng/nginx.conf" -p "$work/ng" &
  ng_pid=$!
  wait_port "$ng"
  server_port=$ng
}

stop_server() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# Seeks with $1 viewers at once; prints each viewer's seconds, checks the bytes.
seek() {
  local n=$1 i curls=()
  for i in $(seq "$n"); do
    curl -s -o "$work/seek.$i" -w '%{http_code} %{time_total}\n' -H 'Range: bytes=-1048576' "http://127.0.0.1:$server_port/video.bin" > "$work/time.$i" &
    curls+=($!)
  done
  wait "${curls[@]}"
  for i in $(seq "$n"); do
    [ "$(md5sum < "$work/seek.$i" | cut -d' ' -f1)" = "$expected" ] || { echo "viewer $i got the wrong bytes" >&2; exit 1; }
  done
  cat "$work"/time.* | sed 's/^206 //' | paste -sd' '
  rm -f "$work"/time.* "$work"/seek.*
}

# The origin's bytes since the log was cut, once its requests have ended (nginx logs a
# request when it ends): for homefront, once the background fill (the one 200) is logged
# (up to 90 s); for nginx, once nothing new was logged for 3 s.
origin_bytes() {
  local last=-1 now stable=0
  for _ in $(seq 180); do
    if [ "$1" = homefront ]; then
      grep -q ' 200 ' "$work/logs/origin.log" && break
    else
      now=$(wc -l < "$work/logs/origin.log")
      if [ "$now" = "$last" ]; then stable=$((stable + 1)); else stable=0; fi
      [ "$stable" -ge 6 ] && break
      last=$now
    fi
    sleep 0.5
  done
  awk '{s+=$4} END {print s+0}' "$work/logs/origin.log"
}

echo "| server | viewers | seconds to the seek's whole answer (each viewer) | origin bytes (MiB) |"
echo "|---|--:|---|--:|"
for server in homefront nginx; do
  for viewers in 1 2; do
    : > "$work/logs/origin.log"
    kill -USR1 "$(cat "$work/origin.pid")"   # reopen the log
    if [ "$server" = homefront ]; then start_homefront; else start_nginx; fi
    times=$(seek "$viewers")
    bytes=$(origin_bytes "$server")
    echo "| $server | $viewers | $times | $(awk -v b="$bytes" 'BEGIN {printf "%.1f", b / 1048576}') |"
    if [ "$server" = homefront ]; then stop_server "$hf_pid"; else stop_server "$ng_pid"; fi
  done
done
echo
echo "1 GiB object, origin limit_rate 50m per request; $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) CPUs; homefront $(git rev-parse --short HEAD); $(nginx -v 2>&1)"
