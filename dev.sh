#!/usr/bin/env bash
# Developer entry point; installs what is missing on a fresh Debian machine, then runs.
#   ./dev.sh serve [ARGS]   build (release) and run `homefront serve` on the embedded default
#   ./dev.sh test           run the whole test suite (unit, integration, aws cli)
#   ./dev.sh fuzz [SECONDS] run every fuzz target for SECONDS (default 60) from fuzz/seeds/
set -euo pipefail
cd "$(dirname "$0")"

apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "$@" >/dev/null
}

# pingora builds zlib-ng with cmake.
command -v cmake >/dev/null || apt_install cmake

case "${1:-}" in
  serve)
    shift
    exec cargo run --release --bin homefront -- serve "$@"
    ;;
  test)
    shift
    # The compatibility tests drive the real aws cli.
    if ! command -v aws >/dev/null; then
      python3 -m pip install --quiet awscli || apt_install awscli
    fi
    # Tests drive curl where it is the client that found a bug (HTTP/2 framing).
    command -v curl >/dev/null || apt_install curl
    # The front-proxy test runs a real Jupyter Server (and a Python kernel) behind the edge.
    if ! python3 -c "import jupyter_server, ipykernel" 2>/dev/null; then
      python3 -m pip install --quiet jupyter-server ipykernel
    fi
    # The ACME test gets certificates from Pebble, the ACME test CA.
    if ! command -v pebble >/dev/null || ! command -v pebble-challtestsrv >/dev/null; then
      apt_install pebble
    fi
    # The bucket store is driven by rclone and s3cmd too.
    for tool in rclone s3cmd; do
      command -v "$tool" >/dev/null || apt_install "$tool"
    done
    # The CORS test drives a real browser.
    if ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null; then
      apt_install chromium
    fi
    # Tests sign with botocore's CloudFrontSigner and presign with boto3 at test time.
    if ! python3 -c "import boto3, botocore, cryptography" 2>/dev/null; then
      python3 -m pip install --quiet boto3 cryptography
    fi
    exec cargo test "$@"
    ;;
  fuzz)
    shift
    exec fuzz/run.sh "${1:-60}"
    ;;
  *)
    echo "usage: ./dev.sh serve [ARGS] | ./dev.sh test [CARGO TEST ARGS] | ./dev.sh fuzz [SECONDS]" >&2
    exit 2
    ;;
esac
