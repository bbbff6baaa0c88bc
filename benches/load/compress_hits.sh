#!/usr/bin/env bash
# Compressed cache hits: requests/s for a cached 100 KiB JavaScript file asked for with
# `Accept-Encoding: gzip`, homefront (compress: true, the gzip variant cached) beside nginx
# (proxy_cache + `gzip on`, which compresses on every response), one run.
#
# One nginx serves the file as the origin (Cache-Control: max-age=3600). In front of it,
# over HTTPS with the same certificate: homefront and nginx, both at gzip level 6. Both are
# warmed, checked to answer gzip from their cache and to decode to the same file, then wrk
# drives each in alternating rounds. Server on CPU 0, wrk on CPU 1.
#
#   benches/load/compress_hits.sh [SECONDS_PER_ROUND] [ROUNDS] [CONNECTIONS]
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
# A JavaScript-like file: repetitive, as real bundles are, with varying identifiers.
python3 - "$work/www/app.js" <<'PY'
import random, sys
random.seed(7)
words = ["function", "return", "const", "let", "this", "props", "state", "render", "value", "if", "else"]
out = []
size = 0
i = 0
while size < 102400:
    line = f"{random.choice(words)} fn{i}(a{i % 17}, b) {{ {random.choice(words)} a{i % 17} + b * {random.randint(0, 999)}; }}\n"
    out.append(line); size += len(line); i += 1
open(sys.argv[1], "w").write("".join(out)[:102400])
PY

NGINX_HTTP_EXTRA='types { application/javascript js; }'
NGINX_EDGE_EXTRA='gzip on; gzip_comp_level 6; gzip_types application/javascript; gzip_proxied any; gzip_vary on;'
start_edges

gz=(-H "Accept-Encoding: gzip")
f=app.js
for i in 1 2; do
  curl -sk "${gz[@]}" -o /dev/null "https://127.0.0.1:$hf/$f"
  curl -sk "${gz[@]}" -o /dev/null "https://127.0.0.1:$ng/$f"
done
hdr() { curl -sk "${gz[@]}" -D - -o /dev/null "$1" | tr -d '\r' | awk -F': ' -v h="$2" 'tolower($1)==h{print $2}'; }
[ "$(hdr "https://127.0.0.1:$hf/$f" x-cache)" = "Hit from homefront" ] || { echo "homefront does not hit"; exit 1; }
[ "$(hdr "https://127.0.0.1:$ng/$f" x-cache)" = "HIT" ] || { echo "nginx does not hit"; exit 1; }
[ "$(hdr "https://127.0.0.1:$hf/$f" content-encoding)" = "gzip" ] || { echo "homefront does not gzip"; exit 1; }
[ "$(hdr "https://127.0.0.1:$ng/$f" content-encoding)" = "gzip" ] || { echo "nginx does not gzip"; exit 1; }
cmp <(curl -sk "${gz[@]}" "https://127.0.0.1:$hf/$f" | gunzip) "$work/www/$f" || { echo "homefront's gzip differs"; exit 1; }
cmp <(curl -sk "${gz[@]}" "https://127.0.0.1:$ng/$f" | gunzip) "$work/www/$f" || { echo "nginx's gzip differs"; exit 1; }
hs=$(curl -sk "${gz[@]}" "https://127.0.0.1:$hf/$f" | wc -c); ns=$(curl -sk "${gz[@]}" "https://127.0.0.1:$ng/$f" | wc -c)
echo "100 KiB app.js gzip-encoded: homefront $hs bytes, nginx $ns bytes"

run() { taskset -c 1 wrk -t1 -c"$conns" -d"${secs}s" -H "Accept-Encoding: gzip" "$1" | awk '/Requests\/sec/ {print $2}'; }
echo "gzip cache hits over HTTPS/1.1 keep-alive, $conns connections, ${secs}s rounds, server on CPU 0"
printf "%-6s %14s %14s %8s\n" round "homefront r/s" "nginx r/s" ratio
ht=0; nt=0
for r in $(seq "$rounds"); do
  h=$(run "https://127.0.0.1:$hf/$f"); n=$(run "https://127.0.0.1:$ng/$f")
  printf "%-6s %14s %14s %8s\n" "$r" "$h" "$n" "$(python3 -c "print(f'{$h/$n:.3f}')")"
  ht=$(python3 -c "print($ht+$h)"); nt=$(python3 -c "print($nt+$n)")
done
python3 -c "print(f'mean: homefront {$ht/$rounds:.0f} req/s, nginx {$nt/$rounds:.0f} req/s, ratio {$ht/$nt:.3f}')"
