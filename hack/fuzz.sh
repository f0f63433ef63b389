#!/usr/bin/env bash
# Fuzz sluice's parsers for a bounded time: the targets in fuzz/ (cargo-fuzz, libFuzzer,
# AddressSanitizer, debug assertions on), each run from its seed corpus in fuzz/corpus/.
#
# Usage:
#   hack/fuzz.sh              build every target, run each for $FUZZ_SECONDS (default 12)
#   hack/fuzz.sh TARGET...    only these targets
#
# Fails if any target finds a crash (a panic is a broken invariant): the input is left in
# fuzz/artifacts/TARGET/ and the command to replay it is printed. New inputs found along
# the way go to fuzz/target/corpus/TARGET (not committed; the seeds stay as they are).
#
# Environment:
#   FUZZ_SECONDS    run time per target (default 12: about a minute for the five)
#   FUZZ_SEED       libFuzzer's random seed (default 1: every run starts with the same
#                   inputs, so a CI failure replays; 0 = a fresh seed each run)
#   FUZZ_RSS_MB     libFuzzer's memory limit per target (default 2048)
#   FUZZ_TOOLCHAIN  the nightly toolchain cargo-fuzz builds with (default nightly; the
#                   repository's rust-toolchain.toml pins stable, `cargo +TOOLCHAIN`
#                   overrides it)
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-12}"
seed="${FUZZ_SEED:-1}"
rss_mb="${FUZZ_RSS_MB:-2048}"
toolchain="${FUZZ_TOOLCHAIN:-nightly}"
cargo_fuzz_version=0.13.2

# Largest input per target: heads and bodies past sluice's own limits (8 KiB request line,
# 4 KiB chunk-size line, 16 KiB of response trailers) stay reachable; a PROXY header is at
# most 1 KiB as sluice reads it.
declare -A max_len=(
  [request_head]=12288
  [chunked]=17408
  [request_chunked]=12288
  [response_head]=12288
  [proxy_header]=1100
  [config]=8192
)
declare -A dict=(
  [request_head]=http
  [chunked]=chunked
  [request_chunked]=chunked
  [response_head]=http
  [proxy_header]=proxy
  [config]=config
)

if ! rustup run "$toolchain" rustc --version >/dev/null 2>&1; then
  rustup toolchain install "$toolchain" --profile minimal
fi
if ! cargo +"$toolchain" fuzz --version 2>/dev/null | grep -q "$cargo_fuzz_version"; then
  cargo install cargo-fuzz --locked --version "$cargo_fuzz_version"
fi

# The same flags for build and run, so `run` does not rebuild.
build_flags=(--release --debug-assertions --codegen-units 16)

echo "== fuzz: build (cargo +$toolchain fuzz build)"
cargo +"$toolchain" fuzz build "${build_flags[@]}"

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo +"$toolchain" fuzz list)
fi

failed=()
for t in "${targets[@]}"; do
  echo "== fuzz: $t for ${seconds}s"
  mkdir -p "fuzz/target/corpus/$t" "fuzz/artifacts/$t"
  flags=(
    -max_total_time="$seconds"
    -rss_limit_mb="$rss_mb"
    -max_len="${max_len[$t]:-4096}"
    -timeout=10
    -seed="$seed"
    -print_final_stats=1
  )
  if [ -n "${dict[$t]:-}" ]; then
    flags+=(-dict="fuzz/dict/${dict[$t]}.dict")
  fi
  # New inputs go to the first directory; the committed seeds are only read.
  if ! cargo +"$toolchain" fuzz run "${build_flags[@]}" "$t" \
    "fuzz/target/corpus/$t" "fuzz/corpus/$t" -- "${flags[@]}"; then
    failed+=("$t")
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "== fuzz: FAILED: ${failed[*]}"
  echo "replay: cargo +$toolchain fuzz run ${build_flags[*]} TARGET fuzz/artifacts/TARGET/<file>"
  exit 1
fi
echo "== fuzz: ${#targets[@]} targets, ${seconds}s each, no crash"
