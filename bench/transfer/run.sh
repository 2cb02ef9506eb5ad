#!/usr/bin/env bash
# Ferry transfer tasks against cp, GridFTP and rclone on three datasets, in one run, on loopback.
# See bench/transfer/README.md, or run with --help.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: bench/transfer/run.sh [OPTIONS]

Copies the same three datasets with every tool, rounds interleaved, on this machine:
  big    one 2 GiB file
  mid    1,000 files of 1 MiB
  small  10,000 files of 4 KiB in 100 folders
Tools: cp -r (the local limit); GridFTP (globus-gridftp-server + globus-url-copy on 127.0.0.1) with its
default flags and with its best parallelism/pipelining flags; rclone copy (local to local); and a Ferry
transfer task between two collections of one server, with checksum verification on and off (timed from
`ferry transfer` to the end of `ferry task wait`, as a user sees it). Every destination is verified
(file count, bytes, BLAKE3 of every file against the source's). Prints median seconds, MB/s, files/s and
ratios per dataset, the Ferry server's peak memory (VmHWM), and the goals of issue 5 as PASS/MISS.

Options:
  --rounds N          rounds; the table shows medians [default: 3]
  --datasets LIST     comma-separated subset of big,mid,small [default: all]
  --tools LIST        comma-separated subset of cp,gridftp,rclone,ferry [default: all]
  --quick             small datasets (256 MiB; 200 x 1 MiB; 2,000 x 4 KiB in 20 folders), 1 round
  --workdir DIR       where data and servers live; must not exist; removed at the end unless --keep
                      [default: a new folder under $TMPDIR or /tmp]
  --ferry PATH        the ferry binary [default: <repo>/target/release/ferry, built when missing]
  --port-base N       ports N (Ferry) and N+1 (GridFTP) on 127.0.0.1 [default: 18780]
  --keep              keep the work folder
  -h, --help          this help

Needs (Debian): globus-gridftp-server-progs globus-gass-copy-progs rclone b3sum jq curl python3.
Run as root or as the owner of the work folder; GridFTP runs anonymously as `nobody` when root.
EOF
}

rounds=3
datasets=big,mid,small
tools=cp,gridftp,rclone,ferry
quick=0
workdir=
ferry_bin=
port_base=18780
keep=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --rounds) rounds=$2; shift 2 ;;
        --datasets) datasets=$2; shift 2 ;;
        --tools) tools=$2; shift 2 ;;
        --quick) quick=1; rounds=1; shift ;;
        --workdir) workdir=$2; shift 2 ;;
        --ferry) ferry_bin=$2; shift 2 ;;
        --port-base) port_base=$2; shift 2 ;;
        --keep) keep=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
    esac
done

die() { echo "error: $*" >&2; exit 1; }
note() { echo "== $*" >&2; }
has() { [[ ",$2," == *",$1,"* ]]; }

need() { command -v "$1" >/dev/null || die "$1 is missing (Debian package: $2)"; }
need b3sum b3sum
need jq jq
need python3 python3
has gridftp "$tools" && { need globus-gridftp-server globus-gridftp-server-progs; need globus-url-copy globus-gass-copy-progs; }
has rclone "$tools" && need rclone rclone

repo=$(cd "$(dirname "$0")/../.." && pwd)
if has ferry "$tools"; then
    if [[ -z $ferry_bin ]]; then
        ferry_bin=$repo/target/release/ferry
        if [[ ! -x $ferry_bin ]]; then
            note "building ferry (cargo build --release -p ferry-cli)"
            (cd "$repo" && cargo build --release -p ferry-cli) >&2
        fi
    fi
    [[ -x $ferry_bin ]] || die "no ferry binary at $ferry_bin"
fi

if [[ -z $workdir ]]; then
    workdir=$(mktemp -d "${TMPDIR:-/tmp}/ferry-transfer-bench.XXXXXX")
else
    [[ -e $workdir ]] && die "$workdir exists; name a new folder"
    mkdir -p "$workdir"
