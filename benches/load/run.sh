#!/usr/bin/env bash
# homefront beside nginx (proxy_cache) and Varnish (malloc storage): one command, one table.
#
#   benches/load/run.sh                       # DURATION=10 s per run, ROUNDS=2
#   DURATION=2 ROUNDS=1 benches/load/run.sh   # a quick check
#
# Installs from Debian when missing: nginx, varnish, hitch, wrk, h2load (nghttp2-client)
# (their packages may start system services; the run uses its own instances on free ports).
# Builds homefront (release) and copies the binary, so a build elsewhere cannot swap it mid-run.
#
# What runs, all on loopback:
#   origin     one nginx (1 worker) serving the same files: 1 KiB, 100 KiB, 10 MiB, 100 MiB of
#              random bytes with Cache-Control: max-age=3600, and under /nocache/ the 1 KiB
#              file with Cache-Control: no-store and a fresh X-Origin-Id per response.
#   homefront  its edge cache (disk 1 GiB + memory 256 MiB), HTTP and HTTPS listeners.
#   nginx      1 worker, proxy_cache on disk (max_size 1g), keep-alive upstream (HTTP/1.1,
#              keepalive 64), sendfile on, HTTP and HTTPS (http2) listeners, TLS 1.2 and 1.3
#              (1.22's default lacks 1.3). proxy_cache_lock stays off (its default): with it,
#              concurrent requests for an uncacheable URL wait for each other in 500 ms polls,
#              which would make the miss row measure that timer instead of the proxying.
#   varnish    malloc storage (256 MiB, homefront's memory tier size), thread_pools=1, http2
#              on. Varnish does not terminate TLS: in the TLS rows it sits behind hitch (1
#              worker, PROXY v2, ALPN h2 + http/1.1), the terminator Varnish documents, and
#              the row says "varnish+hitch" (its RSS includes hitch's processes).
#   TLS        every server uses the same certificate and key (homefront's generated ECDSA
#              one); the protocol, cipher and key exchange each negotiated are printed.
#
# CPU sets (SERVER_CPU, CLIENT_CPU; defaults 0 and 1, for a 2-core machine):
#   SERVER_CPU  the server under test, all its processes and threads: homefront; nginx's
#               master and worker; varnishd's manager and child (all pools); hitch. Only one
#               server is driven at a time; the others are idle.
#   CLIENT_CPU  the client (wrk -t1 / h2load -t1) and the origin nginx. The cache-hit rows
#               never reach the origin. The miss row does: there the origin shares the
#               client's CPU, the same way for every server.
# homefront sizes its worker threads from the CPUs it may run on, so pinned to one CPU it
# runs one pingora worker thread per service (plus tokio's blocking pool for disk reads),
# like nginx's one worker process.
#
# Each scenario runs the servers in turn (homefront, nginx, varnish) ROUNDS times, alternating;
# the table shows each server's best round (highest requests/s) with that round's latencies,
# and the spread of requests/s over the rounds. Peak RSS is VmHWM, reset before each run
# (/proc/PID/clear_refs) and read after it, summed over the server's processes (nginx: master,
# worker, cache manager (and cache loader while it lives); varnish: the varnishd child (the
# manager only supervises), + hitch's processes in the TLS rows).
#
# CPU columns: the CPU time of the server's processes and of the client over each run (100 =
# one whole CPU). Notes under the table say when other processes took the server's or the
# client's CPU: numbers from such runs compare scheduling luck more than servers, so run it
# on an otherwise idle machine.
#
# Environment (defaults): DURATION (10) seconds per run, ROUNDS (2), CONNS (32) connections,
# H2_STREAMS (10) concurrent streams per HTTP/2 connection, MEM_CLIENTS (100) concurrent
# downloads of the 100 MiB object, MEM_DURATION ($DURATION) seconds of it, SLOW_RATE (1M)
# curl --limit-rate of the slow downloaders, MEM_LIMIT_MIB (200) homefront's RSS budget for
# them, SERVER_CPU (0), CLIENT_CPU (1), SCENARIOS (all: "hit1k hit100k hit10m h2hit1k tlsnew
# miss1k memory"), KEEP_WORK (unset; set to keep the temp dir), HOLD (unset; set to start and
# warm everything, print the URLs and wait until interrupted, for profiling by hand).
set -euo pipefail
cd "$(dirname "$0")/../.."

DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-2}
CONNS=${CONNS:-32}
H2_STREAMS=${H2_STREAMS:-10}
MEM_CLIENTS=${MEM_CLIENTS:-100}
MEM_DURATION=${MEM_DURATION:-$DURATION}
SLOW_RATE=${SLOW_RATE:-1M}
MEM_LIMIT_MIB=${MEM_LIMIT_MIB:-200}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
SCENARIOS=${SCENARIOS:-hit1k hit100k hit10m h2hit1k tlsnew miss1k memory}

source benches/load/lib.sh
export DEBIAN_FRONTEND=noninteractive
need cmake cmake   # pingora builds zlib-ng with it
need openssl openssl
need wrk wrk
need nginx nginx-light
need varnishd varnish
need hitch hitch
need h2load nghttp2-client
need curl curl
nginx=$(command -v nginx)
log() { echo "[$(date +%T)] $*" >&2; }
# Waits for $3 (pid $2) to listen on port $1; fails loudly with its log ($4) otherwise.
up() {
  wait_port "$1"
  if ! kill -0 "$2" 2>/dev/null || ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
    echo "$3 did not start (port $1):" >&2; tail -20 "$4" >&2; exit 1
  fi
}

log "building homefront (release)"
build_homefront

work=$(mktemp -d /tmp/homefront-bench.XXXXXX)
pids=()
cpids=()
hf_pid=
cleanup() {
  local p
  [ "${#cpids[@]}" = 0 ] || kill "${cpids[@]}" 2>/dev/null || true
  # SIGINT stops homefront at once (SIGTERM would give connections a 5 s grace period).
  [ -z "$hf_pid" ] || kill -INT "$hf_pid" 2>/dev/null || true
  for p in "${pids[@]}"; do [ "$p" = "$hf_pid" ] || kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ -n "${KEEP_WORK:-}" ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
cp "$bin" "$work/homefront"

# ---------------------------------------------------------------- files and ports
mkdir -p "$work/www" "$work/logs" "$work/nginx-cache"
head -c 1024 /dev/urandom > "$work/www/1k.bin"
head -c 102400 /dev/urandom > "$work/www/100k.bin"
head -c 10485760 /dev/urandom > "$work/www/10m.bin"
head -c 104857600 /dev/urandom > "$work/www/100m.bin"

origin=$(port)
hf_http=$(port); hf_tls=$(port)
ng_http=$(port); ng_tls=$(port)
vn_http=$(port); vn_proxy=$(port); vn_tls=$(port)

# ---------------------------------------------------------------- homefront
cat > "$work/homefront.yaml" <<YAML
data_dir: ./data
listen: { http: "127.0.0.1:$hf_http", https: "127.0.0.1:$hf_tls" }
cache: { disk_size: 1GiB, memory_size: 256MiB }
origins:
  www: { http: "127.0.0.1:$origin" }
distributions:
  - domains: ["*"]
    behaviors:
      - { path_pattern: "*", origin: www }
YAML
(cd "$work" && HOMEFRONT_LOG=warn exec taskset -c "$SERVER_CPU" ./homefront serve -c homefront.yaml > logs/homefront.log 2>&1) &
hf_pid=$!
pids+=("$hf_pid")
up "$hf_tls" "$hf_pid" homefront "$work/logs/homefront.log"
cert=$work/data/tls/localhost.pem
key=$work/data/tls/localhost.key
[ -s "$cert" ] && [ -s "$key" ] || { echo "homefront did not generate its certificate" >&2; exit 1; }

# ---------------------------------------------------------------- origin (nginx)
cat > "$work/origin.conf" <<NGINX
user root;
worker_processes 1;
daemon off;
pid $work/origin.pid;
error_log $work/logs/origin-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  keepalive_requests 1000000;
  keepalive_timeout 300s;
  server {
    listen 127.0.0.1:$origin;
    root $work/www;
    location / { add_header Cache-Control "max-age=3600"; }
    location /nocache/ {
      alias $work/www/;
      add_header Cache-Control "no-store";
      add_header X-Origin-Id \$request_id;
    }
  }
}
NGINX
taskset -c "$CLIENT_CPU" "$nginx" -c "$work/origin.conf" -e "$work/logs/origin-error.log" &
pids+=($!)
origin_pid=$!
up "$origin" "$origin_pid" "origin nginx" "$work/logs/origin-error.log"

