#!/usr/bin/env bash
# HTTPS-door throughput of Ferry against curl + nginx, one large file, GET and PUT, loopback only.
# See bench/https/README.md, or run with --help.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: bench/https/run.sh [OPTIONS]

Times one large file going through Ferry's HTTPS door (GET = download, PUT = upload) with curl, side by
side with curl against nginx serving/accepting the same file, on 127.0.0.1. Rounds are interleaved
(nginx GET, Ferry GET, nginx PUT, Ferry PUT, then again), every copy is verified, and a table of medians,
rates, Ferry/nginx ratios and the servers' peak memory (VmHWM) is printed at the end.

Options:
  --size SIZE        size of the test file: bytes, or with a K/M/G suffix (powers of 1024) [default: 2G]
  --rounds N         rounds per tool and direction; the table shows the median [default: 3]
  --workdir DIR      where the test file, the servers' folders and the downloads go; it must not exist yet
                     and is deleted at the end unless --keep [default: a new folder under $TMPDIR or /tmp]
  --ferry PATH       the ferry binary [default: <repo>/target/release/ferry, built with
                     `cargo build --release -p ferry-cli` when missing]
  --nginx PATH       the nginx binary [default: nginx from PATH]
  --ferry-port PORT  [default: 18480]
  --nginx-port PORT  [default: 18481]
  --get-to disk|pipe where downloads go: disk writes them to a file (like a real download; on this kind of
                     VM writing 2 GiB to the page cache bounds the rate), pipe streams them into b3sum
                     (no file; shows more of the servers' own cost; needs b3sum) [default: disk]
  --sendfile         serve GET from nginx with `sendfile on` (the stock setting; on a 2-core VM writing the
                     download to disk it measured slower than off, so off, the stronger baseline, is the
                     default)
  --keep             keep the work folder (logs, configs) after the run
  -h, --help         show this help

Needs: bash, curl, jq, nginx with the dav module (Debian: apt-get install nginx), coreutils; b3sum is used
to verify when present, otherwise cmp. Goals checked at the end: Ferry >= 70% of nginx's rate in both
directions and Ferry's peak RSS < 64 MiB.
EOF
}

size_spec=2G
rounds=3
workdir=
ferry_bin=
nginx_bin=
ferry_port=18480
nginx_port=18481
sendfile=off
get_to=disk
keep=0

while [[ $# -gt 0 ]]; do
    case "$1" in
        --size) size_spec=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        --workdir) workdir=$2; shift 2 ;;
        --ferry) ferry_bin=$2; shift 2 ;;
        --nginx) nginx_bin=$2; shift 2 ;;
        --ferry-port) ferry_port=$2; shift 2 ;;
        --nginx-port) nginx_port=$2; shift 2 ;;
        --get-to) get_to=$2; shift 2 ;;
        --sendfile) sendfile=on; shift ;;
        --keep) keep=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
    esac
done

die() { echo "error: $*" >&2; exit 1; }
note() { echo "== $*" >&2; }

# ---- parse and check the options -------------------------------------------------------------------
to_bytes() {
    local s=$1 n unit
    [[ $s =~ ^([0-9]+)([KkMmGg]?)$ ]] || die "bad size: $s"
    n=${BASH_REMATCH[1]}; unit=${BASH_REMATCH[2]}
    case "$unit" in
        K|k) n=$((n * 1024)) ;;
        M|m) n=$((n * 1024 * 1024)) ;;
        G|g) n=$((n * 1024 * 1024 * 1024)) ;;
    esac
    echo "$n"
}
size=$(to_bytes "$size_spec")
[[ $size -gt 0 ]] || die "size must be > 0"
[[ $rounds =~ ^[0-9]+$ && $rounds -ge 1 && $rounds -le 50 ]] || die "rounds must be 1..50"

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
if [[ -z $ferry_bin ]]; then
    ferry_bin=$repo/target/release/ferry
    if [[ ! -x $ferry_bin ]]; then
        note "building ferry (cargo build --release -p ferry-cli)"
        (cd "$repo" && cargo build --release -p ferry-cli) >&2
    fi
fi
[[ -x $ferry_bin ]] || die "no ferry binary at $ferry_bin"
nginx_bin=${nginx_bin:-$(command -v nginx || true)}
[[ -n $nginx_bin && -x $nginx_bin ]] || die "nginx not found (Debian: apt-get install -y nginx)"
"$nginx_bin" -V 2>&1 | grep -q -- '--with-http_dav_module' || die "this nginx lacks the dav module (needed for PUT)"
for tool in curl jq cmp awk; do
    command -v "$tool" >/dev/null || die "$tool is needed"