fi
workdir=$(cd "$workdir" && pwd)
root=$workdir/root          # Ferry's storage root: src/ and dst/ below it
src=$root/src
dst=$root/dst
mkdir -p "$src" "$dst" "$workdir/logs"
chmod 755 "$workdir" "$root"
chmod 777 "$dst"            # GridFTP writes as nobody

ferry_pid=
gridftp_pid=
cleanup() {
    local status=$?
    # Nothing here may stop the clean-up: a killed server's wait status is not an error.
    set +e
    [[ -n $ferry_pid ]] && { kill "$ferry_pid"; wait "$ferry_pid"; } 2>/dev/null
    [[ -n $gridftp_pid ]] && { kill "$gridftp_pid"; wait "$gridftp_pid"; } 2>/dev/null
    if [[ $keep -eq 0 ]]; then rm -rf "$workdir"; else note "kept $workdir"; fi
    exit "$status"
}
trap cleanup EXIT

# ---- datasets ------------------------------------------------------------------------------------------
if [[ $quick -eq 1 ]]; then big_mib=256; mid_n=200; small_dirs=20; else big_mib=2048; mid_n=1000; small_dirs=100; fi
# Room for the source and, per tool, its latest copy of each dataset (kept until that tool's next copy).
need_mib=0
has big "$datasets" && need_mib=$((need_mib + big_mib * 7))
has mid "$datasets" && need_mib=$((need_mib + mid_n * 7))
has small "$datasets" && need_mib=$((need_mib + small_dirs * 100 * 7 * 8 / 1024))
free_mib=$(df -Pm "$workdir" | awk 'NR == 2 {print $4}')
(( free_mib >= need_mib + 1024 )) \
    || die "$workdir has $free_mib MiB free; this run needs about $((need_mib + 1024)) MiB"
note "creating the datasets in $src"
python3 - "$src" "$datasets" "$big_mib" "$mid_n" "$small_dirs" <<'EOF'
import os, sys
src, wanted, big_mib, mid_n, small_dirs = sys.argv[1], sys.argv[2].split(","), *map(int, sys.argv[3:])
if "big" in wanted:
    os.makedirs(f"{src}/big")
    with open(f"{src}/big/big.bin", "wb") as f:
        for _ in range(big_mib):
            f.write(os.urandom(1 << 20))
if "mid" in wanted:
    os.makedirs(f"{src}/mid")
    for i in range(mid_n):
        with open(f"{src}/mid/f{i:05}", "wb") as f:
            f.write(os.urandom(1 << 20))
if "small" in wanted:
    for d in range(small_dirs):
        os.makedirs(f"{src}/small/d{d:03}")
        for i in range(100):
            with open(f"{src}/small/d{d:03}/f{i:03}", "wb") as f:
                f.write(os.urandom(4096))
EOF
chmod -R a+rX "$src"

