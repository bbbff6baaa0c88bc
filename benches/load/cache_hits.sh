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

source benches/load/lib.sh
need wrk wrk
need nginx nginx-light
nginx=$(command -v nginx)
build_homefront

work=$(mktemp -d)
pids=()
trap 'kill -INT "${pids[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/www"
head -c 1024 /dev/urandom > "$work/www/1k.bin"
head -c 102400 /dev/urandom > "$work/www/100k.bin"

start_edges

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
