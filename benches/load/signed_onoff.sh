#!/usr/bin/env bash
# Requests/s through the edge with signed-URL verification on vs off, in one run.
#
# Two behaviors serve the same 1 KiB object from the built-in bucket store: /private/* needs a
# signed URL (RSA-2048, SHA-1, canned policy), /public/* does not. wrk drives each over HTTPS
# (keep-alive) in alternating rounds; the script prints requests/s and the ratio on/off.
# After the first request both are cache hits, so the ratio is verification's share of a hit.
#
#   benches/load/signed_onoff.sh [SECONDS_PER_ROUND] [ROUNDS]
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
https=$(port); origin=$(port)
mkdir -p "$work/keys"
cp tests/vectors/keys/trusted-rsa.pub.pem "$work/keys/"
echo "bench-secret-0123456789" > "$work/origin.key"
cat > "$work/homefront.yaml" <<YAML
listen: { https: "127.0.0.1:$https" }
key_groups:
  bench: [ { id: KTRUSTEDRSA0001, public_key: keys/trusted-rsa.pub.pem } ]
origins:
  site: { bucket: site }
distributions:
  - domains: ["*"]
    behaviors:
      - { path_pattern: "/private/*", origin: site, trusted_key_groups: [bench] }
      - { path_pattern: "*", origin: site }
buckets:
  site: {}
origin_server:
  listen: "127.0.0.1:$origin"
  credentials: [ { access_key_id: bench, secret_access_key_file: origin.key } ]
YAML
(cd "$work" && HOMEFRONT_LOG=warn exec taskset -c 0 "$bin" serve -c homefront.yaml > server.log 2>&1) &
pid=$!
wait_port "$https"

head -c 1024 /dev/urandom > "$work/obj"
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret-0123456789 AWS_DEFAULT_REGION=us-east-1
for p in private public; do
  aws --endpoint-url "http://127.0.0.1:$origin" s3 cp "$work/obj" "s3://site/$p/1k.bin" >/dev/null
done
signed=$("$bin" sign-url --key-pair-id KTRUSTEDRSA0001 --private-key tests/vectors/keys/trusted-rsa.pem \
  --expires 1h "https://127.0.0.1:$https/private/1k.bin")
curl -skf -o /dev/null "$signed" || { echo "signed URL refused"; exit 1; }
curl -skf -o /dev/null "https://127.0.0.1:$https/public/1k.bin"

run() { taskset -c 1 wrk -t1 -c32 -d"${secs}s" "$1" | awk '/Requests\/sec/ {print $2}'; }
on_total=0; off_total=0
printf "%-6s %14s %14s\n" round "signed req/s" "open req/s"
for r in $(seq "$rounds"); do
  on=$(run "$signed"); off=$(run "https://127.0.0.1:$https/public/1k.bin")
  printf "%-6s %14s %14s\n" "$r" "$on" "$off"
  on_total=$(python3 -c "print($on_total+$on)"); off_total=$(python3 -c "print($off_total+$off)")
done
python3 -c "print(f'mean: signed {$on_total/$rounds:.0f} req/s, open {$off_total/$rounds:.0f} req/s, ratio on/off {$on_total/$off_total:.3f}')"