# ---------------------------------------------------------------- nginx edge
cat > "$work/nginx.conf" <<NGINX
user root;
worker_processes 1;
daemon off;
pid $work/nginx.pid;
error_log $work/logs/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  keepalive_requests 1000000;
  keepalive_timeout 300s;
  proxy_cache_path $work/nginx-cache levels=1:2 keys_zone=edge:64m max_size=1g inactive=1h use_temp_path=off;
  upstream origin {
    server 127.0.0.1:$origin;
    keepalive 64;
  }
  server {
    listen 127.0.0.1:$ng_http;
    listen 127.0.0.1:$ng_tls ssl http2;
    ssl_certificate $cert;
    ssl_certificate_key $key;
    ssl_protocols TLSv1.2 TLSv1.3;
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_cache edge;
      proxy_cache_key \$uri\$is_args\$args;
      add_header X-Cache \$upstream_cache_status;
    }
  }
}
NGINX
taskset -c "$SERVER_CPU" "$nginx" -c "$work/nginx.conf" -e "$work/logs/nginx-error.log" &
ng_pid=$!
pids+=("$ng_pid")
up "$ng_http" "$ng_pid" nginx "$work/logs/nginx-error.log"

# ---------------------------------------------------------------- varnish (+ hitch for TLS)
cat > "$work/default.vcl" <<VCL
vcl 4.1;
backend origin { .host = "127.0.0.1"; .port = "$origin"; }
# One cache entry per URL, whichever listener (plain or behind hitch) asked.
sub vcl_hash { hash_data(req.url); return (lookup); }
sub vcl_deliver {
  if (obj.hits > 0) { set resp.http.X-Cache = "HIT"; } else { set resp.http.X-Cache = "MISS"; }
}
VCL
# -j none: no privilege separation (the temp dir is root's); it changes nothing on the
# request path.
taskset -c "$SERVER_CPU" varnishd -F -j none -n "$work/varnish" -T none \
  -a "127.0.0.1:$vn_http" -a "127.0.0.1:$vn_proxy,PROXY" \
  -f "$work/default.vcl" -s malloc,256m \
  -p thread_pools=1 -p feature=+http2 > "$work/logs/varnish.log" 2>&1 &
vd_pid=$!
pids+=("$vd_pid")
up "$vn_http" "$vd_pid" varnish "$work/logs/varnish.log"
cat "$cert" "$key" > "$work/hitch.pem"
mkdir -p "$work/hitch-ocsp"
cat > "$work/hitch.conf" <<HITCH
frontend = "[127.0.0.1]:$vn_tls"
backend = "[127.0.0.1]:$vn_proxy"
pem-file = "$work/hitch.pem"
workers = 1
daemon = off
write-proxy-v2 = on
alpn-protos = "h2, http/1.1"
ocsp-dir = "$work/hitch-ocsp"
user = "${HITCH_USER:-_hitch}"
HITCH
taskset -c "$SERVER_CPU" hitch --config="$work/hitch.conf" > "$work/logs/hitch.log" 2>&1 &
hi_pid=$!
pids+=("$hi_pid")
up "$vn_tls" "$hi_pid" hitch "$work/logs/hitch.log"

servers=(homefront nginx varnish)
http_url() { case $1 in homefront) echo "http://127.0.0.1:$hf_http" ;; nginx) echo "http://127.0.0.1:$ng_http" ;; varnish) echo "http://127.0.0.1:$vn_http" ;; esac; }
tls_url() { case $1 in homefront) echo "https://127.0.0.1:$hf_tls" ;; nginx) echo "https://127.0.0.1:$ng_tls" ;; varnish) echo "https://127.0.0.1:$vn_tls" ;; esac; }

