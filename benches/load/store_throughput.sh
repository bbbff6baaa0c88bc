#!/usr/bin/env bash
# Bucket store PUT/GET throughput beside the disk's own sequential write/read speed, in one
# run, as ratios (issue: GET >= 80% and PUT >= 60% of the disk for 64 MiB objects).
#
# The store runs alone (`homefront origin`, release build) on loopback; curl PUTs and GETs
# with presigned URLs (`homefront presign`), so no SDK overhead is measured. The disk
# baseline is dd on the same filesystem: write with conv=fdatasync (our PUT fsyncs too); read
# from disk (the files' page cache dropped first, for dd's files and the store's alike), and
# read again from the page cache (an object read often). The issue's targets are against the
# disk: GET >= 80% of the disk read, PUT >= 60% of the disk write, for 64 MiB objects.
#
#   benches/load/store_throughput.sh [DATA_DIR_PARENT]
set -euo pipefail
cd "$(dirname "$0")/../.."
parent=${1:-/tmp}
source benches/load/lib.sh
build_homefront
work=$(mktemp -d "$parent/hf-store-bench.XXXXXX")
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
port=$(port)
echo "bench-secret-0123456789" > "$work/origin.key"
cat > "$work/homefront.yaml" <<YAML
data_dir: ./data
origins: { site: { bucket: bench } }
distributions: [ { domains: ["*"], behaviors: [ { path_pattern: "*", origin: site } ] } ]
buckets: { bench: {} }
origin_server:
  listen: "127.0.0.1:$port"
  credentials: [ { access_key_id: bench, secret_access_key_file: origin.key } ]
YAML
sed -i 's/origins: { site: { bucket: bench } }/origins: { site: { bucket: bench } }/' "$work/homefront.yaml"
(cd "$work" && HOMEFRONT_LOG=warn exec "$bin" origin -c homefront.yaml > server.log 2>&1) &
pid=$!
wait_port "$port"

now() { date +%s.%N; }
mbps() { python3 -c "print(f'{$1/1048576/($3-$2):.1f}')"; }

# nginx (sendfile) serving the store's own data files: what HTTP over loopback with curl can
# carry on this machine, measured beside our GET in the same run.
nport=$(port)
command -v nginx >/dev/null || { export DEBIAN_FRONTEND=noninteractive; apt-get install -y -qq nginx-light >/dev/null 2>&1 || true; }
if command -v nginx >/dev/null; then
  mkdir -p "$work/data/buckets/bench/objects"
  # Workers must read the store's files (the work directory is private to this user).
  user=""; [ "$(id -u)" = 0 ] && user="user root;"
  cat > "$work/nginx.conf" <<NGX
$user
worker_processes 1;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx.err;
events { worker_connections 64; }
http { access_log off; sendfile on; server { listen 127.0.0.1:$nport; root $work/data/buckets/bench/objects; } }
NGX
  nginx -c "$work/nginx.conf" & npid=$!
  trap 'kill $pid $npid 2>/dev/null || true; rm -rf "$work"' EXIT
fi

# Drops the page cache of the given files (dd iflag=nocache), so the next read comes from disk.
uncache() { sync; for f in "$@"; do dd if="$f" iflag=nocache count=0 status=none; done; }

printf "%-5s %5s | %9s %9s %6s | %9s %9s %9s %6s | %9s %9s %9s %6s\n" size count \
  "disk wr" "PUT" "ratio" "disk rd" "nginx" "GET" "ratio" "cached rd" "nginx" "GET" "ratio"
printf "%-5s %5s | %27s | %37s | %37s\n" "" "" "MB/s, fsynced" "MB/s, from disk" "MB/s, from page cache"
for spec in "4k 4096 200" "1m 1048576 50" "64m 67108864 4"; do
  set -- $spec
  name=$1 size=$2 count=$3
  head -c "$size" /dev/urandom > "$work/src.$name"
  # Disk: the same bytes, written with fdatasync, read back from disk, then from the page cache.
  t0=$(now)
  for i in $(seq "$count"); do dd if="$work/src.$name" of="$work/dd.$name.$i" bs=1M conv=fdatasync status=none; done
  t1=$(now)
  uncache "$work"/dd.$name.*
  t2=$(now)
  for i in $(seq "$count"); do dd if="$work/dd.$name.$i" of=/dev/null bs=1M status=none; done
  t3=$(now)
  for i in $(seq "$count"); do dd if="$work/dd.$name.$i" of=/dev/null bs=1M status=none; done
  t4=$(now)
  rm -f "$work"/dd.$name.*
  # Store: presigned PUT then GET of each object, one curl process per phase (keep-alive).
  : > "$work/put.curl"; : > "$work/get.curl"
  for i in $(seq "$count"); do
    printf 'url = "%s"\nupload-file = "%s"\noutput = "/dev/null"\n' \
      "$(cd "$work" && "$bin" presign -c homefront.yaml --method PUT --expires 1h "s3://bench/$name/$i")" \
      "$work/src.$name" >> "$work/put.curl"
    printf 'url = "%s"\noutput = "/dev/null"\n' \
      "$(cd "$work" && "$bin" presign -c homefront.yaml --expires 1h "s3://bench/$name/$i")" >> "$work/get.curl"
  done
  t5=$(now)
  curl -sfK "$work/put.curl"
  t6=$(now)
  uncache $(find "$work/data/buckets/bench/objects" -name '*.data')
  t7=$(now)
  curl -sfK "$work/get.curl"
  t8=$(now)
  curl -sfK "$work/get.curl"
  t9=$(now)
  # nginx GETs of the same data files, from disk then from the page cache.
  files=$(cd "$work/data/buckets/bench/objects" && find . -name '*.data' -size "${size}c")
  : > "$work/nginx.curl"
  for f in $files; do printf 'url = "http://127.0.0.1:%s/%s"\noutput = "/dev/null"\n' "$nport" "${f#./}" >> "$work/nginx.curl"; done
  (cd "$work/data/buckets/bench/objects" && uncache $files)
  t10=$(now); curl -sfK "$work/nginx.curl"; t11=$(now); curl -sfK "$work/nginx.curl"; t12=$(now)
  total=$((size * count))
  dw=$(mbps $total $t0 $t1); dr=$(mbps $total $t2 $t3); dc=$(mbps $total $t3 $t4)
  pw=$(mbps $total $t5 $t6); pr=$(mbps $total $t7 $t8); pc=$(mbps $total $t8 $t9)
  nr=$(mbps $total $t10 $t11); nc=$(mbps $total $t11 $t12)
  ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }
  printf "%-5s %5s | %9s %9s %6s | %9s %9s %9s %6s | %9s %9s %9s %6s\n" "$name" "$count" \
    "$dw" "$pw" "$(ratio $pw $dw)" "$dr" "$nr" "$pr" "$(ratio $pr $dr)" "$dc" "$nc" "$pc" "$(ratio $pc $dc)"
done
