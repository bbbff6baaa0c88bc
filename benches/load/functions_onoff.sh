#!/usr/bin/env bash
# Requests/s of 1 KiB cache hits through the edge with a small viewer-request CloudFront
# Function on vs off, in one run.
#
# Three behaviors serve the same 1 KiB object from the built-in bucket store: /fn/* runs
# AWS's "add index.html" sample (cloudfront-js-2.0, async) on every request, /fnid/* a
# function that reads the request id (so its result is never reused: QuickJS runs it for
# every request), /plain/* none. The object is fetched as /fn/1k.bin, /fnid/1k.bin and
# /plain/1k.bin (the sample leaves a path with an extension as it is), so after the first
# request all are hits on the hit path and each ratio is the function's share of a hit. wrk
# drives each over plain HTTP (keep-alive) in alternating rounds. It also prints the CPU
# time per run of the functions from the edge's own histogram.
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
cat > "$work/tag.js" <<'JS'
function handler(event) {
    var request = event.request;
    request.headers['x-request-id'] = { value: event.context.requestId };
    return request;
}
JS
cat > "$work/homefront.yaml" <<YAML
listen: { http: "127.0.0.1:$http" }
metrics: { listen: "127.0.0.1:$metrics" }
origins:
  site: { bucket: site }
functions:
  index: { file: index.js }
  tag: { file: tag.js }
distributions:
  - domains: ["*"]
    behaviors:
      - { path_pattern: "/fn/*", origin: site, function_associations: { viewer_request: index } }
      - { path_pattern: "/fnid/*", origin: site, function_associations: { viewer_request: tag } }
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
for p in fn fnid plain; do
  aws --endpoint-url "http://127.0.0.1:$origin" s3 cp "$work/obj" "s3://site/$p/1k.bin" >/dev/null
  curl -sf -o /dev/null "http://127.0.0.1:$http/$p/1k.bin"
  curl -sf -D - -o /dev/null "http://127.0.0.1:$http/$p/1k.bin" | grep -qi '^x-cache: Hit' || { echo "/$p/1k.bin is not a hit"; exit 1; }
done

run() { taskset -c 1 wrk -t1 -c32 -d"${secs}s" "$1" | awk '/Requests\/sec/ {print $2}'; }
on_total=0; id_total=0; off_total=0
printf "%-6s %14s %16s %14s\n" round "sample req/s" "request-id req/s" "none req/s"
for r in $(seq "$rounds"); do
  on=$(run "http://127.0.0.1:$http/fn/1k.bin")
  id=$(run "http://127.0.0.1:$http/fnid/1k.bin")
  off=$(run "http://127.0.0.1:$http/plain/1k.bin")
  printf "%-6s %14s %16s %14s\n" "$r" "$on" "$id" "$off"
  on_total=$(python3 -c "print($on_total+$on)"); id_total=$(python3 -c "print($id_total+$id)")
  off_total=$(python3 -c "print($off_total+$off)")
done
python3 -c "print(f'mean: sample {$on_total/$rounds:.0f} req/s, request-id {$id_total/$rounds:.0f} req/s, none {$off_total/$rounds:.0f} req/s; ratio sample/none {$on_total/$off_total:.3f}, request-id/none {$id_total/$off_total:.3f}')"
curl -s "http://127.0.0.1:$metrics/metrics" > "$work/metrics.txt"
python3 - "$work/metrics.txt" <<'PY'
import re, sys
runs = {}
for line in open(sys.argv[1]):
    m = re.match(r'homefront_function_compute_seconds_(sum|count)\{function="([^"]+)"\} (\S+)', line)
    if m:
        runs.setdefault(m.group(2), {})[m.group(1)] = float(m.group(3))
for name, v in sorted(runs.items()):
    print(f"function {name}: {v['count']:.0f} runs, CPU per run {v['sum'] / v['count'] * 1e6:.1f} us")
PY
