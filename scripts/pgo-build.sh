#!/usr/bin/env bash
# A profile-guided release build of the gateway, written to target/pgo/portcullis, and of the
# bare hyper proxy the load bench compares it with (examples/bare_proxy.rs), target/pgo/bare_proxy.
#
#   bash scripts/pgo-build.sh
#
# 1. Build with `-Cprofile-generate` (target/pgo-generate).
# 2. Train it: benches/load.sh serves its guest and authenticated loads through the instrumented
#    gateway (an nginx upstream, a form login and wrk, all on 127.0.0.1), and benches/websockets.rs
#    relays WebSocket messages through it; each stops it with SIGTERM so that it writes its
#    profile on the way out. Code the training never runs is optimized as cold. The bare proxy
#    is trained on its own two loads of benches/load.sh; the two profiles are merged into one
#    (a function both binaries share, hyper's, gets both counts).
# 3. Merge the profile with the llvm-profdata of rustc's own LLVM version (Debian's llvm-N,
#    installed if missing): rustc refuses a profile written in another LLVM version's format.
# 4. Build again with `-Cprofile-use` (target/pgo-use) and copy both binaries to target/pgo.
#
# The profile tells LLVM which branches the request path takes, so it lays the hot code out
# together and inlines by measured heat: over a quarter fewer instructions a request and well
# under half the instruction-cache misses on the guest route (callgrind figures in
# docs/performance.md), with the same source. Steps 1 and 4 are full fat-LTO builds: about
# 20 minutes in all on 2 idle cores, more on a busy machine. Training (TRAINING=8s a route) is
# skipped when the profile is newer than the instrumented binary.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
profiles=$root/target/pgo/profiles

llvm_major=$(rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')
profdata=llvm-profdata-$llvm_major
if ! command -v "$profdata" >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "llvm-$llvm_major" >/dev/null
fi

echo "pgo: instrumented build" >&2
RUSTFLAGS="-Cprofile-generate=$profiles" CARGO_TARGET_DIR=target/pgo-generate \
  cargo build --release --locked --quiet --bin portcullis --example bare_proxy
instrumented=$root/target/pgo-generate/release/portcullis
instrumented_bare=$root/target/pgo-generate/release/examples/bare_proxy

merged=$profiles/merged.profdata
if [ ! "$merged" -nt "$instrumented" ] || [ ! "$merged" -nt "$instrumented_bare" ]; then
  echo "pgo: training on the load bench's guest and authenticated routes" >&2
  rm -rf "$profiles/gateway" "$profiles/bare"
  # Build scripts of the step above wrote their own profiles into $profiles, so the gateway's
  # and the bare proxy's go to directories of their own, one file per run.
  gateway_profile="$profiles/gateway/%p.profraw"
  LLVM_PROFILE_FILE=$gateway_profile GATEWAY="$instrumented" PGO=0 \
    TARGETS="portcullis_guest portcullis_auth" ROUNDS=1 DURATION=${TRAINING:-8s} \
    bash benches/load.sh >&2
  echo "pgo: training on the WebSocket bench's relay" >&2
  LLVM_PROFILE_FILE=$gateway_profile GATEWAY="$instrumented" \
    SOCKETS=200 BUILTIN_SOCKETS=200 MESSAGES=300000 ROUNDS=1 \
    cargo bench --locked --quiet --bench websockets >&2
  echo "pgo: training the bare hyper proxy on the same loads" >&2
  LLVM_PROFILE_FILE="$profiles/bare/%p.profraw" BARE="$instrumented_bare" PGO=0 \
    TARGETS="bare_hyper bare_hyper_auth" ROUNDS=1 DURATION=${TRAINING:-8s} \
    bash benches/load.sh >&2
  shopt -s nullglob
  raw=("$profiles"/gateway/*.profraw)
  [ ${#raw[@]} -ge 2 ] || { echo "pgo: expected a profile from each training run, found ${#raw[@]}" >&2; exit 1; }
  raw_bare=("$profiles"/bare/*.profraw)
  [ ${#raw_bare[@]} -ge 2 ] || { echo "pgo: expected a profile from each bare proxy, found ${#raw_bare[@]}" >&2; exit 1; }
  "$profdata" merge -o "$merged.tmp" "${raw[@]}" "${raw_bare[@]}"
  mv "$merged.tmp" "$merged"
fi

echo "pgo: optimized build" >&2
RUSTFLAGS="-Cprofile-use=$merged" CARGO_TARGET_DIR=target/pgo-use \
  cargo build --release --locked --quiet --bin portcullis --example bare_proxy
mkdir -p target/pgo
cp target/pgo-use/release/portcullis target/pgo/portcullis
cp target/pgo-use/release/examples/bare_proxy target/pgo/bare_proxy
echo "pgo: wrote target/pgo/portcullis and target/pgo/bare_proxy" >&2
