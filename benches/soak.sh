#!/usr/bin/env bash
# Soak run: a bounded mixed load through one homefront for DURATION seconds, with its HTTP
# origin killed (SIGKILL) in the middle and restarted OUTAGE seconds later.
#
# homefront (release build, `serve`) runs on ephemeral loopback ports with the built-in
# bucket store and one distribution over HTTPS:
#   /private/*  bucket `site`, signed URLs required (key group with tests/vectors' RSA key)
#   /api/*      HTTP origin benches/soak/origin.py (a separate process), caching off
#   *           bucket `site`, cached
# and its load is, all at once (benches/soak/drive.py):
#   hit         wrk, HIT_CONNECTIONS keep-alive connections cycling over 40 cached objects
#               (0 B..2 MiB, some compressed), plus HTTP/2 hits with curl every 3 s (hit-h2)
#   miss-*      2 threads of GETs and POSTs to /api/* (every one goes to the HTTP origin)
#   signed-*    1 thread: valid signed URLs (canned and custom policy) and, every tenth,
#               a tampered, misapplied, untrusted, missing, expired or extended one (403)
#   upload*     2 threads of boto3 uploads straight to the bucket store (0 B..3 MiB
#               PutObject; every twelfth a 8..20 MiB multipart upload; once
#               UPLOAD_BUDGET_MIB is uploaded, only 0 B..64 KiB ones), each read back
#               through the edge (edge-read). Disk: about twice the budget (store + cache).
# homefront's RSS (VmRSS) and open fds (/proc/PID/fd) are sampled every SAMPLE seconds.
#
# It fails (exit 1, every reason printed) when:
#   - homefront died or was replaced (pid and process start time), or stops serving;
#   - an acknowledged upload is missing or differs (SHA-256) through the S3 API or the edge,
#     or is not listed; or an upload failed;
#   - a hit, a valid signed URL, an edge read or an HTTP/2 hit got anything but a 200 with
#     the right body, a bad signed URL anything but 403, or a connection failed;
#   - a miss failed outside the outage window (kill - 0.5 s .. restart + GRACE), failed with
#     anything but 502/504 inside it, or misses never reached the restarted origin;
#   - BOUNDS: open fds at the end of the load (and 3 s after it) exceed the post-warmup
#     sample by more than FD_BOUND (default 50), or idle fds after the load exceed those
#     before it by more than FD_BOUND; RSS at the end of the load (and after it) exceeds the
#     post-warmup sample by more than RSS_BOUND_MIB (default 100). The post-warmup sample is
#     the first one at least WARMUP seconds (default DURATION/6, at most 30) into the load.
#   - homefront's log has a panic.
#
#   DURATION=180 benches/soak.sh
# Environment (defaults): DURATION (180), OUTAGE (5), GRACE (5), SAMPLE (5), WARMUP,
# FD_BOUND (50), RSS_BOUND_MIB (100), UPLOAD_BUDGET_MIB (768), HIT_CONNECTIONS (8),
# KEEP=1 keeps the work directory. Needs wrk, curl, python3 with boto3 (installed if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/load/lib.sh

duration=${DURATION:-180}
outage=${OUTAGE:-5}
grace=${GRACE:-5}
sample=${SAMPLE:-5}
warmup=${WARMUP:-$(( duration / 6 < 30 ? duration / 6 : 30 ))}
fd_bound=${FD_BOUND:-50}
rss_bound=${RSS_BOUND_MIB:-100}
budget=${UPLOAD_BUDGET_MIB:-768}
hitc=${HIT_CONNECTIONS:-8}
if (( duration / 2 + outage + grace + sample >= duration )); then
  echo "DURATION=$duration is too short for OUTAGE=$outage and GRACE=$grace" >&2; exit 2
fi

need wrk wrk
need curl curl
python3 -c 'import boto3' 2>/dev/null || python3 -m pip install --quiet boto3
build_homefront

work=$(mktemp -d "${TMPDIR:-/tmp}/hf-soak.XXXXXX")
free_mib=$(( $(df -Pk "$work" | awk 'NR==2 {print $4}') / 1024 ))
if (( free_mib < 2 * budget + 1024 )); then
  rmdir "$work"
  echo "only $free_mib MiB free under ${TMPDIR:-/tmp}; the soak needs 2 x UPLOAD_BUDGET_MIB + 1 GiB ($(( 2 * budget + 1024 )) MiB)" >&2
  exit 2
