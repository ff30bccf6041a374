#!/usr/bin/env bash
# End-to-end benchmark of updhub against stock tools, all in one run on 127.0.0.1:
#   1. mirror ingest of a >= 1 GiB zone   vs  zstd -3 (one thread) and b3sum over the same files
#   2. a child's full sync over mutual TLS vs  nginx (same cert, ssl_verify_client on) + curl x N
#   3. peak memory of the child (max RSS) and of the parent (VmHWM) during the syncs
# Everything lives under $UPDHUB_BENCH_DIR (default /tmp/updhub-bench) and is created when
# missing; nothing is written into the repository. Figures and their reading: benches/README.md.
#
# Usage: benches/e2e.sh            (about 3-4 minutes on 2 cores)
# Knobs (environment):
#   RUNS=5             counted rounds of every measurement (after one warm-up round)
#   PARALLEL=4         upstream.parallel of parent and child, and curl's parallel transfers
#   SIZE_MIB=1100      zone size given to scripts/make-zone.py
#   SAMEWORK=1         also time the child's work done by stock tools (curl|tee|zstd -d|b3sum)
#   SWEEP="1 2 4 8"    also time mirror and sync at these upstream.parallel values
#   SWEEP_RUNS=3       rounds per sweep value
#   UPDHUB_BIN=path    use this binary instead of building one
#   PARENT_PORT, NGINX_PORT   ports on 127.0.0.1 (default: free ones)
# Needs: cargo, python3 with `blake3` (pip install blake3), nginx, zstd, b3sum, curl,
# GNU time (apt-get install -y nginx-light zstd b3sum curl time).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=${UPDHUB_BENCH_DIR:-/tmp/updhub-bench}
RUNS=${RUNS:-5}
PARALLEL=${PARALLEL:-4}
SIZE_MIB=${SIZE_MIB:-1100}
SAMEWORK=${SAMEWORK:-1}
SWEEP=${SWEEP:-}
SWEEP_RUNS=${SWEEP_RUNS:-3}
BATCH=8 # URLs per curl process: curl reuses its connection, as our child does

ZONE=$BENCH/zone
PARENT=$BENCH/parent
CHILD=$BENCH/child
KEYS=$BENCH/keys
CLIENT=$BENCH/curl-client
NGINX=$BENCH/nginx
LOGS=$BENCH/logs
WORK=$BENCH/work
STAMP=$(date +%Y%m%d-%H%M%S)
RESULTS=$BENCH/results/e2e-$STAMP.tsv

say() { printf '%s\n' "$*" >&2; }
die() { say "e2e.sh: $*"; exit 2; }

for tool in python3 nginx zstd b3sum curl /usr/bin/time; do
    command -v "$tool" >/dev/null ||
        die "$tool is missing; install it: apt-get install -y nginx-light zstd b3sum curl time"
done
python3 -c 'import blake3' 2>/dev/null ||
    die "the Python package blake3 is missing (scripts/make-zone.py needs it): pip install blake3"

mkdir -p "$BENCH/bin" "$BENCH/results" "$LOGS" "$WORK" "$NGINX/tmp"

