#!/usr/bin/env bash
# Many children at once against one parent (issue 6, defect 13), all on 127.0.0.1, in one run:
#   A. N updhub children (benches/children.rs, in one process, default configuration) each
#      run one full sync from the parent at the same moment: all must succeed and end at the
#      same root; the parent's peak memory (VmHWM, reset before the round) is recorded.
#   B. the same N clients as curl processes (4 transfers each, as upstream.parallel = 4)
#      fetching every blob from the same parent: the server alone.
#   C. the same curl clients against nginx serving the parent's store (mutual TLS, same cert).
# Everything lives under $UPDHUB_BENCH_DIR (default /tmp/updhub-children); children's data on
# /dev/shm so the disk is not what is measured. Figures and reading: benches/README.md.
#
# Knobs: N=200 RUNS=3 SIZE_MIB=10 (zone size), UPDHUB_BIN, CHILDREN_BIN.
# Needs: cargo, python3 with blake3, nginx, curl (apt-get install -y nginx-light curl).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=${UPDHUB_BENCH_DIR:-/tmp/updhub-children}
N=${N:-200}
RUNS=${RUNS:-3}
SIZE_MIB=${SIZE_MIB:-10}
PAR=4
ZONE=$BENCH/zone
PARENT=$BENCH/parent
KEYS=$BENCH/keys
CLIENT=$BENCH/curl-client
NGINX=$BENCH/nginx
LOGS=$BENCH/logs
WORK=$BENCH/work
SHM=/dev/shm/updhub-children
STAMP=$(date +%Y%m%d-%H%M%S)
RESULTS=$BENCH/results/children-$STAMP.tsv

say() { printf '%s\n' "$*" >&2; }
die() { say "children.sh: $*"; exit 2; }
for tool in python3 nginx curl; do
    command -v "$tool" >/dev/null || die "$tool is missing: apt-get install -y nginx-light curl"
done
python3 -c 'import blake3' 2>/dev/null || die "pip install blake3 (scripts/make-zone.py needs it)"
mkdir -p "$BENCH/bin" "$BENCH/results" "$LOGS" "$WORK" "$NGINX/tmp"

PARENT_PID=
NGINX_PID=
cleanup() {
    local pid
    for pid in $PARENT_PID $NGINX_PID; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in $PARENT_PID $NGINX_PID; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$SHM"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
PARENT_PORT=$(free_port)
NGINX_PORT=$(free_port)

if [[ -z ${UPDHUB_BIN:-} || -z ${CHILDREN_BIN:-} ]]; then
    say "building updhub and the children bench (release)"
    (cd "$REPO" && cargo build --release --quiet)
    CHILDREN_BIN=$(cd "$REPO" && cargo bench --bench children --no-run 2>&1 |
        sed -n 's/.*Executable .*(\(.*\)).*/\1/p' | tail -1)
    [[ -x $CHILDREN_BIN ]] || die "could not build benches/children.rs"
    cp "$REPO/target/release/updhub" "$BENCH/bin/updhub"
    cp "$CHILDREN_BIN" "$BENCH/bin/children"
    UPDHUB_BIN=$BENCH/bin/updhub
    CHILDREN_BIN=$BENCH/bin/children
fi
UPD=$UPDHUB_BIN
COMMIT=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
if ! git -C "$REPO" diff --quiet HEAD -- src Cargo.toml 2>/dev/null; then COMMIT="$COMMIT+dirty"; fi

ZONE_CMD=(python3 "$REPO/scripts/make-zone.py" --out "$ZONE" --force --bare --quiet --seed 1
    --size-mib "$SIZE_MIB" --min-file 1KiB --max-file 4MiB --products 4 --revisions 1 --current 1)
if [[ ! -f $ZONE/zone.json || "$(cat "$BENCH/zone.cmd" 2>/dev/null)" != "${ZONE_CMD[*]}" ]]; then
    say "generating the zone: ${ZONE_CMD[*]}"
    "${ZONE_CMD[@]}"
    printf '%s' "${ZONE_CMD[*]}" >"$BENCH/zone.cmd"
fi

rm -rf "$PARENT" "$KEYS" "$CLIENT"
"$UPD" --data "$PARENT" init --zone "$ZONE" --id bench-parent >/dev/null
"$UPD" --data "$PARENT" mirror >"$LOGS/mirror.out"
"$UPD" --data "$PARENT" publish >"$LOGS/publish.out"
"$UPD" --data "$PARENT" keys export --to "$KEYS" >/dev/null
"$UPD" --data "$CLIENT" init --keys-from "$KEYS" --id bench-curl >/dev/null
CERT=(--cert "$CLIENT/keys/node.crt" --key "$CLIENT/keys/node.key" --cacert "$CLIENT/keys/ca.crt")
ls "$PARENT/store/blobs" >/dev/null
# Every blob of the store except manifests: what a child fetches (the manifest is one more).
find "$PARENT/store/blobs" -type f -printf '%f %s\n' | sort >"$WORK/blobs.all"

"$UPD" --data "$PARENT" serve --listen "127.0.0.1:$PARENT_PORT" >"$LOGS/parent.log" 2>&1 &
PARENT_PID=$!
NGINX_USER=""
if [[ $(id -u) == 0 ]]; then NGINX_USER="user root;"; fi
cat >"$NGINX/nginx.conf" <<EOF
# written by benches/children.sh
$NGINX_USER
worker_processes 2;
daemon off;
pid $NGINX/nginx.pid;
error_log $NGINX/error.log warn;
events { worker_connections 2048; }
http {
    access_log off;
    client_body_temp_path $NGINX/tmp;
    proxy_temp_path $NGINX/tmp;
    fastcgi_temp_path $NGINX/tmp;
    uwsgi_temp_path $NGINX/tmp;
    scgi_temp_path $NGINX/tmp;
    keepalive_requests 10000;
    output_buffers 2 256k;
    server {
        listen 127.0.0.1:$NGINX_PORT ssl backlog=4096;
        ssl_protocols TLSv1.3;
        ssl_certificate $PARENT/keys/server.crt;
        ssl_certificate_key $PARENT/keys/server.key;
        ssl_client_certificate $PARENT/keys/ca.crt;
        ssl_verify_client on;
        location ~ "^/v1/blobs/(([0-9a-f]{2})[0-9a-f]{62})\$" {
            default_type application/zstd;
            alias $PARENT/store/blobs/\$2/\$1;
        }
    }
}
EOF
nginx -c "$NGINX/nginx.conf" -e "$NGINX/error.log" >"$LOGS/nginx.log" 2>&1 &
NGINX_PID=$!
wait_up() {
    for _ in $(seq 100); do
        if curl -sf -o /dev/null "${CERT[@]}" "$1"; then return 0; fi
        sleep 0.2
    done
    die "no answer from $1"
}
FIRST=$(head -1 "$WORK/blobs.all" | cut -d' ' -f1)
wait_up "https://127.0.0.1:$PARENT_PORT/v1/published"
wait_up "https://127.0.0.1:$NGINX_PORT/v1/blobs/$FIRST"
STORED=$(awk '{s += $2} END {print s}' "$WORK/blobs.all")
BLOBS=$(wc -l <"$WORK/blobs.all")
say "zone: $BLOBS stored blobs (manifest included), $STORED bytes; N=$N, RUNS=$RUNS"

hwm_reset() { echo 5 >"/proc/$1/clear_refs"; }
hwm_kib() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }
nginx_hwm_kib() { # the largest worker
    local m=0 p v
    for p in $(pgrep -P "$NGINX_PID"); do
        v=$(awk '/VmHWM/ {print $2}' "/proc/$p/status")
        ((v > m)) && m=$v
    done
    echo "$m"
}
printf 'what\tround\twall_s\tok\tfailed\tbytes\tserver_peak_kib\troots\tfirst_error\n' >"$RESULTS"
printf 'note\t%s\n' "$(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), updhub $COMMIT, N=$N, zone $SIZE_MIB MiB: $BLOBS blobs $STORED stored bytes" >>"$RESULTS"

