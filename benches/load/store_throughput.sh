#!/usr/bin/env bash
# Bucket store PUT/GET throughput beside the disk's own sequential write/read speed, in one
# run, as ratios (issue: GET >= 80% and PUT >= 60% of the disk for 64 MiB objects).
#
# The store runs alone (`homefront origin`, release build) on loopback; curl PUTs and GETs
# with presigned URLs (`homefront presign`), so no SDK overhead is measured. The disk
# baseline is dd on the same filesystem: write with conv=fdatasync (our PUT fsyncs too),
# read of the file just written (page cache, as the GET of an object just written).
#
#   benches/load/store_throughput.sh [DATA_DIR_PARENT]
set -euo pipefail
cd "$(dirname "$0")/../.."
parent=${1:-/tmp}
cargo build --release --bin homefront >/dev/null 2>&1 || cargo build --release --bin homefront
bin=$PWD/target/release/homefront
work=$(mktemp -d "$parent/hf-store-bench.XXXXXX")
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
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
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done

now() { date +%s.%N; }
mbps() { python3 -c "print(f'{$1/1048576/($3-$2):.1f}')"; }

printf "%-8s %6s %12s %12s %12s %12s %9s %9s\n" size count "disk write" "PUT" "disk read" "GET" "PUT/disk" "GET/disk"
for spec in "4k 4096 200" "1m 1048576 50" "64m 67108864 4"; do
  set -- $spec
  name=$1 size=$2 count=$3
  head -c "$size" /dev/urandom > "$work/src.$name"
  # Disk: the same bytes, written with fdatasync, read back.
  t0=$(now)
  for i in $(seq "$count"); do dd if="$work/src.$name" of="$work/dd.$name.$i" bs=1M conv=fdatasync status=none; done
  t1=$(now)
  for i in $(seq "$count"); do dd if="$work/dd.$name.$i" of=/dev/null bs=1M status=none; done
  t2=$(now)
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
  t3=$(now)
  curl -sfK "$work/put.curl"
  t4=$(now)
  curl -sfK "$work/get.curl"
  t5=$(now)
  total=$((size * count))
  dw=$(mbps $total $t0 $t1); dr=$(mbps $total $t1 $t2); pw=$(mbps $total $t3 $t4); pr=$(mbps $total $t4 $t5)
  printf "%-8s %6s %9s MB/s %7s MB/s %7s MB/s %7s MB/s %9s %9s\n" "$name" "$count" "$dw" "$pw" "$dr" "$pr" \
    "$(python3 -c "print(f'{$pw/$dw:.2f}')")" "$(python3 -c "print(f'{$pr/$dr:.2f}')")"
done