# --- servers we start, stopped on any exit --------------------------------------------------
PARENT_PID=
NGINX_PID=
cleanup() {
    local pid
    for pid in $PARENT_PID $NGINX_PID; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in $PARENT_PID $NGINX_PID; do
        wait "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
PARENT_PORT=${PARENT_PORT:-$(free_port)}
NGINX_PORT=${NGINX_PORT:-$(free_port)}

# --- the binary: built once, copied, so a rebuild during the run cannot change it ------------
if [[ -n ${UPDHUB_BIN:-} ]]; then
    if [[ ! "$UPDHUB_BIN" -ef "$BENCH/bin/updhub" ]]; then cp "$UPDHUB_BIN" "$BENCH/bin/updhub"; fi
else
    say "building updhub (cargo build --release)"
    (cd "$REPO" && cargo build --release --quiet)
    cp "$REPO/target/release/updhub" "$BENCH/bin/updhub"
fi
UPD=$BENCH/bin/updhub
COMMIT=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
if ! git -C "$REPO" diff --quiet HEAD -- src Cargo.toml 2>/dev/null; then COMMIT="$COMMIT+dirty"; fi

# --- the zone ---------------------------------------------------------------------------------
ZONE_CMD=(python3 "$REPO/scripts/make-zone.py" --out "$ZONE" --force --bare --quiet --seed 1
    --size-mib "$SIZE_MIB" --min-file 1KiB --max-file 64MiB --products 4 --revisions 1
    --current 1)
if [[ ! -f $ZONE/zone.json || "$(cat "$BENCH/zone.cmd" 2>/dev/null)" != "${ZONE_CMD[*]}" ]]; then
    say "generating the zone: ${ZONE_CMD[*]}"
    "${ZONE_CMD[@]}"
    printf '%s' "${ZONE_CMD[*]}" >"$BENCH/zone.cmd"
fi
# The zone's data files (NUL-separated), the blobs a child fetches, and their totals.
python3 - "$ZONE" "$WORK" <<'EOF'
import json, os, sys
zone, work = sys.argv[1], sys.argv[2]
index = json.load(open(os.path.join(zone, "zone.json")))
files, blobs = [], set()
for p in index["products"]:
    base = os.path.join(zone, p["name"], p["revision"])
    for f in json.load(open(os.path.join(base, "files.json")))["files"]:
        files.append(os.path.join(base, "data", f["path"]))
        blobs.add(f["blake3"])
with open(os.path.join(work, "files.lst"), "wb") as out:
    out.write(b"".join(os.fsencode(f) + b"\0" for f in sorted(files)))
with open(os.path.join(work, "blobs.txt"), "w") as out:
    out.write("".join(b + "\n" for b in sorted(blobs)))
with open(os.path.join(work, "zone.stats"), "w") as out:
    out.write(f"{len(files)} {len(blobs)} {sum(os.path.getsize(f) for f in files)}\n")
EOF
read -r ZONE_FILES ZONE_BLOBS ZONE_BYTES <"$WORK/zone.stats"
say "zone: $ZONE_FILES files, $ZONE_BLOBS distinct blobs, $ZONE_BYTES bytes"

set_parallel() { # DATA N
    sed -i "s/^parallel = .*/parallel = $2/" "$1/updhub.toml"
}

TICK=$(getconf CLK_TCK)
cpu_ticks() { # PID... -> user + system clock ticks used so far
    local t=0 pid
    for pid in "$@"; do # fields 14 and 15 of stat, counted after "pid (comm)"
        t=$((t + $(sed 's/.*) //' "/proc/$pid/stat" | awk '{print $12 + $13}')))
    done
    echo "$t"
}
# One timed command: appends "bench tool round wall user sys maxrss_kb server_cpu" to
# $RESULTS; server_cpu is what the processes in $SERVER_PIDS (the server side) used meanwhile.
SERVER_PIDS=
timed() { # BENCH TOOL ROUND CMD...
    local bench=$1 tool=$2 round=$3
    shift 3
    local out=$WORK/time.out before=0 server=-
    if [[ -n $SERVER_PIDS ]]; then before=$(cpu_ticks $SERVER_PIDS); fi
    /usr/bin/time -f '%e %U %S %M' -o "$out" timeout 900 "$@" \
        >"$LOGS/$bench-$tool.out" 2>"$LOGS/$bench-$tool.err" ||
        die "$bench/$tool failed (round $round): see $LOGS/$bench-$tool.err"
    if [[ -n $SERVER_PIDS ]]; then
        server=$(awk -v t=$(($(cpu_ticks $SERVER_PIDS) - before)) -v hz="$TICK" \
            'BEGIN {printf "%.2f", t / hz}')
    fi
    if [[ $round != warmup ]]; then
        printf '%s\t%s\t%s\t%s\t%s\n' "$bench" "$tool" "$round" "$(tr ' ' '\t' <"$out")" \
            "$server" >>"$RESULTS"
    fi
}
note() { printf 'note\t%s\t%s\n' "$1" "$2" >>"$RESULTS"; }

note machine "$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs), $(free -g | awk '/Mem/{print $2}') GiB"
note load-start "$(cut -d' ' -f1-3 /proc/loadavg)"
note binary "updhub $COMMIT"
note zone "$ZONE_FILES files, $ZONE_BLOBS blobs, $ZONE_BYTES bytes"
note parallel "$PARALLEL"

# --- 1. mirror ingest ---------------------------------------------------------------------
# A new parent every run: a data folder made by another updhub build may hold another schema.
rm -rf "$PARENT"
"$UPD" --data "$PARENT" init --zone "$ZONE" --id bench-parent >/dev/null
set_parallel "$PARENT" "$PARALLEL"

mirror_once() { # ROUND [TOOL]
    rm -rf "$PARENT/store"
    sync # the last run's dirty pages must not be written back during this one
    timed mirror "${2:-updhub}" "$1" "$UPD" --data "$PARENT" mirror
    grep -q "$ZONE_BLOBS new files" "$LOGS/mirror-${2:-updhub}.out" ||
        die "mirror did not ingest every file: $(cat "$LOGS/mirror-${2:-updhub}.out")"
}
zstd_once() {
    timed mirror zstd "$1" sh -c 'xargs -0 -a "$1" zstd -3 -T1 -q -c >/dev/null' sh "$WORK/files.lst"
}
b3sum_once() {
    timed mirror b3sum "$1" sh -c 'xargs -0 -a "$1" b3sum --no-names >/dev/null' sh "$WORK/files.lst"
}
say "mirror ingest: $RUNS rounds of updhub mirror / zstd -3 / b3sum"
for round in warmup $(seq "$RUNS"); do
    mirror_once "$round"
    zstd_once "$round"
    b3sum_once "$round"
done
STORED_LINE=$(cat "$LOGS/mirror-updhub.out")
note mirror-summary "$STORED_LINE"
"$UPD" --data "$PARENT" publish >"$LOGS/publish.out"

# --- 2. child full sync vs nginx -----------------------------------------------------------
rm -rf "$KEYS" "$CLIENT"
"$UPD" --data "$PARENT" keys export --to "$KEYS" >/dev/null
"$UPD" --data "$CLIENT" init --keys-from "$KEYS" --id bench-curl >/dev/null
CERT=(--cert "$CLIENT/keys/node.crt" --key "$CLIENT/keys/node.key" --cacert "$CLIENT/keys/ca.crt")

"$UPD" --data "$PARENT" serve --listen "127.0.0.1:$PARENT_PORT" >"$LOGS/parent.log" 2>&1 &
PARENT_PID=$!

# nginx serves the parent's store as it is: /v1/blobs/<hash> -> store/blobs/<hash[0:2]>/<hash>,
# over TLS 1.3 with the parent's own server certificate, refusing clients the CA did not sign.
# Blobs are written 0600, so as root the workers must run as root to read them.
NGINX_USER=""
if [[ $(id -u) == 0 ]]; then NGINX_USER="user root;"; fi
cat >"$NGINX/nginx.conf" <<EOF
# written by benches/e2e.sh
$NGINX_USER
worker_processes auto;
daemon off;
pid $NGINX/nginx.pid;
error_log $NGINX/error.log warn;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path $NGINX/tmp;
    proxy_temp_path $NGINX/tmp;
    fastcgi_temp_path $NGINX/tmp;
    uwsgi_temp_path $NGINX/tmp;
    scgi_temp_path $NGINX/tmp;
    keepalive_requests 10000;
    # read files in 256 KiB pieces as updhub does (the default, 2 x 32k, is ~7% slower here)
    output_buffers 2 256k;
    server {
        listen 127.0.0.1:$NGINX_PORT ssl;
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

FIRST=$(head -1 "$WORK/blobs.txt")
wait_up() { # URL
    for _ in $(seq 100); do
        if curl -sf -o /dev/null "${CERT[@]}" "$1"; then return 0; fi
        sleep 0.2
    done
    die "no answer from $1; see $LOGS/parent.log and $NGINX/error.log"
}
wait_up "https://127.0.0.1:$PARENT_PORT/v1/published"
wait_up "https://127.0.0.1:$NGINX_PORT/v1/blobs/$FIRST"

sed "s|^|https://127.0.0.1:$NGINX_PORT/v1/blobs/|" "$WORK/blobs.txt" >"$WORK/urls-nginx.txt"
sed "s|^|https://127.0.0.1:$PARENT_PORT/v1/blobs/|" "$WORK/blobs.txt" >"$WORK/urls-updhub.txt"
STORED_BYTES=$(sed "s|^\(..\)|$PARENT/store/blobs/\1/\1|" "$WORK/blobs.txt" | xargs stat -c %s |
    awk '{s += $1} END {print s}')
note stored-bytes "$STORED_BYTES"

# Both servers must send exactly the stored bytes, and nginx must refuse a client without a
# certificate as the parent does.
for server in nginx updhub; do
    got=$(xargs -P "$PARALLEL" -n 1 curl -sS --fail "${CERT[@]}" -o /dev/null \
        -w '%{size_download}\n' <"$WORK/urls-$server.txt" | awk '{s += $1} END {print s}')
    [[ $got == "$STORED_BYTES" ]] || die "$server sent $got bytes, the store holds $STORED_BYTES"
done
code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$CLIENT/keys/ca.crt" \
    "https://127.0.0.1:$NGINX_PORT/v1/blobs/$FIRST" || true)
[[ $code == 400 ]] || die "nginx answered $code to a client without a certificate; expected 400"
note tls "$(curl -sv -o /dev/null "${CERT[@]}" "https://127.0.0.1:$NGINX_PORT/v1/blobs/$FIRST" 2>&1 |
    grep -o 'SSL connection using.*' | head -1) (nginx, curl)"

curl_all() { # ROUND TOOL URLS SERVER_PIDS: every blob, $PARALLEL curls, $BATCH URLs each
    sync # the child's writes must not be flushed during this run
    SERVER_PIDS=$4 timed sync "$2" "$1" sh -c 'xargs -P "$1" -n "$2" sh -c '\''exec curl -sS --fail \
        --cert "$0/node.crt" --key "$0/node.key" --cacert "$0/ca.crt" "$@" >/dev/null'\'' "$3" <"$4"' \
        sh "$PARALLEL" "$BATCH" "$CLIENT/keys" "$3"
}
samework() { # ROUND: what the child does (keep, decompress, hash each blob), with stock tools
    rm -rf "$WORK/samework" && mkdir -p "$WORK/samework"
    sync
    SERVER_PIDS=$NGINX_WORKERS timed sync samework "$1" sh -c 'cd "$2" && xargs -P "$1" -n 1 sh -c '\''h=${1##*/}
        curl -sS --fail --cert "$0/node.crt" --key "$0/node.key" --cacert "$0/ca.crt" "$1" |
        tee "$h" | zstd -dcq | b3sum --no-names >"$h.b3"'\'' "$3" <"$4"' \
        sh "$PARALLEL" "$WORK/samework" "$CLIENT/keys" "$WORK/urls-nginx.txt"
}
# The parent's peak RSS over the child syncs only: VmHWM is reset before each sync when the
# kernel allows it (clear_refs), else it is the peak since the parent started.
HWM_RESET=0
if echo 5 >"/proc/$PARENT_PID/clear_refs" 2>/dev/null; then HWM_RESET=1; fi
PARENT_HWM=0
child_once() { # ROUND [TOOL]
    rm -rf "$CHILD"
    "$UPD" --data "$CHILD" init --keys-from "$KEYS" --id bench-child >/dev/null
    set_parallel "$CHILD" "$PARALLEL"
    sync
    if ((HWM_RESET)); then echo 5 >"/proc/$PARENT_PID/clear_refs"; fi
    SERVER_PIDS=$PARENT_PID timed sync "${2:-updhub}" "$1" "$UPD" --data "$CHILD" sync --parent "https://127.0.0.1:$PARENT_PORT" --once
    grep -q "fetched $ZONE_BLOBS blobs, $STORED_BYTES bytes" "$LOGS/sync-${2:-updhub}.out" ||
        die "the child did not fetch every blob: $(cat "$LOGS/sync-${2:-updhub}.out")"
    local hwm
    hwm=$(awk '/VmHWM/ {print $2}' "/proc/$PARENT_PID/status")
    if ((hwm > PARENT_HWM)); then PARENT_HWM=$hwm; fi
}
extra=""
if [[ $SAMEWORK == 1 ]]; then extra=" / stock tools doing the same work"; fi
say "child sync: $RUNS rounds of updhub sync / nginx+curl / updhub serve+curl$extra"
NGINX_WORKERS=$(ps -o pid= --ppid "$NGINX_PID" | xargs)
for round in warmup $(seq "$RUNS"); do
    child_once "$round"
    curl_all "$round" nginx "$WORK/urls-nginx.txt" "$NGINX_WORKERS"
    curl_all "$round" updhub-serve "$WORK/urls-updhub.txt" "$PARENT_PID"
    if [[ $SAMEWORK == 1 ]]; then samework "$round"; fi
done
note parent-vmhwm-kb "$PARENT_HWM (reset before each sync: $HWM_RESET)"
nginx_hwm=0
for pid in $NGINX_WORKERS; do
    h=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
    if ((h > nginx_hwm)); then nginx_hwm=$h; fi
done
note nginx-worker-vmhwm-kb "$nginx_hwm"
rm -rf "$WORK/samework"

# --- optional: upstream.parallel sweep ----------------------------------------------------
# The values take turns within each round, so a change in the machine's load hits them alike.
if [[ -n $SWEEP ]]; then say "sweep: upstream.parallel in $SWEEP, $SWEEP_RUNS rounds"; fi
PARALLEL_SAVED=$PARALLEL
for round in $(seq "$SWEEP_RUNS"); do
    for par in $SWEEP; do
        set_parallel "$PARENT" "$par"
        mirror_once "$round" "parallel-$par"
    done
    for par in $SWEEP; do
        PARALLEL=$par
        child_once "$round" "parallel-$par"
    done
done
PARALLEL=$PARALLEL_SAVED
set_parallel "$PARENT" "$PARALLEL"
note load-end "$(cut -d' ' -f1-3 /proc/loadavg)"

# --- the table ---------------------------------------------------------------------------
python3 - "$RESULTS" "$ZONE_BYTES" "$STORED_BYTES" <<'EOF'
import statistics as st, sys
path, zone_bytes, stored = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rows, notes = {}, {}
for line in open(path):
    f = line.rstrip("\n").split("\t")
    if f[0] == "note":
        notes[f[1]] = f[2]
        continue
    bench, tool, rnd, wall, user, sys_, rss, server = f
    server = float(server) if server != "-" else None
    rows.setdefault((bench, tool), {})[rnd] = (float(wall), float(user) + float(sys_), int(rss),
                                               server)

def med(key, i):
    return st.median(v[i] for v in rows[key].values())

def rng(key):
    w = sorted(v[0] for v in rows[key].values())
    return f"{w[0]:.2f}-{w[-1]:.2f}"

def ratio(a, b, i=0):  # median over rounds of a/b, pair by pair (same round)
    both = sorted(set(rows[a]) & set(rows[b]))
    return st.median(rows[a][r][i] / rows[b][r][i] for r in both)

print(f"updhub end-to-end benchmark ({path})")
for k in ("machine", "load-start", "load-end", "binary", "zone", "tls", "parallel"):
    if k in notes:
        print(f"  {k}: {notes[k]}")
n = len(rows[("mirror", "updhub")])
print(f"\n1. mirror ingest ({zone_bytes / 1e6:.0f} MB of content; medians of {n} rounds)")
print(f"  {'':34} {'wall s':>7} {'range':>11} {'cpu s':>6} {'MB/s':>6} {'peak MiB':>8}")
labels = {"updhub": "updhub mirror (default, fsync)", "zstd": "zstd -3 -T1 -c >/dev/null",
          "b3sum": "b3sum (default threads)"}
for tool, label in labels.items():
    k = ("mirror", tool)
    print(f"  {label:34} {med(k, 0):7.2f} {rng(k):>11} {med(k, 1):6.2f} "
          f"{zone_bytes / 1e6 / med(k, 0):6.0f} {med(k, 2) / 1024:8.1f}")
m, z = ("mirror", "updhub"), ("mirror", "zstd")
print(f"  mirror / zstd time: {ratio(m, z):.2f}x wall, {ratio(m, z, 1):.2f}x cpu "
      f"(goal <= 1.2x wall)")
print(f"  {notes.get('mirror-summary', '')}")

n = len(rows[("sync", "updhub")])
print(f"\n2. child full sync ({stored / 1e6:.0f} MB of stored blobs over mutual TLS; "
      f"medians of {n} rounds)")
print(f"  {'':34} {'wall s':>7} {'range':>11} {'cpu s':>6} {'MB/s':>6} {'peak MiB':>8}"
      f" {'server cpu s':>12}")
labels = {"updhub": "updhub sync --once (child)", "nginx": "nginx + curl (discards)",
          "updhub-serve": "updhub serve + curl (discards)",
          "samework": "nginx + curl|tee|zstd -d|b3sum"}
for tool, label in labels.items():
    k = ("sync", tool)
    if k in rows:
        print(f"  {label:34} {med(k, 0):7.2f} {rng(k):>11} {med(k, 1):6.2f} "
              f"{stored / 1e6 / med(k, 0):6.0f} {med(k, 2) / 1024:8.1f} {med(k, 3):12.2f}")
u, x = ("sync", "updhub"), ("sync", "nginx")
print(f"  updhub / nginx throughput: {1 / ratio(u, x):.2f}x (goal >= 1.0x)")
print(f"  cpu s, client + server: updhub {med(u, 1) + med(u, 3):.2f}, "
      f"nginx + curl {med(x, 1) + med(x, 3):.2f}")
print(f"  updhub serve / nginx throughput, same curl client: "
      f"{1 / ratio(('sync', 'updhub-serve'), x):.2f}x")
if ("sync", "samework") in rows:
    print(f"  updhub child / stock tools doing the same work: "
          f"{1 / ratio(u, ('sync', 'samework')):.2f}x throughput")

print("\n3. peak memory during a sync")
print(f"  child max RSS (median): {med(u, 2) / 1024:.1f} MiB")
hwm = notes["parent-vmhwm-kb"].split()
print(f"  parent VmHWM: {int(hwm[0]) / 1024:.1f} MiB {' '.join(hwm[1:])}")
print(f"  nginx worker VmHWM: {int(notes['nginx-worker-vmhwm-kb']) / 1024:.1f} MiB")

sweep = sorted({int(t.split("-")[1]) for (_, t) in rows if t.startswith("parallel-")})
if sweep:
    print("\n4. upstream.parallel sweep (medians)")
    print(f"  {'parallel':>8} {'mirror s':>9} {'sync s':>7} {'sync MB/s':>9} {'child MiB':>9}")
    for p in sweep:
        mk, sk = ("mirror", f"parallel-{p}"), ("sync", f"parallel-{p}")
        print(f"  {p:8} {med(mk, 0):9.2f} {med(sk, 0):7.2f} {stored / 1e6 / med(sk, 0):9.0f} "
              f"{med(sk, 2) / 1024:9.1f}")
EOF
say "raw figures: $RESULTS; logs: $LOGS"