done
have_b3sum=0
command -v b3sum >/dev/null && have_b3sum=1
case "$get_to" in
    disk) ;;
    pipe) [[ $have_b3sum -eq 1 ]] || die "--get-to pipe needs b3sum (apt-get install b3sum, or cargo install b3sum)" ;;
    *) die "--get-to is disk or pipe" ;;
esac

# ---- work folder, clean-up ----------------------------------------------------------------------------
if [[ -z $workdir ]]; then
    workdir=$(mktemp -d "${TMPDIR:-/tmp}/ferry-https-bench.XXXXXX")
else
    [[ -e $workdir ]] && die "$workdir exists already; give a new folder"
    mkdir -p "$workdir"
fi
workdir=$(cd "$workdir" && pwd)
ferry_pid=
nginx_pid=

cleanup() {
    local rc=$?
    [[ -n $ferry_pid ]] && kill "$ferry_pid" 2>/dev/null && wait "$ferry_pid" 2>/dev/null
    [[ -n $nginx_pid ]] && kill "$nginx_pid" 2>/dev/null && wait "$nginx_pid" 2>/dev/null
    if [[ $keep -eq 1 ]]; then
        # the big files are not worth keeping, the logs are
        rm -f "$workdir"/src/big.bin "$workdir"/nginx-root/*.bin "$workdir"/ferry-root/*.bin "$workdir"/out/*
        echo "kept $workdir (logs and configs)" >&2
    else
        rm -rf "$workdir"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The source, one destination per tool at a time and the servers' temporary copies of an upload.
avail=$(df --output=avail -B1 "$workdir" | tail -1 | tr -d ' ')
[[ $avail -gt $((size * 4)) ]] || die "need about $((size * 4 / 1048576)) MiB free in $workdir, have $((avail / 1048576)) MiB"

mkdir -p "$workdir"/{src,nginx-root,ferry-root,nginx-prefix/logs,nginx-prefix/body,ferry-data,out}

# ---- the test file ------------------------------------------------------------------------------------
note "writing a $size-byte random file"
head -c "$size" /dev/urandom > "$workdir/src/big.bin"
# both servers serve the very same inode, so they read the same page cache
ln "$workdir/src/big.bin" "$workdir/nginx-root/big.bin"
ln "$workdir/src/big.bin" "$workdir/ferry-root/big.bin"

hash_of() {
    if [[ $have_b3sum -eq 1 ]]; then b3sum --no-names "$1"; else echo "-"; fi
}
src_hash=$(hash_of "$workdir/src/big.bin")

# ---- nginx --------------------------------------------------------------------------------------------
user_line=
if [[ $(id -u) -eq 0 ]]; then
    # workers would otherwise run as nobody and could not write the uploads
    user_line="user root root;"
fi
cat > "$workdir/nginx-prefix/nginx.conf" <<EOF
$user_line
daemon off;
master_process on;
worker_processes 1;
pid $workdir/nginx-prefix/nginx.pid;
error_log $workdir/nginx-prefix/logs/error.log warn;
events { worker_connections 64; }
http {
    access_log off;
    sendfile $sendfile;
    tcp_nopush on;
    types { }
    default_type application/octet-stream;
    client_body_temp_path $workdir/nginx-prefix/body;
    server {
        listen 127.0.0.1:$nginx_port;
        root $workdir/nginx-root;
        location / {
            dav_methods PUT;
            create_full_put_path on;
            client_max_body_size 0;
        }
    }
}
EOF

wait_port() {
    local port=$1 i
    for i in $(seq 1 100); do
        curl -s -o /dev/null "http://127.0.0.1:$port/" && return 0
        sleep 0.1
    done
    return 1
}

note "starting nginx on 127.0.0.1:$nginx_port"
"$nginx_bin" -p "$workdir/nginx-prefix" -e "$workdir/nginx-prefix/logs/error.log" \
    -c "$workdir/nginx-prefix/nginx.conf" &
nginx_pid=$!
wait_port "$nginx_port" || die "nginx did not start (see $workdir/nginx-prefix/logs/error.log)"
nginx_worker=$(pgrep -P "$nginx_pid" | head -1)
[[ -n $nginx_worker ]] || die "no nginx worker process"

# ---- Ferry --------------------------------------------------------------------------------------------
note "starting ferry on 127.0.0.1:$ferry_port"
"$ferry_bin" serve --data-dir "$workdir/ferry-data" --listen "127.0.0.1:$ferry_port" \
    --storage-root "$workdir/ferry-root" > "$workdir/ferry.log" 2>&1 &
ferry_pid=$!
wait_port "$ferry_port" || die "ferry did not start (see $workdir/ferry.log)"
for i in $(seq 1 50); do
    [[ -s $workdir/ferry-data/admin-credentials.json ]] && break
    sleep 0.1
done
creds=$workdir/ferry-data/admin-credentials.json
[[ -s $creds ]] || die "no $creds"
ferry_url=$(jq -r .url "$creds")
client_id=$(jq -r .client_id "$creds")
client_secret=$(jq -r .client_secret "$creds")
collection=$(FERRY_URL=$ferry_url "$ferry_bin" collection list --format json --data-dir "$workdir/ferry-data" \
    | jq -r '[.[] | select(.collection_type == "mapped")][0].id')
[[ -n $collection && $collection != null ]] || die "could not find the mapped collection"
ferry_rss_start=$(awk '/^VmRSS/ {print $2}' "/proc/$ferry_pid/status")
scope=https://auth.globus.org/scopes/$collection/https
token_reply=$(curl -sS -u "$client_id:$client_secret" -d grant_type=client_credentials \
    --data-urlencode "scope=$scope" "$ferry_url/v2/oauth2/token")
token=$(jq -r --arg s "$scope" '
    [(select(.scope == $s) | .access_token), (.other_tokens[]? | select(.scope == $s) | .access_token)]
    | map(select(. != null)) | .[0] // empty' <<<"$token_reply")
[[ -n $token ]] || die "no token for $scope: $token_reply"
ferry_hwm_ready=$(awk '/^VmHWM/ {print $2}' "/proc/$ferry_pid/status")

# ---- one timed copy -----------------------------------------------------------------------------------
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
clk_tck=$(getconf CLK_TCK)
results=$workdir/results.tsv
: > "$results"
prev_dest=

# run_one TOOL DIRECTION ROUND
run_one() {
    local tool=$1 dir=$2 round=$3 url auth=() server_pid dest name out t0 t1 secs cpu got
    if [[ $tool == nginx ]]; then
        url=http://127.0.0.1:$nginx_port; server_pid=$nginx_worker
    else
        url=$ferry_url/data/$collection; server_pid=$ferry_pid
        auth=(-H "Authorization: Bearer $token")
    fi
    name=$dir-$tool-$round.bin
    if [[ $dir == GET ]]; then dest=$workdir/out/$name; else dest=$workdir/$tool-root/$name; fi
    # free the last destination only now, so every copy starts from the same state
    [[ -n $prev_dest ]] && rm -f "$prev_dest"
    # and write back what the last copy left dirty, so it does not compete with this one for the disk
    sync -f "$workdir"
    # this VM pages out cold cache: read the source back in right before timing
    cat "$workdir/src/big.bin" > /dev/null
    t0=$(cpu_ticks "$server_pid")
    if [[ $dir == GET && $get_to == pipe ]]; then
        dest=
        got=$(curl -sS --fail-with-body -o - -w '%{stderr}\n%{http_code} %{time_total} %{size_download}\n' \
            "${auth[@]}" "$url/big.bin" 2>"$workdir/curl.err" | b3sum --no-names) \
            || die "$tool $dir failed: $(cat "$workdir/curl.err")"
        out=$(tail -1 "$workdir/curl.err")
    elif [[ $dir == GET ]]; then
        out=$(curl -sS --fail-with-body -o "$dest" -w '%{http_code} %{time_total}' "${auth[@]}" "$url/big.bin")
    else
        out=$(curl -sS --fail-with-body -o "$workdir/put-reply" -w '%{http_code} %{time_total}' "${auth[@]}" \
            -T "$workdir/src/big.bin" "$url/$name")
    fi
    t1=$(cpu_ticks "$server_pid")
    secs=$(awk '{print $2}' <<<"$out")
    cpu=$(awk -v a="$t0" -v b="$t1" -v h="$clk_tck" 'BEGIN {printf "%.2f", (b - a) / h}')
    # verify: size, then content
    if [[ -z $dest ]]; then
        [[ $(awk '{print $3}' <<<"$out") -eq $size ]] || die "$tool $dir: got $out, want $size bytes"
        [[ $got == "$src_hash" ]] || die "$tool $dir: the download differs from the source (BLAKE3)"
    else
        [[ -f $dest ]] || die "$tool $dir: $dest missing (HTTP ${out%% *})"
        got=$(stat -c %s "$dest")
        [[ $got -eq $size ]] || die "$tool $dir: $dest has $got bytes, want $size"
        if [[ $have_b3sum -eq 1 ]]; then
            [[ $(hash_of "$dest") == "$src_hash" ]] || die "$tool $dir: $dest differs from the source (BLAKE3)"
        else
            cmp -s "$dest" "$workdir/src/big.bin" || die "$tool $dir: $dest differs from the source"
        fi
        prev_dest=$dest
    fi
    local label="round $round"
    if [[ $round -eq 0 ]]; then label="warm-up"; else
        printf '%s\t%s\t%s\t%s\t%s\n' "$tool" "$dir" "$round" "$secs" "$cpu" >> "$results"
    fi
    note "$(printf '%-8s %-5s %-3s %7.3f s  %8.1f MB/s  server CPU %5.2f s  verified' \
        "$label" "$tool" "$dir" "$secs" "$(awk -v s="$size" -v t="$secs" 'BEGIN {print s / t / 1e6}')" "$cpu")"
}

note "$rounds rounds of $size bytes, interleaved; verify with $([[ $have_b3sum -eq 1 ]] && echo b3sum || echo cmp)"
# The first large copy after a quiet spell is slow on this VM (the host hands memory back): one untimed
# download from each server first.
run_one nginx GET 0
run_one ferry GET 0
for round in $(seq 1 "$rounds"); do
    run_one nginx GET "$round"
    run_one ferry GET "$round"
    run_one nginx PUT "$round"
    run_one ferry PUT "$round"
done
[[ -n $prev_dest ]] && rm -f "$prev_dest"

hwm_kib() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }
ferry_hwm=$(hwm_kib "$ferry_pid")
nginx_hwm=$(hwm_kib "$nginx_worker")
nginx_master_hwm=$(hwm_kib "$nginx_pid")

# ---- table --------------------------------------------------------------------------------------------
median() { sort -n | awk '{v[NR] = $1} END {if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
col() { awk -F'\t' -v t="$1" -v d="$2" -v c="$3" '$1 == t && $2 == d {print $c}' "$results"; }

echo
echo "file: $size bytes ($(awk -v s="$size" 'BEGIN {printf "%.2f GiB", s / 1073741824}')), $rounds rounds, loopback, nginx sendfile $sendfile, GET to $get_to"
printf '%-6s %-4s %10s %10s %8s %12s %14s %18s\n' tool dir "median s" "MB/s" ratio "server CPU s" "server CPU %" "server peak RSS"
pass=1
for dir in GET PUT; do
    n_s=$(col nginx "$dir" 4 | median)
    f_s=$(col ferry "$dir" 4 | median)
    for tool in nginx ferry; do
        s=$(col "$tool" "$dir" 4 | median)
        c=$(col "$tool" "$dir" 5 | median)
        rate=$(awk -v b="$size" -v t="$s" 'BEGIN {printf "%.0f", b / t / 1e6}')
        if [[ $tool == nginx ]]; then ratio=1.00; hwm=$nginx_hwm; else
            ratio=$(awk -v n="$n_s" -v f="$f_s" 'BEGIN {printf "%.2f", n / f}'); hwm=$ferry_hwm; fi
        printf '%-6s %-4s %10.3f %10s %8s %12.2f %13.0f%% %14.1f MiB\n' "$tool" "$dir" "$s" "$rate" "$ratio" "$c" \
            "$(awk -v c="$c" -v s="$s" 'BEGIN {print 100 * c / s}')" "$(awk -v k="$hwm" 'BEGIN {print k / 1024}')"
    done
    if awk -v n="$n_s" -v f="$f_s" 'BEGIN {exit !(n / f >= 0.70)}'; then
        echo "  goal Ferry >= 70% of nginx ($dir): met"
    else
        echo "  goal Ferry >= 70% of nginx ($dir): NOT met"; pass=0
    fi
done
echo "peak RSS (VmHWM): ferry server $(awk -v k="$ferry_hwm" 'BEGIN {printf "%.1f", k / 1024}') MiB" \
    "(after start $(awk -v k="$ferry_rss_start" 'BEGIN {printf "%.1f", k / 1024}') MiB," \
    "after one token request, before the copies $(awk -v k="$ferry_hwm_ready" 'BEGIN {printf "%.1f", k / 1024}') MiB)," \
    "nginx worker $(awk -v k="$nginx_hwm" 'BEGIN {printf "%.1f", k / 1024}') MiB," \
    "nginx master $(awk -v k="$nginx_master_hwm" 'BEGIN {printf "%.1f", k / 1024}') MiB"
if [[ $ferry_hwm -lt $((64 * 1024)) ]]; then
    echo "  goal Ferry peak RSS < 64 MiB: met"
else
    echo "  goal Ferry peak RSS < 64 MiB: NOT met"; pass=0
fi
echo "per-round results (tool, direction, round, seconds, server CPU seconds): $results$([[ $keep -eq 1 ]] || echo ' (deleted; use --keep)')"
echo
cat "$results"
[[ $pass -eq 1 ]] && echo "all goals met" || echo "some goals not met"