fi
hf_pid=""; driver_pid=""
cleanup() {
  [ -n "$driver_pid" ] && kill "$driver_pid" 2>/dev/null || true
  [ -f "$work/origin.pid" ] && kill "$(cat "$work/origin.pid")" 2>/dev/null || true
  [ -n "$hf_pid" ] && kill "$hf_pid" 2>/dev/null && wait "$hf_pid" 2>/dev/null || true
  if [ "${KEEP:-0}" = 1 ]; then echo "work directory kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
# The binary is copied: another build into the same target directory during the run must
# not change what runs (or what `sign-url` is).
built=$(date -r "$bin" +%FT%T)
cp "$bin" "$work/homefront"
bin=$work/homefront
echo "binary: $bin, sha256 $(sha256sum "$bin" | cut -c1-16)..., linked $built"

https=$(port); store=$(port); metrics=$(port); app=$(port)
mkdir -p "$work/keys"
cp tests/vectors/keys/trusted-rsa.pub.pem "$work/keys/"
secret=soak-secret-$RANDOM$RANDOM
echo "$secret" > "$work/origin.key"
cat > "$work/homefront.yaml" <<YAML
data_dir: ./data
listen: { https: "127.0.0.1:$https" }
metrics: { listen: "127.0.0.1:$metrics" }
cache: { disk_size: 4GiB, memory_size: 32MiB }
key_groups:
  soak: [ { id: KTRUSTEDRSA0001, public_key: keys/trusted-rsa.pub.pem } ]
origins:
  site: { bucket: site }
  app:
    http: "127.0.0.1:$app"
    health_check: { path: /healthz, interval: 1s }
    connect_timeout: 2s
    response_timeout: 10s
distributions:
  - domains: ["*"]
    behaviors:
      - { path_pattern: "/private/*", origin: site, trusted_key_groups: [soak] }
      - path_pattern: "/api/*"
        origin: app
        allowed_methods: [GET, HEAD, OPTIONS, PUT, POST, PATCH, DELETE]
        cache: { max_ttl: 0 }
      - { path_pattern: "*", origin: site }
buckets:
  site: {}
origin_server:
  listen: "127.0.0.1:$store"
  credentials: [ { access_key_id: soak, secret_access_key_file: origin.key } ]
YAML
"$bin" check-config "$work/homefront.yaml" >/dev/null

start_origin() {
  rm -f "$work/origin.pid"
  python3 benches/soak/origin.py "$app" "$work/origin.pid" >> "$work/origin.log" 2>&1 &
  wait_port "$app"
}
start_origin
(cd "$work" && HOMEFRONT_LOG=warn exec "$bin" serve -c homefront.yaml > homefront.log 2>&1) &
hf_pid=$!
wait_port "$https"; wait_port "$store"; wait_port "$metrics"
echo "homefront pid $hf_pid: edge https://127.0.0.1:$https, bucket store :$store, metrics :$metrics; HTTP origin :$app; work $work"
echo "DURATION=${duration}s OUTAGE=${outage}s GRACE=${grace}s SAMPLE=${sample}s WARMUP=${warmup}s FD_BOUND=+$fd_bound RSS_BOUND=+${rss_bound}MiB UPLOAD_BUDGET=${budget}MiB HIT_CONNECTIONS=$hitc"

python3 benches/soak/drive.py --bin "$bin" --work "$work" --pid "$hf_pid" \
  --https "$https" --store "$store" --metrics "$metrics" \
  --access-key soak --secret-key "$secret" \
  --key-pair-id KTRUSTEDRSA0001 --private-key tests/vectors/keys/trusted-rsa.pem \
  --lua benches/soak/hits.lua --duration "$duration" --warmup "$warmup" --sample "$sample" \
  --grace "$grace" --fd-bound "$fd_bound" --rss-bound-mib "$rss_bound" \
  --upload-budget-mib "$budget" --hit-connections "$hitc" &
driver_pid=$!

# The origin's outage, in the middle of the load.
while [ ! -f "$work/load_started" ]; do
  kill -0 "$driver_pid" 2>/dev/null || break
  sleep 0.2
done
if [ -f "$work/load_started" ]; then
  sleep $(( duration / 2 ))
  kill -9 "$(cat "$work/origin.pid")"
  echo "kill $(date +%s.%N)" >> "$work/events"
  echo "[$(date +%T)] HTTP origin killed (SIGKILL)"
  sleep "$outage"
  echo "restart $(date +%s.%N)" >> "$work/events"
  start_origin
  echo "[$(date +%T)] HTTP origin restarted (pid $(cat "$work/origin.pid"))"
fi

status=0
wait "$driver_pid" || status=$?
driver_pid=""

if grep -n 'panicked' "$work/homefront.log"; then
  echo "FAIL: homefront's log has a panic (above)"; status=1
fi
echo
echo "homefront's log (HOMEFRONT_LOG=warn): $(wc -l < "$work/homefront.log") lines; most frequent messages (numbers as N):"
set +o pipefail  # head closes the pipe early
sed -E 's/^[^ ]+ +//; s/request_id=[^ ]+ //; s/[0-9]+/N/g' "$work/homefront.log" | cut -c1-180 | sort | uniq -c | sort -rn | head -8
exit "$status"