manifest() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 -r b3sum) ; }
declare -A want_manifest want_files want_bytes
for ds in ${datasets//,/ }; do
    want_manifest[$ds]=$(manifest "$src/$ds" | b3sum | cut -c1-64)
    want_files[$ds]=$(find "$src/$ds" -type f | wc -l)
    want_bytes[$ds]=$(find "$src/$ds" -type f -printf '%s\n' | awk '{s+=$1} END {printf "%d\n", s}')
done

# ---- servers -------------------------------------------------------------------------------------------
wait_port() {
    for _ in $(seq 1 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}

ferry_port=$port_base
gridftp_port=$((port_base + 1))
F=()
if has ferry "$tools"; then
    note "starting ferry on 127.0.0.1:$ferry_port"
    "$ferry_bin" serve --data-dir "$workdir/ferry-data" --listen "127.0.0.1:$ferry_port" \
        --storage-root "$root" > "$workdir/logs/ferry.log" 2>&1 &
    ferry_pid=$!
    wait_port "$ferry_port" || die "ferry did not start (see $workdir/logs/ferry.log)"
    for _ in $(seq 1 200); do [[ -s $workdir/ferry-data/admin-credentials.json ]] && break; sleep 0.05; done
    export FERRY_URL=http://127.0.0.1:$ferry_port
    F=("$ferry_bin" --data-dir "$workdir/ferry-data")
    gw=$("${F[@]}" storage-gateway list --format json | jq -r '.[0].id')
    src_coll=$("${F[@]}" collection create "$gw" /src "bench source" --format json | jq -r '.id')
    dst_coll=$("${F[@]}" collection create "$gw" /dst "bench destination" --format json | jq -r '.id')
    [[ $src_coll =~ ^[0-9a-f-]{36}$ && $dst_coll =~ ^[0-9a-f-]{36}$ ]] || die "could not create the two collections"
fi
if has gridftp "$tools"; then
    note "starting globus-gridftp-server on 127.0.0.1:$gridftp_port"
    args=(-aa -p "$gridftp_port" -control-interface 127.0.0.1 -data-interface 127.0.0.1 -rp "R$root"
          -d error,warn -l "$workdir/logs/gridftp.log")
    [[ $(id -u) -eq 0 ]] && args+=(-anonymous-user nobody)
    globus-gridftp-server "${args[@]}" > "$workdir/logs/gridftp.out" 2>&1 &
    gridftp_pid=$!
    wait_port "$gridftp_port" || die "globus-gridftp-server did not start"
fi

# ---- one timed copy --------------------------------------------------------------------------------------
results=$workdir/results.tsv
: > "$results"
declare -A last_dst

warm() { tar cf - -C "$src" "$1" | cat > /dev/null; }

# copy TOOL DATASET ROUND: times one copy into a fresh destination, verifies it, records a line.
copy() {
    local tool=$1 ds=$2 round=$3 out rel t0 t1 status=0 task
    out=$dst/$tool-$ds-$round
    [[ -n ${last_dst[$tool$ds]:-} ]] && rm -rf "${last_dst[$tool$ds]}"
    last_dst[$tool$ds]=$out
    mkdir -p "$out" && chmod 777 "$out"
    warm "$ds"
    sync
    rel=${out#"$dst"}
    t0=$(date +%s%N)
    case "$tool" in
        cp) cp -r "$src/$ds/." "$out/" || status=$? ;;
        gridftp-default|gridftp-best)
            local flags=(-cd)
            if [[ $tool == gridftp-best ]]; then
                case "$ds" in big) flags+=(-p 4) ;; mid) flags+=(-pp -cc 4) ;; small) flags+=(-fast -pp -cc 4) ;; esac
            fi
            if [[ $ds == big ]]; then
                globus-url-copy "${flags[@]}" "ftp://127.0.0.1:$gridftp_port$src/big/big.bin" "file://$out/big.bin" \
                    >> "$workdir/logs/guc.log" 2>&1 || status=$?
            else
                globus-url-copy "${flags[@]}" -r "ftp://127.0.0.1:$gridftp_port$src/$ds/" "file://$out/" \
                    >> "$workdir/logs/guc.log" 2>&1 || status=$?
            fi ;;
        rclone) rclone copy --transfers 8 "$src/$ds" "$out" >> "$workdir/logs/rclone.log" 2>&1 || status=$? ;;
        ferry-verify|ferry-noverify)
            local v=(); [[ $tool == ferry-noverify ]] && v=(--no-verify)
            if [[ $ds == big ]]; then
                task=$("${F[@]}" transfer "$src_coll:/big/big.bin" "$dst_coll:$rel/big.bin" "${v[@]}" \
                    --label "bench $tool $ds $round" --format json | jq -r .task_id)
            else
                task=$("${F[@]}" transfer "$src_coll:/$ds/" "$dst_coll:$rel/" --recursive "${v[@]}" \
                    --label "bench $tool $ds $round" --format json | jq -r .task_id)
            fi
            "${F[@]}" task wait "$task" --interval 0.2 > /dev/null || status=$? ;;
    esac
    t1=$(date +%s%N)
    [[ $status -eq 0 ]] || die "$tool failed on $ds (exit $status); logs in $workdir/logs (use --keep)"
    local files bytes sum
    files=$(find "$out" -type f | wc -l)
    bytes=$(find "$out" -type f -printf '%s\n' | awk '{s+=$1} END {printf "%d\n", s}')
    sum=$(manifest "$out" | b3sum | cut -c1-64)
    [[ $files -eq ${want_files[$ds]} && $bytes -eq ${want_bytes[$ds]} && $sum == "${want_manifest[$ds]}" ]] \
        || die "$tool on $ds: the destination differs from the source ($files files, $bytes bytes)"
    printf '%s\t%s\t%s\t%s\n' "$ds" "$tool" "$round" "$(( (t1 - t0) / 1000 ))" >> "$results"
    note "$(printf '%-6s %-15s round %s: %6.3f s' "$ds" "$tool" "$round" "$(awk -v u=$(( (t1 - t0) / 1000 )) 'BEGIN {print u / 1e6}')")"
}

