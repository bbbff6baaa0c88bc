#!/usr/bin/env bash
# Cache-hit requests/s: homefront beside nginx proxy_cache, same machine, same objects, same
# client, one run.
#
# One nginx serves 1 KiB and 100 KiB files as the origin (Cache-Control: max-age=3600).
# In front of it, over HTTPS with the same certificate: homefront (its edge cache) and nginx
# (proxy_cache on disk, one worker). Both are warmed, checked to answer from their cache, then
# wrk drives each in alternating rounds over keep-alive connections. Server on CPU 0, wrk on
# CPU 1; homefront then runs one worker thread, like nginx's one worker.
#
#   benches/load/cache_hits.sh [SECONDS_PER_ROUND] [ROUNDS] [CONNECTIONS]
# Needs: nginx, wrk (installed when missing).
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-10}
rounds=${2:-3}
conns=${3:-32}

need() { command -v "$1" >/dev/null || { apt-get update -qq && apt-get install -y -qq "$2" >/dev/null; }; }
need wrk wrk
need nginx nginx-light
nginx=$(command -v nginx)
cargo build --release --bin homefront >/dev/null 2>&1 || cargo build --release --bin homefront
bin=$PWD/target/release/homefront

work=$(mktemp -d)
pids=()
trap 'kill -INT "${pids[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
origin=$(port); hf=$(port); ng=$(port)
mkdir -p "$work/www" "$work/nginx-cache" "$work/logs"
head -c 1024 /dev/urandom > "$work/www/1k.bin"
head -c 102400 /dev/urandom > "$work/www/100k.bin"

cat > "$work/homefront.yaml" <<YAML
listen: { https: "127.0.0.1:$hf" }
cache: { disk_size: 1GiB, memory_size: 256MiB }
origins:
  www: { http: "127.0.0.1:$origin" }
distributions:
  - domains: ["*"]
    behaviors:
      - { path_pattern: "*", origin: www }
YAML
(cd "$work" && HOMEFRONT_LOG=warn exec taskset -c 0 "$bin" serve -c homefront.yaml > homefront.log 2>&1) &
pids+=($!)
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$hf) 2>/dev/null && break; sleep 0.1; done

# nginx uses homefront's generated self-signed certificate: same TLS work on both sides.
cat > "$work/nginx.conf" <<NGINX
user root;
worker_processes 1;
daemon off;
pid $work/nginx.pid;
error_log $work/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  keepalive_requests 1000000;
  proxy_cache_path $work/nginx-cache keys_zone=edge:64m max_size=1g inactive=1h use_temp_path=off;
  server {
    listen 127.0.0.1:$origin;
    root $work/www;
    add_header Cache-Control "max-age=3600";
  }
  server {
    listen 127.0.0.1:$ng ssl;
    ssl_certificate $work/data/tls/localhost.pem;
    ssl_certificate_key $work/data/tls/localhost.key;
    location / {
      proxy_pass http://127.0.0.1:$origin;
      proxy_cache edge;
      proxy_cache_lock on;
      add_header X-Cache \$upstream_cache_status;
    }
  }
}
NGINX
taskset -c 0 "$nginx" -c "$work/nginx.conf" -e "$work/logs/error.log" &
pids+=($!)
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$ng) 2>/dev/null && break; sleep 0.1; done

for f in 1k.bin 100k.bin; do
  for i in 1 2; do
    curl -sk -o /dev/null "https://127.0.0.1:$hf/$f"
    curl -sk -o /dev/null "https://127.0.0.1:$ng/$f"
  done
  h=$(curl -skI "https://127.0.0.1:$hf/$f" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-cache"{print $2}')
  n=$(curl -skI "https://127.0.0.1:$ng/$f" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-cache"{print $2}')
  [ "$h" = "Hit from homefront" ] || { echo "homefront does not hit on $f: '$h'"; exit 1; }
  [ "$n" = "HIT" ] || { echo "nginx does not hit on $f: '$n'"; exit 1; }
  cmp <(curl -sk "https://127.0.0.1:$hf/$f") "$work/www/$f" || { echo "homefront served a different $f"; exit 1; }
done

run() { taskset -c 1 wrk -t1 -c"$conns" -d"${secs}s" "$1" | awk '/Requests\/sec/ {print $2}'; }
echo "cache hits over HTTPS/1.1 keep-alive, $conns connections, ${secs}s rounds, server on CPU 0"
printf "%-9s %-6s %14s %14s %8s\n" object round "homefront r/s" "nginx r/s" ratio
for f in 1k.bin 100k.bin; do
  ht=0; nt=0
  for r in $(seq "$rounds"); do
    h=$(run "https://127.0.0.1:$hf/$f"); n=$(run "https://127.0.0.1:$ng/$f")
    printf "%-9s %-6s %14s %14s %8s\n" "$f" "$r" "$h" "$n" "$(python3 -c "print(f'{$h/$n:.3f}')")"
    ht=$(python3 -c "print($ht+$h)"); nt=$(python3 -c "print($nt+$n)")
  done
  python3 -c "print(f'$f mean: homefront {$ht/$rounds:.0f} req/s, nginx {$nt/$rounds:.0f} req/s, ratio {$ht/$nt:.3f}')"
done