# The processes whose memory counts: $1 server, $2 "tls" when hitch is in the path.
procs() {
  case $1 in
    homefront) echo "$hf_pid" ;;
    origin) echo "$origin_pid" $(pgrep -P "$origin_pid") ;;
    nginx) echo "$ng_pid" $(pgrep -P "$ng_pid") ;;
    varnish)
      pgrep -P "$vd_pid" -x cache-main
      if [ "${2:-}" = tls ]; then echo "$hi_pid" $(pgrep -P "$hi_pid"); fi
      ;;
  esac
}
# Processes and threads may end while these read them (nginx's cache loader, tokio's idle
# blocking threads): what is gone counts as nothing.
reset_hwm() { local p; for p in $(procs "$@"); do echo 5 2>/dev/null > "/proc/$p/clear_refs" || true; done; }
hwm_kib() {
  local p t=0 v
  for p in $(procs "$@"); do v=$(awk '/^VmHWM:/ {print $2}' "/proc/$p/status" 2>/dev/null || true); t=$((t + ${v:-0})); done
  echo "$t"
}
# CPU time (clock ticks, all threads) of a server's processes.
cpu_ticks() {
  local p t=0 v
  for p in $(procs "$@"); do v=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}' || true); t=$((t + ${v:-0})); done
  echo "$t"
}
# Sets $child_cpu to the CPU seconds used by this shell's finished children (the clients run
# as such); called in this shell, never in a $(...) subshell, which would count its own.
child_cpu() {
  times > "$work/times"
  child_cpu=$(awk 'NR==2 {split($1, u, /[ms]/); split($2, s, /[ms]/); print u[1] * 60 + u[2] + s[1] * 60 + s[2]}' "$work/times")
}
clk=$(getconf CLK_TCK)
# "busy,total" clock ticks of CPU $1 since boot.
cpu_line() { awk -v c="cpu$1" '$1==c {print $2+$3+$4+$7+$8+$9 "," $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat; }
threads_named() { local p n t=0; for p in $(procs "$1"); do n=$({ cat /proc/"$p"/task/*/comm 2>/dev/null || true; } | grep -c "^$2" || true); t=$((t + n)); done; echo "$t"; }
threads_of() { local p n t=0; for p in $(procs "$@"); do n=$(ls "/proc/$p/task" 2>/dev/null | wc -l); t=$((t + n)); done; echo "$t"; }

# Every server process is on SERVER_CPU (threads included).
for s in "${servers[@]}"; do
  for p in $(procs "$s" tls); do
    for t in /proc/$p/task/*; do
      a=$(taskset -pc "${t##*/}" | awk -F': ' '{print $2}')
      [ "$a" = "$SERVER_CPU" ] || { echo "$s thread ${t##*/} runs on CPUs $a, not $SERVER_CPU" >&2; exit 1; }
    done
  done
done

# ---------------------------------------------------------------- warm and check
log "warming the caches"
# The value of header $HDR in the answer to URL $1 (curl options after it); empty on failure.
hdr() { { curl -sk -D - -o /dev/null "${@:2}" "$1" || true; } | tr -d '\r' | awk -F': ' -v h="$HDR" 'tolower($1)==h {print $2}'; }
hit_value() { case $1 in homefront) echo "Hit from homefront" ;; *) echo HIT ;; esac; }
for s in "${servers[@]}"; do
  for base in "$(http_url "$s")" "$(tls_url "$s")"; do
    for f in 1k.bin 100k.bin 10m.bin 100m.bin; do
      for _ in 1 2; do curl -sk -o /dev/null "$base/$f" || true; done
      HDR=x-cache
      x=$(hdr "$base/$f")
      [ "$x" = "$(hit_value "$s")" ] || { echo "$s does not answer $base/$f from its cache: X-Cache '$x'" >&2; exit 1; }
      cmp -s <(curl -sk "$base/$f") "$work/www/$f" || { echo "$s served a different $f at $base" >&2; exit 1; }
    done
    # The uncacheable file reaches the origin every time.
    HDR=x-origin-id
    a=$(hdr "$base/nocache/1k.bin"); b=$(hdr "$base/nocache/1k.bin")
    [ -n "$a" ] && [ "$a" != "$b" ] || { echo "$s does not go to the origin for /nocache/: '$a' '$b'" >&2; exit 1; }
    cmp -s <(curl -sk "$base/nocache/1k.bin") "$work/www/1k.bin" || { echo "$s served a different /nocache/1k.bin" >&2; exit 1; }
  done
  HDR=x-cache
  x=$(hdr "$(tls_url "$s")/1k.bin" --http2)
  [ "$x" = "$(hit_value "$s")" ] || { echo "$s: no hit over HTTP/2: '$x'" >&2; exit 1; }
  v=$(curl -sk --http2 -o /dev/null -w '%{http_version}' "$(tls_url "$s")/1k.bin" || true)
  [ "$v" = 2 ] || { echo "$s does not speak HTTP/2 over TLS (curl got HTTP/$v)" >&2; exit 1; }
done
declare -A warm_hwm
for s in "${servers[@]}"; do warm_hwm[$s]=$(hwm_kib "$s" tls); done
if [ -n "${HOLD:-}" ]; then
  for s in "${servers[@]}"; do echo "$s: $(http_url "$s") $(tls_url "$s") pids $(procs "$s" tls | tr '\n' ' ')"; done
  echo "origin: http://127.0.0.1:$origin; work dir $work; warmed and holding until interrupted (HOLD)"
  sleep infinity &
  pids+=($!)
  wait $! || true
  exit 0
fi

# ---------------------------------------------------------------- runners
cat > "$work/report.lua" <<'LUA'
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %.2f %d %d %d %d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout + e.status, summary.requests))
end
LUA
# Each runner drives the URL given and leaves the client's output in $work/client.out; its
# parser then prints "req/s p50_us p99_us errors".
wrk_run() {
  taskset -c "$CLIENT_CPU" wrk -t1 -c"$CONNS" -d"${DURATION}s" --timeout 10s -s "$work/report.lua" "$@" > "$work/client.out"
}
wrk_run_parse() { awk '$1=="RESULT" {print $2, $3, $4, $5}' "$work/client.out"; }
h2_run() {
  rm -f "$work/h2.log"
  taskset -c "$CLIENT_CPU" h2load -t1 -c"$CONNS" -m"$H2_STREAMS" -D "$DURATION" --log-file="$work/h2.log" "$1" > "$work/client.out"
}
h2_run_parse() {
  local rps fails
  grep -q "Application protocol: h2" "$work/client.out" || { echo "h2load did not negotiate h2:" >&2; cat "$work/client.out" >&2; exit 1; }
  rps=$(awk '/^finished in/ {print $4}' "$work/client.out")
  fails=$(awk '/^requests:/ {print $10 + $12 + $14}' "$work/client.out")
  python3 - "$work/h2.log" "$rps" "$fails" <<'PY'
import sys
d = sorted(int(l.split('\t')[2]) for l in open(sys.argv[1]) if l.strip())
pct = lambda p: d[min(len(d) - 1, int(p / 100 * len(d)))] if d else 0
print(sys.argv[2], pct(50), pct(99), sys.argv[3])
PY
}

