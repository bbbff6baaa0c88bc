#!/usr/bin/env bash
# The bucket store against ceph/s3-tests, the public S3 functional test suite (boto3), as
# issue 25 measured it: bucket policies, IAM, SSE, lifecycle, website, select and storage
# classes are left out; everything else runs, `fails_on_aws`/`fails_on_rgw` tests included.
# Not part of CI (it needs GitHub and takes ~5 minutes).
#
#   benches/s3-tests/run.sh [BINARY] [OUTNAME]
#
# BINARY: default target/release/homefront (built if missing). Fetches the suite at the
# pinned commit into $S3TESTS_DIR (default ~/.cache/homefront/s3-tests) with a venv for
# its requirements, starts `BINARY origin` on a free loopback port with a fresh data dir,
# runs the selection with pytest, writes OUTNAME.xml (junit), OUTNAME.log and
# OUTNAME.server.log (default OUTNAME: /tmp/s3-tests-result), prints "passed X failed Y ..."
# and stops the server. Env: TIMEOUT (per-test seconds, default 60), ONLY (a pytest -k
# expression that narrows the selection, e.g. ONLY="multipart or copy"), PYTEST_ARGS.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
COMMIT=8f0ae7b404a3a2fcf7038bf1e6bf29544fe9b6a3
CACHE=${S3TESTS_DIR:-$HOME/.cache/homefront/s3-tests}
BIN=${1:-$REPO/target/release/homefront}
OUT=${2:-/tmp/s3-tests-result}
if [ ! -x "$BIN" ]; then
    (cd "$REPO" && cargo build --release --bin homefront)
fi
BIN=$(readlink -f "$BIN")
case "$OUT" in /*) ;; *) OUT="$PWD/$OUT" ;; esac
NAME=$(basename "$OUT")
mkdir -p "$(dirname "$OUT")"

SUITE=$CACHE/suite
if [ ! -d "$SUITE/.git" ]; then
    mkdir -p "$CACHE"
    git clone -q https://github.com/ceph/s3-tests.git "$SUITE"
fi
git -C "$SUITE" checkout -q "$COMMIT" 2>/dev/null || { git -C "$SUITE" fetch -q origin && git -C "$SUITE" checkout -q "$COMMIT"; }
PY=$CACHE/venv/bin/python
if [ ! -x "$PY" ]; then
    python3 -m venv "$CACHE/venv"
    "$PY" -m pip install -q -r "$SUITE/requirements.txt" pytest pytest-timeout
fi
TIMEOUT=${TIMEOUT:-60}

MARKS="not (bucket_policy or iam_user or iam_account or iam_role or iam_tenant or iam_cross_account
 or user_policy or role_policy or group_policy or session_policy or abac_test or test_of_sts
 or webidentity_test or token_claims_trust_policy_test or token_principal_tag_role_policy_test
 or token_request_tag_trust_policy_test or token_resource_tags_test or token_role_tags_test
 or token_tag_keys_test
 or encryption or sse_s3 or bucket_encryption
 or lifecycle or lifecycle_expiration or lifecycle_transition or cloud_transition or cloud_restore
 or target_by_bucket
 or bucket_logging or bucket_logging_cleanup or fails_without_logging_rollover
 or s3website or s3website_routing_rules or s3website_redirect_location
 or s3select or storage_class or appendobject or sns)"
MARKS=$(echo $MARKS)   # one line
# Bucket-policy / public-access-block tests that carry no bucket_policy mark.
KEXPR="not (bucket_policy or policy_status or block_public or public_block or with_policy or policy_prefix)"
[ -n "${ONLY:-}" ] && KEXPR="($KEXPR) and ($ONLY)"

# Free loopback port.
PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')

RUN=$(mktemp -d "${TMPDIR:-/tmp}/hf-s3-tests.XXXXXX")
sed -e "s|@DATA_DIR@|$RUN/store|" -e "s|@PORT@|$PORT|" "$HERE/homefront.yaml.in" > "$RUN/homefront.yaml"
sed -e "s|^port = .*|port = $PORT|" "$HERE/s3tests.conf" > "$RUN/s3tests.conf"

# Secrets of the three credentials, from the s3tests.conf sections.
secret() { "$PY" - "$HERE/s3tests.conf" "$1" <<'EOF'
import configparser, sys
c = configparser.RawConfigParser(); c.read(sys.argv[1]); print(c.get(sys.argv[2], "secret_key"))
EOF
}
export S3T_MAIN_SECRET=$(secret "s3 main")
export S3T_ALT_SECRET=$(secret "s3 alt")
export S3T_TENANT_SECRET=$(secret "s3 tenant")

"$BIN" origin -c "$RUN/homefront.yaml" > "$OUT.server.log" 2>&1 &
SERVER=$!
cleanup() {
    if kill -0 "$SERVER" 2>/dev/null; then
        kill "$SERVER" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$SERVER" 2>/dev/null || break; sleep 0.2; done
        kill -9 "$SERVER" 2>/dev/null || true
    fi
    wait "$SERVER" 2>/dev/null || true
}
trap cleanup EXIT INT TERM

for _ in $(seq 100); do
    if ! kill -0 "$SERVER" 2>/dev/null; then
        echo "server exited at start:" >&2; cat "$OUT.server.log" >&2; exit 1
    fi
    if curl -s -o /dev/null "http://127.0.0.1:$PORT/"; then break; fi
    sleep 0.1
done

echo "homefront $("$BIN" --version 2>/dev/null || true) (pid $SERVER) on 127.0.0.1:$PORT, data $RUN" >&2

set +e
(
    cd "$SUITE"
    # Keep the user's ~/.aws out of it.
    env S3TEST_CONF="$RUN/s3tests.conf" AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null \
        AWS_DEFAULT_REGION=us-east-1 PYTHONDONTWRITEBYTECODE=1 \
        "$PY" -m pytest s3tests/functional/test_s3.py -p no:cacheprovider \
        --timeout "$TIMEOUT" --tb=short -rfE \
        -m "$MARKS" -k "$KEXPR" \
        --junitxml "$OUT.xml" ${PYTEST_ARGS:-}
) > "$OUT.log" 2>&1
RC=$?
set -e

cleanup
trap - EXIT INT TERM
rm -rf "$RUN"

"$PY" - "$OUT.xml" <<'EOF'
import sys, xml.etree.ElementTree as ET
r = ET.parse(sys.argv[1]).getroot()
s = r if r.tag == "testsuite" else r.find("testsuite")
t, f, e, sk = (int(s.get(k, 0)) for k in ("tests", "failures", "errors", "skipped"))
print(f"passed {t - f - e - sk} failed {f} errors {e} skipped {sk}")
EOF
exit 0
