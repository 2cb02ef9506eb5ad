"""Site-to-site anchors: copy from site A to site B over links shaped to 1 Gbit/s, every tool in one run.

Sites (network namespaces, sites/kit.py): `a` holds the datasets and serves them (GridFTP, nginx), `b`
receives them (GridFTP), `client` drives GridFTP's third-party copies (its link is not shaped), `hub` is for
Ferry's hub. For each added delay (--delays, one-way ms into A and B: see README) and each dataset (one big
file, many small ones) every tool copies A -> B, the copy is verified at B against the source's BLAKE3
manifest (b3sum), and its time (verification not included) becomes MB/s, % of the link and files/s.

    compat/.venv/bin/python bench/sites/run.py --quick       # 256 MiB and 2,000 x 4 KiB, delays 0 and 20 ms
    compat/.venv/bin/python bench/sites/run.py               # 2 GiB and 10,000 x 4 KiB
    compat/.venv/bin/python bench/sites/run.py --only 'small/rclone' --delays 0 --repeats 3

Needs root (namespaces) and: globus-gridftp-server-progs globus-gass-copy-progs nginx rclone b3sum curl
iproute2 nftables. The Ferry rows run when `ferry serve --role` exists (see FerryRow); until then they are
skipped with the reason.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import typing as t
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "sites"))
import kit  # noqa: E402

TOOLS = {"globus-url-copy": "globus-gass-copy-progs", "globus-gridftp-server": "globus-gridftp-server-progs",
         "nginx": "nginx", "rclone": "rclone", "b3sum": "b3sum", "curl": "curl", "tc": "iproute2",
         "nft": "nftables"}
GRIDFTP_PORT, HTTP_PORT, FERRY_PORT = 2811, 80, 8400


@dataclasses.dataclass
class Dataset:
    name: str
    root: Path  # at A
    files: int
    nbytes: int
    manifest: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Variant:
    """One way to copy a dataset from A to B: `argv(dest)` run in `site` must leave the dataset's files
    (same relative paths) under `dest`, a fresh empty folder at B."""

    name: str
    dataset: str
    site: str
    argv: t.Callable[[Path], list[str | os.PathLike[str]]]
    env: dict[str, str] | None = None


@dataclasses.dataclass
class Result:
    delay: float
    dataset: str
    name: str
    ok: bool
    secs: float
    hub_bytes: int
    note: str = ""


class SkipRow(Exception):
    """A row that cannot run here, with the reason to print."""


# -- datasets and manifests ------------------------------------------------------------------------


def make_datasets(src: Path, big_mb: int, small_files: int, small_kb: int) -> dict[str, Dataset]:
    big, small = src / "big", src / "small"
    big.mkdir(parents=True)
    with open(big / "big.bin", "wb") as f:
        for _ in range(big_mb // 16):
            f.write(os.urandom(16 << 20))
        f.write(os.urandom((big_mb % 16) << 20))
    for i in range(small_files):
        d = small / f"d{i // 100:03}"  # 100 per folder: recursive listing is part of the work
        if i % 100 == 0:
            d.mkdir(parents=True)
        (d / f"f{i:05}.bin").write_bytes(os.urandom(small_kb << 10))
    for p in [src, *src.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)  # the servers read as nobody
    sets = {"big": Dataset("big", big, 1, big_mb << 20),
            "small": Dataset("small", small, small_files, small_files * (small_kb << 10))}
    for ds in sets.values():
        ds.manifest = manifest(ds.root)
    return sets


def manifest(root: Path) -> dict[str, str]:
    """relative path -> BLAKE3 of every file under root (b3sum over batches of files)."""
    paths = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() or p.is_symlink())
    out: dict[str, str] = {}
    for i in range(0, len(paths), 2000):
        batch = paths[i:i + 2000]
        res = subprocess.run(["b3sum", "--", *batch], cwd=root, capture_output=True, text=True, timeout=600)
        if res.returncode != 0:
            raise RuntimeError(f"b3sum failed in {root}: {res.stderr[-2000:]}")
        for line in res.stdout.splitlines():
            digest, _, name = line.partition("  ")
            out[name] = digest
    return out


def compare(want: dict[str, str], got: dict[str, str]) -> str:
    """'' when equal, else what differs."""
    missing = want.keys() - got.keys()
    extra = got.keys() - want.keys()
    wrong = [k for k in want.keys() & got.keys() if want[k] != got[k]]
    if not (missing or extra or wrong):
        return ""
    return f"{len(missing)} missing, {len(extra)} extra, {len(wrong)} corrupted"


# -- servers ---------------------------------------------------------------------------------------


def start_servers(sites: kit.Sites, work: Path, src: Path) -> None:
    logs = work / "logs"
    for site in ("a", "b"):
        addr = sites.addr(site)
        proc = sites.spawn(site, ["globus-gridftp-server", "-aa", "-anonymous-user", "nobody",
                                  "-p", str(GRIDFTP_PORT), "-control-interface", addr, "-data-interface", addr,
                                  "-d", "error,warn", "-l", logs / f"gridftp-{site}.log"],
                           env={**os.environ, "GLOBUS_HOSTNAME": addr}, log=logs / f"gridftp-{site}.out")
        sites.wait_tcp("client", site, GRIDFTP_PORT, proc=proc)
    ngx = work / "nginx"
    (ngx / "tmp").mkdir(parents=True)
    temps = " ".join(f"{k}_temp_path {ngx}/tmp;" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    (ngx / "nginx.conf").write_text(
        f"daemon off; worker_processes 2; user nobody nogroup; pid {ngx}/nginx.pid;\n"
        f"error_log {ngx}/error.log warn;\nevents {{ worker_connections 1024; }}\n"
        f"http {{ access_log off; sendfile on; keepalive_requests 100000; default_type application/octet-stream;\n"
        f"  {temps}\n"
        f"  server {{ listen {sites.addr('a')}:{HTTP_PORT}; root {src}; location / {{ autoindex on; }} }} }}\n")
    proc = sites.spawn("a", ["nginx", "-e", ngx / "error.log", "-p", ngx, "-c", ngx / "nginx.conf"],
                       log=logs / "nginx.out")
    sites.wait_tcp("b", "a", HTTP_PORT, proc=proc)


def tool_variants(sites: kit.Sites, work: Path, sets: dict[str, Dataset]) -> list[Variant]:
    a, b = sites.addr("a"), sites.addr("b")
    ftp_a, ftp_b = f"ftp://{a}:{GRIDFTP_PORT}", f"ftp://{b}:{GRIDFTP_PORT}"
    big, small = sets["big"].root, sets["small"].root
    guc = ["globus-url-copy", "-nodcau"]  # anonymous servers: no data channel authentication
    gridftp_env = {**os.environ, "GLOBUS_HOSTNAME": sites.addr("client")}
    rclone_env = {**os.environ, "RCLONE_CONFIG": str(work / "rclone.conf")}  # an empty config: no warnings
    (work / "rclone.conf").write_text("")
    return [
        Variant("gridftp-3p -p 4", "big", "client",
                lambda d: [*guc, "-p", "4", f"{ftp_a}{big}/big.bin", f"{ftp_b}{d}/big.bin"], gridftp_env),
        Variant("curl", "big", "b", lambda d: ["curl", "-sS", "--fail", "-o", f"{d}/big.bin",
                                               f"http://{a}/big/big.bin"]),
        Variant("rclone", "big", "b", lambda d: ["rclone", "copy", "--http-url", f"http://{a}/big/", ":http:", d],
                rclone_env),
        Variant("gridftp-3p -pp -cc 4", "small", "client",
                lambda d: [*guc, "-r", "-pp", "-cc", "4", f"{ftp_a}{small}/", f"{ftp_b}{d}/"], gridftp_env),
        # -fast keeps data channels open between files (MODE E): the reference's best small-file setting
        Variant("gridftp-3p -fast -pp -cc 8", "small", "client",
                lambda d: [*guc, "-r", "-fast", "-pp", "-cc", "8", f"{ftp_a}{small}/", f"{ftp_b}{d}/"], gridftp_env),
        Variant("rclone --transfers 16", "small", "b",
                lambda d: ["rclone", "copy", "--transfers", "16", "--checkers", "16", "--http-url",
                           f"http://{a}/small/", ":http:", d], rclone_env),
    ]


# -- the Ferry rows ---------------------------------------------------------------------------------


class FerryRow:
    """THE HOOK for Ferry's rows: a hub in `hub`, an endpoint in `a` (storage = the datasets) and one in `b`
    (storage = the destinations), and per dataset `ferry transfer --recursive --wait A:/<dataset>/
    B:/<dest>/` run from `client`. It runs once `ferry serve --help` offers --role (issue 14); until then
    `check()` raises SkipRow and the table says why.

    What the issue-14 developer fills in (each step is one method, and a failing step skips the row with
    its output): `start()` with the real join (`ferry endpoint setup --hub URL` per sites.md), `collections()`
    with how the two collection ids are found, `login_env()` with the credentials the client uses.
    """

    def __init__(self, sites: kit.Sites, work: Path, src: Path, dst: Path) -> None:
        self.sites, self.work, self.src, self.dst = sites, work / "ferry", src, dst
        self.binary = Path(os.environ.get("FERRY_BIN") or next(
            (p for p in (REPO / "target/release/ferry", REPO / "target/debug/ferry") if p.is_file()),
            REPO / "target/release/ferry"))
        self.ids: dict[str, str] = {}

    def check(self) -> None:
        if not self.binary.is_file():
            raise SkipRow(f"no ferry binary at {self.binary} (cargo build --release -p ferry-cli, or FERRY_BIN)")
        res = subprocess.run([self.binary, "serve", "--help"], capture_output=True, text=True, timeout=30)
        if "--role" not in res.stdout:
            raise SkipRow("`ferry serve --help` has no --role: the hub/endpoint split (issue 14) is not built yet")

    def _ferry(self, site: str, *args: str | Path, data: str | None = None) -> str:
        argv = [self.binary, *args] + (["--data-dir", self.work / data] if data else [])
        res = self.sites.run(site, argv, check=False, timeout=120, env=self.login_env())
        if res.returncode != 0:
            raise SkipRow(f"[{site}] ferry {' '.join(map(str, args))}: exit {res.returncode}: "
                          f"{(res.stderr or res.stdout).strip()[-400:]}")
        return res.stdout

    def login_env(self) -> dict[str, str]:
        return {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}

    def start(self) -> None:
        hub = f"http://hub:{FERRY_PORT}"
        roles = [("hub", "hub", None), ("a", "endpoint", self.src), ("b", "endpoint", self.dst)]
        for site, role, storage in roles:
            (self.work / site).mkdir(parents=True, exist_ok=True)
            argv: list[str | Path] = [self.binary, "serve", "--role", role, "--listen",
                                      f"{self.sites.addr(site)}:{FERRY_PORT}", "--data-dir", self.work / site]
            if storage is not None:
                argv += ["--storage-root", storage]
            proc = self.sites.spawn(site, argv, env=self.login_env(), log=self.work / f"{site}.log")
            self.sites.wait_tcp("client", site, FERRY_PORT, timeout=120, proc=proc)
            if role == "endpoint":
                self._ferry(site, "endpoint", "setup", "--hub", hub, data=site)

    def collections(self) -> None:
        """The mapped collection ids of A and B, as the hub lists them."""
        raise SkipRow("FerryRow.collections(): how the client finds the endpoints' collections is issue 14's")

    def variants(self) -> list[Variant]:
        def transfer(ds: str) -> t.Callable[[Path], list[str | os.PathLike[str]]]:
            return lambda d: [str(self.binary), "transfer", "--recursive", "--wait",
                              f"{self.ids['a']}:/{ds}/", f"{self.ids['b']}:/{d.relative_to(self.dst)}/"]
        return [Variant("ferry", ds, "client", transfer(ds), self.login_env()) for ds in ("big", "small")]


# -- running ----------------------------------------------------------------------------------------


def run_variant(sites: kit.Sites, v: Variant, ds: Dataset, dest: Path, timeout: float, log: Path) -> Result:
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    dest.chmod(0o777)  # GridFTP writes as nobody
    subprocess.run(["sync"], check=False, timeout=300)  # the previous copy's writeback is not this one's cost
    hub0 = sites.counters("hub")
    t0 = time.monotonic()
    try:
        res = sites.run(v.site, v.argv(dest), check=False, timeout=timeout, env=v.env)
        rc, out = res.returncode, res.stdout + res.stderr
    except subprocess.TimeoutExpired:
        rc, out = -1, f"timed out after {timeout}s"
    secs = time.monotonic() - t0
    hub1 = sites.counters("hub")
    log.write_text(out)
    note = f"exit {rc}: {out.strip()[-300:]}" if rc != 0 else compare(ds.manifest, manifest(dest))
    shutil.rmtree(dest, ignore_errors=True)
    hub_bytes = hub1["rx_bytes"] + hub1["tx_bytes"] - hub0["rx_bytes"] - hub0["tx_bytes"]
    return Result(0.0, ds.name, v.name, not note, secs, hub_bytes, note)


def table(results: list[Result], sets: dict[str, Dataset], rate: str, skipped: dict[str, str]) -> str:
    link = kit.parse_rate(rate) / 8  # bytes per second
    lines = [f"| delay (one-way) | dataset | tool | ok | median s | MB/s | % of link ({rate}) | files/s | hub bytes |",
             "|---|---|---|---|---|---|---|---|---|"]
    keys = list(dict.fromkeys((r.delay, r.dataset, r.name) for r in results))
    for delay, dsname, name in keys:
        runs = [r for r in results if (r.delay, r.dataset, r.name) == (delay, dsname, name)]
        ok = [r.secs for r in runs if r.ok]
        ds = sets[dsname]
        label = f"{dsname} ({ds.files:,} x {ds.nbytes // ds.files >> 10:,} KiB)"
        hub = max(r.hub_bytes for r in runs)
        if not ok:
            lines.append(f"| {delay:g} ms | {label} | {name} | 0/{len(runs)} | - | - | - | - | {hub:,} |")
            continue
        med = statistics.median(ok)
        files_per_s = f"{ds.files / med:,.0f}" if ds.files > 1 else "-"
        lines.append(f"| {delay:g} ms | {label} | {name} | {len(ok)}/{len(runs)} | {med:.2f} | "
                     f"{ds.nbytes / med / 1e6:,.0f} | {ds.nbytes / med / link:.0%} | {files_per_s} | {hub:,} |")
    for name, why in skipped.items():
        lines.append(f"\n{name}: skipped: {why}")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="256 MiB and 2,000 small files (sizes given win)")
    ap.add_argument("--rate", default="1gbit", help="tbf rate of A's, B's and the hub's links")
    ap.add_argument("--big-mb", type=int, help="the big file in MiB (default 2048)")
    ap.add_argument("--small-files", type=int, help="how many small files (default 10000)")
    ap.add_argument("--small-kb", type=int, default=4, help="size of each small file in KiB")
    ap.add_argument("--delays", default="0,20", help="comma-separated one-way delays in ms (0: none)")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--only", default="", help="regex on 'dataset/tool'")
    ap.add_argument("--timeout", type=float, default=900, help="seconds for one copy")
    ap.add_argument("--workdir", type=Path, help="where datasets and copies go (default: a new temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--results", type=Path, help="append the table (markdown) to this file")
    args = ap.parse_args()
    big_mb = args.big_mb or (256 if args.quick else 2048)
    small_files = args.small_files or (2000 if args.quick else 10000)
    delays = [float(x) for x in args.delays.split(",")]
    kit.parse_rate(args.rate)

    have_ns, why = kit.namespaces_available()
    if not have_ns:
        print(f"bench/sites: {why}; the benchmark shapes links, so it needs them", file=sys.stderr)
        return 2
    missing = sorted({pkg for tool, pkg in TOOLS.items() if shutil.which(tool) is None})
    if missing:
        print(f"bench/sites: missing tools; apt-get install {' '.join(missing)}", file=sys.stderr)
        return 2

    base = args.workdir or Path(tempfile.mkdtemp(prefix="ferry-sites-bench."))
    base.mkdir(parents=True, exist_ok=True)
    base.chmod(0o755)
    src, dst, logs = base / "a", base / "b", base / "logs"
    dst.mkdir(exist_ok=True)
    logs.mkdir(exist_ok=True)
    dst.chmod(0o777)
    t0 = time.monotonic()

    def say(msg: str) -> None:
        print(f"[{time.monotonic() - t0:6.1f}s] {msg}", flush=True)

    results: list[Result] = []
    skipped: dict[str, str] = {}
    try:
        sets = make_datasets(src, big_mb, small_files, args.small_kb)
        say(f"datasets: {big_mb} MiB, {small_files:,} x {args.small_kb} KiB; work {base}")
        with kit.Sites(["hub", "a", "b", "client"], rate=args.rate, rates={"client": None}) as sites:
            start_servers(sites, base, src)
            variants = tool_variants(sites, base, sets)
            ferry = FerryRow(sites, base, src, dst)
            try:
                ferry.check()
                ferry.start()
                ferry.collections()
                variants += ferry.variants()
            except SkipRow as err:
                skipped["ferry"] = str(err)
                say(f"ferry rows skipped: {err}")
            say(f"sites up: {sites.addrs}; links {args.rate} (client unshaped)")
            for delay in delays:
                for site in ("hub", "a", "b"):
                    sites.delay(site, delay)
                for r in range(args.repeats):
                    for v in variants:
                        key = f"{v.dataset}/{v.name}"
                        if args.only and not re.search(args.only, key):
                            continue
                        slug = re.sub(r"[^a-z0-9]+", "-", key.lower())
                        res = run_variant(sites, v, sets[v.dataset], dst / f"{slug}-r{r}", args.timeout,
                                          logs / f"{slug}-d{delay:g}-r{r}.log")
                        res.delay = delay
                        results.append(res)
                        say(f"delay {delay:g} ms r{r} {key}: {res.secs:.2f}s "
                            f"{'verified' if res.ok else 'FAILED ' + res.note}")
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    text = table(results, sets, args.rate, skipped)
    print(text)
    if args.results:
        with open(args.results, "a") as f:
            f.write(f"\n## {time.strftime('%Y-%m-%d %H:%M')} rate {args.rate}, big {big_mb} MiB, "
                    f"{small_files:,} x {args.small_kb} KiB, delays {args.delays} ms, repeats {args.repeats}\n\n"
                    f"{text}\n")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