results=$work/results.tsv
: > "$results"
# run_scenario NAME KIND(http|tls) RUNNER ARGS...: ROUNDS rounds of each server in turn; "{}"
# in ARGS is replaced by the server's base URL (plain or TLS, by KIND).
run_scenario() {
  local name=$1 kind=$2 runner=$3 r s base a args res hwm
  shift 3
  [[ " $SCENARIOS " == *" $name "* ]] || return 0
  for r in $(seq "$ROUNDS"); do
    for s in "${servers[@]}"; do
      if [ "$kind" = tls ]; then base=$(tls_url "$s"); else base=$(http_url "$s"); fi
      args=()
      for a in "$@"; do args+=("${a//\{\}/$base}"); done
      reset_hwm "$s" "$kind"
      t0=$(cpu_ticks "$s" "$kind"); o0=$(cpu_ticks origin); s0=$(cpu_line "$SERVER_CPU"); c0=$(cpu_line "$CLIENT_CPU"); child_cpu; w0=$child_cpu
      "$runner" "${args[@]}"
      t1=$(cpu_ticks "$s" "$kind"); o1=$(cpu_ticks origin); s1=$(cpu_line "$SERVER_CPU"); c1=$(cpu_line "$CLIENT_CPU"); child_cpu; w1=$child_cpu
      res=$("${runner}_parse")
      hwm=$(hwm_kib "$s" "$kind")
      [ -n "$res" ] || { echo "$name: no result from $runner for $s" >&2; exit 1; }
      # Shares of the run's wall time (CPU ticks): the server's processes; the client
      # (wrk/h2load); other processes on SERVER_CPU; and on CLIENT_CPU, besides the client and
      # the origin.
      cpu=$(python3 -c "
(sb0, st0), (sb1, st1) = ($s0), ($s1)
(cb0, ct0), (cb1, ct1) = ($c0), ($c1)
wall = max(st1 - st0, 1)
srv = ($t1 - $t0) / wall * 100
cli = ($w1 - $w0) * $clk / wall * 100
org = ($o1 - $o0) / wall * 100
print(f'{srv:.0f}\t{cli:.0f}\t{max(0, (sb1 - sb0) / wall * 100 - srv):.0f}\t{max(0, (cb1 - cb0) / max(ct1 - ct0, 1) * 100 - cli - org):.0f}')")
      printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$s" "$r" "${res// /$'\t'}" "$hwm" "$cpu" >> "$results"
      log "$name round $r $s: req/s p50_us p99_us errors = $res, peak RSS ${hwm} KiB, CPU % server/client/others on server CPU/others on client CPU ${cpu//$'\t'//}"
    done
  done
}

# ---------------------------------------------------------------- scenarios
run_scenario hit1k http wrk_run "{}/1k.bin"
run_scenario hit100k http wrk_run "{}/100k.bin"
run_scenario hit10m http wrk_run "{}/10m.bin"
run_scenario h2hit1k tls h2_run "{}/1k.bin"
run_scenario tlsnew tls wrk_run -H "Connection: close" "{}/1k.bin"
run_scenario miss1k http wrk_run "{}/nocache/1k.bin"

# TLS parameters each server negotiated (same certificate for all).
tls_info=$work/tls.txt
: > "$tls_info"
for s in "${servers[@]}"; do
  u=$(tls_url "$s"); hp=${u#https://}
  i=$(openssl s_client -connect "$hp" -alpn h2,http/1.1 </dev/null 2>/dev/null |
    awk -F': ' '/^Protocol *:/ {p=$2} /^ *Cipher *:/ {c=$2} /^Server Temp Key/ {k=$2} /^ALPN protocol/ {a=$2} /^New, / {sub(/^New, /, ""); n=$0}
      END {print n ", " k ", ALPN " a}')
  printf '%s\t%s\n' "$s" "$i" >> "$tls_info"
done

# ---------------------------------------------------------------- memory: 100 MiB downloads
# Fast: wrk keeps MEM_CLIENTS downloads going for MEM_DURATION s (each restarts when done).
# Slow: MEM_CLIENTS curls read at SLOW_RATE each for MEM_DURATION s, so the server must hold
# back rather than buffer what the clients do not take yet.
mem=$work/memory.tsv
: > "$mem"
for r in $(seq "$ROUNDS"); do
  [[ " $SCENARIOS " == *" memory "* ]] || break
  for s in "${servers[@]}"; do
    base=$(http_url "$s")
    reset_hwm "$s"
    out=$(taskset -c "$CLIENT_CPU" wrk -t1 -c"$MEM_CLIENTS" -d"${MEM_DURATION}s" --timeout 600s "$base/100m.bin")
    fast=$(hwm_kib "$s")
    rate=$(awk '/^Transfer\/sec/ {print $2}' <<<"$out")
    reset_hwm "$s"
    cpids=()
    for _ in $(seq "$MEM_CLIENTS"); do
      taskset -c "$CLIENT_CPU" curl -s -o /dev/null --limit-rate "$SLOW_RATE" "$base/100m.bin" &
      cpids+=($!)
    done
    sleep "$MEM_DURATION"
    slow=$(hwm_kib "$s")
    thr=$(threads_of "$s")
    kill "${cpids[@]}" 2>/dev/null || true
    wait "${cpids[@]}" 2>/dev/null || true
    cpids=()
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$s" "$r" "$fast" "$rate" "$slow" "$thr" >> "$mem"
    log "memory round $r $s: ${MEM_CLIENTS} fast downloads peak ${fast} KiB ($rate/s), ${MEM_CLIENTS} slow peak ${slow} KiB, $thr threads"
  done
done

# ---------------------------------------------------------------- the table
hf_threads=$(threads_of homefront)
export CONNS H2_STREAMS MEM_CLIENTS MEM_DURATION SLOW_RATE MEM_LIMIT_MIB
python3 - "$results" "$mem" "$tls_info" "${warm_hwm[homefront]}" "${warm_hwm[nginx]}" "${warm_hwm[varnish]}" <<'PY'
import os, sys, collections
E = os.environ
rows = collections.defaultdict(list)
for l in open(sys.argv[1]):
    name, server, rnd, rps, p50, p99, errs, hwm, srv, cli, oth, othc = l.rstrip('\n').split('\t')
    rows[(name, server)].append(dict(rps=float(rps), p50=int(p50), p99=int(p99), errs=int(errs), hwm=int(hwm),
                                     srv=int(srv), cli=int(cli), oth=int(oth), othc=int(othc)))
mem = collections.defaultdict(list)
for l in open(sys.argv[2]):
    server, rnd, fast, rate, slow, thr = l.rstrip('\n').split('\t')
    mem[server].append(dict(fast=int(fast), rate=rate, slow=int(slow), thr=int(thr)))
tls = dict(l.rstrip('\n').split('\t') for l in open(sys.argv[3]))

servers = ["homefront", "nginx", "varnish"]
# A run where foreign processes took more than this share of the server or client CPU gets a note.
OTHERS_NOTE = 5
scen = [
    ("hit1k", "cache hit 1 KiB", f"HTTP/1.1, wrk -c{E['CONNS']}", False),
    ("hit100k", "cache hit 100 KiB", f"HTTP/1.1, wrk -c{E['CONNS']}", False),
    ("hit10m", "cache hit 10 MiB", f"HTTP/1.1, wrk -c{E['CONNS']}", False),
    ("h2hit1k", "TLS + h2 cache hit 1 KiB", f"h2load -c{E['CONNS']} -m{E['H2_STREAMS']}", True),
    ("tlsnew", "new TLS connections/s (1 KiB hit each)", f"HTTPS/1.1 Connection: close, wrk -c{E['CONNS']}", True),
    ("miss1k", "cache miss to the origin (no-store 1 KiB)", f"HTTP/1.1, wrk -c{E['CONNS']}", False),
]
ms = lambda us: f"{us / 1000:.2f}"
mib = lambda kib: f"{kib / 1024:.0f}"
def fmt_rps(v):
    return f"{v:,.0f}"
print("| scenario | server | req/s | p50 ms | p99 ms | peak RSS MiB | CPU % server / client | spread | homefront / best peer |")
print("|---|---|--:|--:|--:|--:|--:|--:|--:|")
notes = []
peak = collections.defaultdict(int)
for key, title, client, tls_row in scen:
    if not rows[(key, "homefront")]:
        continue
    best = {}
    for s in servers:
        runs = rows[(key, s)]
        b = max(runs, key=lambda x: x["rps"])
        b = dict(b, spread=(max(x["rps"] for x in runs) - min(x["rps"] for x in runs)) / b["rps"] if b["rps"] else 0,
                 hwm=max(x["hwm"] for x in runs), errs=sum(x["errs"] for x in runs))
        best[s] = b
        peak[s] = max(peak[s], b["hwm"])
    oth = {s: max(x["oth"] for x in rows[(key, s)]) for s in servers}
    othc = {s: max(x["othc"] for x in rows[(key, s)]) for s in servers}
    if max(oth.values()) > OTHERS_NOTE or max(othc.values()) > OTHERS_NOTE:
        notes.append(f"{title}: other processes took up to " + "/".join(f"{oth[s]}" for s in servers)
                     + "% of the server CPU and " + "/".join(f"{othc[s]}" for s in servers)
                     + "% of the client CPU while " + "/".join(servers) + " ran")
    peer = max(("nginx", "varnish"), key=lambda s: best[s]["rps"])
    ratio = best["homefront"]["rps"] / best[peer]["rps"] if best[peer]["rps"] else float("nan")
    for i, s in enumerate(servers):
        b = best[s]
        name = "varnish+hitch" if (s == "varnish" and tls_row) else s
        errs = f" ({b['errs']} errors)" if b["errs"] else ""
        if b["errs"]:
            notes.append(f"{title}: {name} had {b['errs']} wrk/h2load errors or non-2xx answers over its rounds")
        print(f"| {title + ' (' + client + ')' if i == 0 else ''} | {name} | {fmt_rps(b['rps'])}{errs} | {ms(b['p50'])} | {ms(b['p99'])} | {mib(b['hwm'])} | {b['srv']} / {b['cli']} | {b['spread'] * 100:.0f}% | "
              f"{f'{ratio:.2f} (vs {peer})' if i == 0 else ''} |")
print()
n = E["MEM_CLIENTS"]
for s in servers:
    peak[s] = max(peak[s], int(sys.argv[4 + servers.index(s)]))
if mem:
    print(f"Memory: {n} concurrent downloads of a cached 100 MiB object over HTTP/1.1 for {E['MEM_DURATION']} s "
          f"(fast: wrk -c{n}, each download restarting when done; slow: {n} curl --limit-rate {E['SLOW_RATE']}). "
          "Peak RSS: the highest over the rounds; throughput: wrk's, of that round.")
    print()
    print("| server | peak RSS MiB, fast | throughput, fast | peak RSS MiB, slow | threads, slow | homefront / lowest peer |")
    print("|---|--:|--:|--:|--:|--:|")
    worst = {s: max(max(x["fast"], x["slow"]) for x in mem[s]) for s in servers}
    low = min(("nginx", "varnish"), key=lambda s: worst[s])
    for s in servers:
        m = mem[s]
        f = max(x["fast"] for x in m); sl = max(x["slow"] for x in m)
        rate = max(m, key=lambda x: x["fast"])["rate"]
        peak[s] = max(peak[s], f, sl)
        r = f"{worst['homefront'] / worst[low]:.1f} (vs {low})" if s == "homefront" else ""
        thr = max(x["thr"] for x in m)
        print(f"| {s} | {mib(f)} | {rate}/s | {mib(sl)} | {thr} | {r} |")
    hf = worst["homefront"] / 1024
    limit = float(E["MEM_LIMIT_MIB"])
    print()
    print(f"homefront's peak RSS under {n} concurrent 100 MiB downloads: {hf:.0f} MiB, "
          f"{'within' if hf < limit else 'OVER'} the {E['MEM_LIMIT_MIB']} MiB budget.")
else:
    print("Memory: not run (SCENARIOS).")
print()
print("Peak RSS over the whole run (MiB): " + ", ".join(f"{s} {mib(peak[s])}" for s in servers)
      + " (varnish: its child, and hitch's processes in the TLS rows; its malloc storage holds every cached object, 100 MiB one included).")
print()
print("TLS negotiated (same certificate): " + "; ".join(f"{s}: {tls[s]}" for s in servers))
for n in notes:
    print("note: " + n)
PY

echo
echo "Best of $ROUNDS alternating rounds of ${DURATION}s per server and scenario (latencies: that round's); spread = (best - worst) / best req/s."
echo "CPU %: the CPU time of the server's processes (on CPU $SERVER_CPU) and of the client (on CPU $CLIENT_CPU) over the run; 100 = a whole CPU. A row whose client is near 100 while the server is well below is bounded by the client, not the server."
echo "CPU sets: servers (homefront; nginx master+worker; varnishd, hitch) on CPU $SERVER_CPU; client (wrk/h2load, 1 thread) and origin nginx (1 worker) on CPU $CLIENT_CPU."
echo "homefront: $hf_threads threads at the end of the run, $(threads_named homefront 'homefront edge') of them the edge's (pingora sizes its worker pool to the CPUs it may use; tokio's blocking pool, which reads the disk cache, adds threads under load and drops them when idle)."
echo "$(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) CPUs, $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo); $(awk '/^MemTotal/ {printf "%.0f GiB RAM", $2/1048576}' /proc/meminfo); Linux $(uname -r); load average before the table: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "homefront $(git describe --always --dirty 2>/dev/null || echo '?'); $("$nginx" -v 2>&1 | sed 's/.*: //'); $(varnishd -V 2>&1 | head -1 | sed 's/ revision.*/)/'); $(hitch --version 2>&1 | head -1); wrk $(wrk -v 2>&1 | awk 'NR==1 {print $2}'); $(h2load --version 2>&1 | head -1)"