# One curl client: every blob, 4 transfers at once (one connection each, reused), retrying
# what the server refuses or drops (as the children do on their own).
curl_clients() { # PORT -> prints "ok failed bytes"
    sed "s|^\([^ ]*\) .*|url = \"https://127.0.0.1:$1/v1/blobs/\1\"\noutput = /dev/null|" \
        "$WORK/blobs.all" >"$WORK/curl-$1.cfg"
    local i
    for i in $(seq "$N"); do
        curl -sS --fail --parallel --parallel-max "$PAR" "${CERT[@]}" --retry 30 \
            --retry-all-errors --retry-delay 1 -K "$WORK/curl-$1.cfg" \
            -w '%{size_download}\n' >"$WORK/curl-$i.out" 2>"$WORK/curl-$i.err" &
    done
    wait
    # A client succeeded when it received every stored byte (curl's exit status also counts
    # attempts it retried).
    local ok=0 failed=0 got
    for i in $(seq "$N"); do
        got=$(awk '{s += $1} END {print s + 0}' "$WORK/curl-$i.out")
        if [[ $got == "$STORED" ]]; then ok=$((ok + 1)); else failed=$((failed + 1)); fi
    done
    echo "$ok $failed $(cat "$WORK"/curl-*.out | awk '{s += $1} END {print s}')"
    rm -f "$WORK"/curl-*.out "$WORK"/curl-*.err
}

for round in $(seq "$RUNS"); do
    say "round $round: $N updhub children"
    rm -rf "$SHM" && mkdir -p "$SHM"
    hwm_reset "$PARENT_PID"
    t0=$(date +%s.%N)
    line=$("$CHILDREN_BIN" "https://127.0.0.1:$PARENT_PORT/" "$KEYS" "$N" "$SHM")
    IFS=$'\t' read -r ok failed wall bytes roots err <<<"$line"
    printf 'updhub-children\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$wall" "$ok" "$failed" \
        "$bytes" "$(hwm_kib "$PARENT_PID")" "$roots" "$err" >>"$RESULTS"
    rm -rf "$SHM"

    for server in updhub nginx; do
        say "round $round: $N curl clients against $server"
        if [[ $server == updhub ]]; then port=$PARENT_PORT; hwm_reset "$PARENT_PID"; else port=$NGINX_PORT; for p in $(pgrep -P "$NGINX_PID"); do hwm_reset "$p"; done; fi
        t0=$(date +%s.%N)
        read -r ok failed bytes <<<"$(curl_clients "$port")"
        wall=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.2f", b - a}')
        if [[ $server == updhub ]]; then peak=$(hwm_kib "$PARENT_PID"); else peak=$(nginx_hwm_kib); fi
        printf 'curl-%s\t%s\t%s\t%s\t%s\t%s\t%s\t-\t-\n' "$server" "$round" "$wall" "$ok" "$failed" \
            "$bytes" "$peak" >>"$RESULTS"
    done
done
say "results: $RESULTS"
column -t -s $'\t' "$RESULTS" >&2
