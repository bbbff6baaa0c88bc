#!/usr/bin/env bash
# Builds the fuzz targets and runs each for SECONDS (default 60) from its seed corpus in
# fuzz/seeds/, one target after the other, one process each. Used by CI (.ci/run) and by
# `./dev.sh fuzz [SECONDS]`. Inputs the fuzzer adds and crash artifacts go to a temporary
# directory, never into the repository. Exits non-zero if any target crashes.
#
#   FUZZ_TOOLCHAIN=stable|nightly   default: nightly when rustup has one, else stable (a
#                                   stable compiler works: no sanitizer, RUSTC_BOOTSTRAP=1)
#   FUZZ_TARGETS="signed pattern"   run only these targets
#   FUZZ_LOG_DIR=DIR                keep each target's libFuzzer log as DIR/<target>.log
set -euo pipefail
seconds="${1:-60}"
cd "$(dirname "$0")"

if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

toolchain="${FUZZ_TOOLCHAIN:-}"
if [ -z "$toolchain" ]; then
  if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    toolchain=nightly
  else
    toolchain=stable
  fi
fi
cargo=(cargo)
if [ "$toolchain" = nightly ]; then
  cargo+=(+nightly)
else
  # cargo fuzz passes no unstable flag without a sanitizer; this covers any it still needs.
  export RUSTC_BOOTSTRAP=1
fi

# No sanitizer: the targets check properties of safe Rust, and a stable compiler has none.
# Debug assertions on, so that integer overflow panics.
echo "fuzz: building the targets ($toolchain)"
"${cargo[@]}" fuzz build --sanitizer none --debug-assertions
triple="$(rustc ${cargo[1]:-} -vV | sed -n 's/^host: //p')"
targets="${FUZZ_TARGETS:-$("${cargo[@]}" fuzz list)}"

work="$(mktemp -d)"
failed=()
for target in $targets; do
  corpus="$work/$target/corpus"
  artifacts="$work/$target/artifacts/"
  log="${FUZZ_LOG_DIR:-$work}/$target.log"
  mkdir -p "$corpus" "$artifacts" "$(dirname "$log")"
  cp seeds/"$target"/* "$corpus"/
  flags=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
    -artifact_prefix="$artifacts")
  # Configs are longer than libFuzzer's default 4096-byte inputs (the README's reference is ~9 KiB).
  [ "$target" = config ] && flags+=(-max_len=16384)
  echo "fuzz: $target for ${seconds}s"
  status=0
  "${CARGO_TARGET_DIR:-target}/$triple/release/$target" "${flags[@]}" "$corpus" >"$log" 2>&1 || status=$?
  grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 || true
  grep -E '^stat::number_of_executed_units' "$log" || true
  if [ "$status" -ne 0 ]; then
    failed+=("$target")
    echo "fuzz: $target FAILED (exit $status); the end of its log:"
    tail -n 60 "$log"
    for crash in "$artifacts"*; do
      [ -f "$crash" ] || continue
      echo "fuzz: crashing input $(basename "$crash"), base64:"
      base64 -w 0 "$crash"
      echo
    done
  fi
done

if [ "${#failed[@]}" -ne 0 ]; then
  echo "fuzz: failed: ${failed[*]} (inputs kept in $work)"
  exit 1
fi
rm -rf "$work"
echo "fuzz: all targets ran ${seconds}s without a failure"
