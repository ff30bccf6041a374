# Sourced by verify.sh and mirror_idle.sh (e2e.sh makes the same zone with its own
# messages): the updhub binary and the 1.1 GiB benchmark zone they share.
# Needs REPO, BENCH and SIZE_MIB; sets UPD and ZONE.

# UPDHUB_BIN, or a release build of this tree.
bench_binary() {
    UPD=${UPDHUB_BIN:-}
    if [[ -z $UPD ]]; then
        (cd "$REPO" && cargo build --release --quiet)
        UPD=$REPO/target/release/updhub
    fi
}

# The zone (the same command as e2e.sh, so all share it), made again when the command
# changed; the node folders given are then removed, as they mirrored the old one.
bench_zone() {
    ZONE=$BENCH/zone
    local cmd=(python3 "$REPO/scripts/make-zone.py" --out "$ZONE" --force --bare --quiet --seed 1
        --size-mib "$SIZE_MIB" --min-file 1KiB --max-file 64MiB --products 4 --revisions 1
        --current 1)
    if [[ ! -f $ZONE/zone.json || "$(cat "$BENCH/zone.cmd" 2>/dev/null)" != "${cmd[*]}" ]]; then
        mkdir -p "$BENCH"
        "${cmd[@]}"
        printf '%s' "${cmd[*]}" >"$BENCH/zone.cmd"
        rm -rf "$@"
    fi
}