order=()
has gridftp "$tools" && order+=(gridftp-default)
has cp "$tools" && order+=(cp)
has ferry "$tools" && order+=(ferry-verify)
has rclone "$tools" && order+=(rclone)
has gridftp "$tools" && order+=(gridftp-best)
has ferry "$tools" && order+=(ferry-noverify)

for round in $(seq 1 "$rounds"); do
    for ds in ${datasets//,/ }; do
        for tool in "${order[@]}"; do
            copy "$tool" "$ds" "$round"
        done
    done
done

# ---- the table -------------------------------------------------------------------------------------------
ferry_hwm=
[[ -n $ferry_pid ]] && ferry_hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$ferry_pid/status")
python3 - "$results" "${ferry_hwm:-0}" <<EOF
import statistics, sys
from collections import defaultdict
rows = defaultdict(list)
for line in open(sys.argv[1]):
    ds, tool, _, micros = line.split("\t")
    rows[(ds, tool)].append(int(micros) / 1e6)
files = {"big": 1, "mid": ${want_files[mid]:-0}, "small": ${want_files[small]:-0}}
size = {"big": ${want_bytes[big]:-0}, "mid": ${want_bytes[mid]:-0}, "small": ${want_bytes[small]:-0}}
order = ["cp", "gridftp-default", "gridftp-best", "rclone", "ferry-verify", "ferry-noverify"]
med = {k: statistics.median(v) for k, v in rows.items()}
print(f"{'dataset':7} {'tool':16} {'median s':>9} {'MB/s':>8} {'files/s':>9} {'x cp':>6} {'x gridftp':>9} {'x rclone':>8}")
for ds in ["big", "mid", "small"]:
    for tool in order:
        if (ds, tool) not in med:
            continue
        s = med[(ds, tool)]
        ratio = lambda other: f"{med[(ds, other)] / s:.2f}" if (ds, other) in med else "-"
        print(f"{ds:7} {tool:16} {s:9.3f} {size[ds] / s / 1e6:8.0f} {files[ds] / s:9.0f} "
              f"{ratio('cp'):>6} {ratio('gridftp-best'):>9} {ratio('rclone'):>8}")
hwm = int(sys.argv[2])
if hwm:
    print(f"ferry server peak RSS (VmHWM): {hwm / 1024:.1f} MiB")
def goal(ok, text):
    print(("PASS " if ok else "MISS ") + text)
if any(t == "ferry-verify" for _, t in med) and any(t == "gridftp-best" for _, t in med):
    for ds in ["big", "mid", "small"]:
        if (ds, "ferry-verify") in med and (ds, "gridftp-best") in med:
            goal(med[(ds, "ferry-verify")] < med[(ds, "gridftp-best")], f"{ds}: Ferry (verify) ahead of GridFTP best")
    if ("small", "ferry-verify") in med and ("small", "gridftp-best") in med:
        r = med[("small", "gridftp-best")] / med[("small", "ferry-verify")]
        goal(r >= 3, f"small: Ferry files/s {r:.2f}x GridFTP best (goal 3x)")
if ("big", "ferry-verify") in med and ("big", "cp") in med:
    r = med[("big", "cp")] / med[("big", "ferry-verify")]
    goal(r >= 0.5, f"big: Ferry with verification at {r:.2f}x cp's rate (goal 0.5x)")
EOF
