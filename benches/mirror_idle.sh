#!/usr/bin/env bash
# A scheduled mirror round with nothing new (issue 9's benchmark): `updhub update` (one round
# of what `serve` does every upstream.mirror_interval: read the zone, mirror what changed,
# publish) over the 1.1 GiB benchmark zone that the node already mirrored and published.
# Goal: at most 50 ms. The peer, in the same run: `rsync -a` of the zone into an up-to-date
# copy (a classic mirror's "anything new?" pass, which stats every file).
# Figures and their reading: benches/README.md.
#
# Usage: benches/mirror_idle.sh      (a minute once the zone exists; generating it: 2 min)
# Knobs (environment):
#   RUNS=20           counted runs of each command (farm-bench pairs them A B A B ...)
#   SIZE_MIB=1100     zone size given to scripts/make-zone.py
#   UPDHUB_BIN=path   use this binary instead of building one (--release)
#   UPDHUB_BENCH_DIR  where the zone and the node live (default /tmp/updhub-bench)
# Needs: cargo, python3 with `blake3`, rsync, farm-bench (the tool library).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=${UPDHUB_BENCH_DIR:-/tmp/updhub-bench}
RUNS=${RUNS:-20}
SIZE_MIB=${SIZE_MIB:-1100}
NODE=$BENCH/idle-node
COPY=$BENCH/rsync-copy

die() { printf 'mirror_idle.sh: %s\n' "$*" >&2; exit 2; }
for tool in python3 rsync farm-bench; do
    command -v "$tool" >/dev/null || die "$tool is missing (apt-get install -y rsync; farm-bench is in /work/.library)"
done

# shellcheck source=benches/bench-zone.sh
source "$REPO/benches/bench-zone.sh"
bench_binary
bench_zone "$NODE" "$COPY"
if [[ ! -f $NODE/updhub.toml ]]; then
    "$UPD" --data "$NODE" init --zone "$ZONE" --id idle-bench >/dev/null
    "$UPD" --data "$NODE" mirror >/dev/null
    "$UPD" --data "$NODE" publish >/dev/null
fi
[[ -d $COPY ]] || rsync -a "$ZONE/" "$COPY/"
"$UPD" --data "$NODE" update | head -1
printf 'zone: %s files, %s bytes\n' "$(find "$ZONE" -type f | wc -l)" "$(du -sb "$ZONE" | cut -f1)"

farm-bench -n "$RUNS" --warmup 2 \
    --vs "rsync -a $ZONE/ $COPY/" \
    -- "$UPD" --data "$NODE" update
