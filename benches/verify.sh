#!/usr/bin/env bash
# `updhub verify` against stock tools doing the same work (issue 9's benchmark): every stored
# blob decompressed and hashed with BLAKE3 - `zstd -dc BLOB | b3sum` for every blob, as many
# at once as there are cores - over the 1.1 GiB benchmark zone's store. Goal: verify takes at
# most 0.5x the stock tools' time. Figures and their reading: benches/README.md.
#
# Usage: benches/verify.sh          (a few minutes; the zone and store are kept for reruns)
# Knobs (environment):
#   RUNS=5            counted runs of each command (farm-bench pairs them A B A B ...)
#   SIZE_MIB=1100     zone size given to scripts/make-zone.py
#   UPDHUB_BIN=path   use this binary instead of building one (--release)
#   UPDHUB_BENCH_DIR  where the zone and the store live (default /tmp/updhub-bench)
# Needs: cargo, python3 with `blake3`, zstd, b3sum, farm-bench (the tool library).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=${UPDHUB_BENCH_DIR:-/tmp/updhub-bench}
RUNS=${RUNS:-5}
SIZE_MIB=${SIZE_MIB:-1100}
NODE=$BENCH/verify-node
CORES=$(nproc)

die() { printf 'verify.sh: %s\n' "$*" >&2; exit 2; }
for tool in python3 zstd b3sum farm-bench; do
    command -v "$tool" >/dev/null || die "$tool is missing (apt-get install -y zstd b3sum; farm-bench is in /work/.library)"
done

# shellcheck source=benches/bench-zone.sh
source "$REPO/benches/bench-zone.sh"
bench_binary
bench_zone "$NODE"
# A node that mirrored it.
if [[ ! -f $NODE/updhub.toml ]]; then
    "$UPD" --data "$NODE" init --zone "$ZONE" --id verify-bench >/dev/null
    "$UPD" --data "$NODE" mirror >/dev/null
fi
BLOBS=$(find "$NODE/store/blobs" -type f | wc -l)
BYTES=$(du -sb "$NODE/store/blobs" | cut -f1)
printf 'store: %s blobs, %s stored bytes; %s cores\n' "$BLOBS" "$BYTES" "$CORES"

# Both read the store from the page cache (the machine has the memory): a warm-up run each.
farm-bench -n "$RUNS" --warmup 1 --timeout 1800 \
    --vs "sh -c 'find $NODE/store/blobs -type f -print0 | xargs -0 -P $CORES -n 1 sh -c \"zstd -dc \\\"\\\$0\\\" | b3sum --no-names >/dev/null\"'" \
    -- "$UPD" --data "$NODE" verify
