#!/usr/bin/env bash
# Requests/s of 1 KiB cache hits through the edge with a small viewer-request CloudFront
# Function on vs off, in one run.
#
# Two behaviors serve the same 1 KiB object from the built-in bucket store: /fn/* runs AWS's
# "add index.html" sample (cloudfront-js-2.0, async) on every request, /plain/* runs none.
# The object is fetched as /fn/1k.bin and /plain/1k.bin (the function leaves a path with an
# extension as it is), so after the first request both are hits on the hit path and the
# ratio is the function's share of a hit. wrk drives each over plain HTTP (keep-alive) in
# alternating rounds. It also prints the per-call CPU time from the edge's own histogram.
#
#   benches/load/functions_onoff.sh [SECONDS_PER_ROUND] [ROUNDS]
# Needs: wrk, the aws cli (installed when missing). CPU sets: server on CPU 0, wrk on CPU 1.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-10}
rounds=${2:-3}

source benches/load/lib.sh
need wrk wrk
command -v aws >/dev/null || python3 -m pip install --quiet awscli
build_homefront

work=$(mktemp -d)
trap 'kill -INT $pid 2>/dev/null || true; rm -rf "$work"' EXIT
http=$(port); origin=$(port); metrics=$(port)
echo "bench-secret-0123456789" > "$work/origin.key"
cp tests/fixtures/cloudfront-functions/url-rewrite-single-page-apps.js "$work/index.js"
cat > "$work/homefront.yaml" <<YAML
listen: { http: "127.0.0.1:$http" }
metrics: { listen: "127.0.0.1:$metrics" }
origins:
  site: { bucket: site }
functions:
  index: { file: index.js }
distributions:
  - domains: ["*"]
    behaviors:
      - { path_pattern: "/fn/*", origin: site, function_associations: { viewer_request: index } }
      - { path_pattern: "*", origin: site }
buckets:
  site: {}
origin_server:
  listen: "127.0.0.1:$origin"
  credentials: [ { access_key_id: bench, secret_access_key_file: origin.key } ]
YAML
(cd "$work" && HOMEFRONT_LOG=warn exec taskset -c 0 "$bin" serve -c homefront.yaml > server.log 2>&1) &
pid=$!
wait_port "$http"

head -c 1024 /dev/urandom > "$work/obj"
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret-0123456789 AWS_DEFAULT_REGION=us-east-1
for p in fn plain; do
  aws --endpoint-url "http://127.0.0.1:$origin" s3 cp "$work/obj" "s3://site/$p/1k.bin" >/dev/null
  curl -sf -o /dev/null "http://127.0.0.1:$http/$p/1k.bin"
  curl -sf -D - -o /dev/null "http://127.0.0.1:$http/$p/1k.bin" | grep -qi '^x-cache: Hit' || { echo "/$p/1k.bin is not a hit"; exit 1; }
done

run() { taskset -c 1 wrk -t1 -c32 -d"${secs}s" "$1" | awk '/Requests\/sec/ {print $2}'; }
on_total=0; off_total=0
printf "%-6s %14s %14s\n" round "function req/s" "none req/s"
for r in $(seq "$rounds"); do
  on=$(run "http://127.0.0.1:$http/fn/1k.bin"); off=$(run "http://127.0.0.1:$http/plain/1k.bin")
  printf "%-6s %14s %14s\n" "$r" "$on" "$off"
  on_total=$(python3 -c "print($on_total+$on)"); off_total=$(python3 -c "print($off_total+$off)")
done
python3 -c "print(f'mean: function {$on_total/$rounds:.0f} req/s, none {$off_total/$rounds:.0f} req/s, ratio on/off {$on_total/$off_total:.3f}')"
curl -s "http://127.0.0.1:$metrics/metrics" | python3 -c '
import sys
s = c = 0.0
for line in sys.stdin:
    if line.startswith("homefront_function_compute_seconds_sum{"): s = float(line.split()[-1])
    if line.startswith("homefront_function_compute_seconds_count{"): c = float(line.split()[-1])
print(f"function calls {c:.0f}, CPU per call {s / c * 1e6:.1f} us" if c else "no function calls counted")'
