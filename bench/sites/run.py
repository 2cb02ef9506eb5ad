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
iproute2 nftables.

The Ferry rows (`ferry`, one per dataset): a hub in `hub`, endpoints in `a` (storage root: the datasets) and
`b` (storage root: the destinations), a person logged in from `client` who runs `ferry transfer --recursive
--wait A:/<dataset>/ B:/<dest>/` (checksums verified, Ferry's default); B pulls straight from A. They need a
ferry binary with `serve --role` (a RELEASE build for numbers that mean anything) and Python with `requests`
for the login's browser part (run with compat/.venv/bin/python, made by compat/install.sh):

    CARGO_TARGET_DIR=/work/target-bench cargo build --release -p ferry-cli
    compat/.venv/bin/python bench/sites/run.py --ferry-bin /work/target-bench/release/ferry
    compat/.venv/bin/python bench/sites/run.py --ferry-bin ... --only ferry --delays 0 --keep

Without a binary or `requests` the rows are skipped with the reason. `--keep` keeps the servers' logs
(<workdir>/ferry/*.log) and per run the command's output and CPU samples (<workdir>/logs/*.cpu.tsv: every
0.5 s, CPU % by site/command).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
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
    detail: t.Callable[[str], str] | None = None  # from the command's output, a line for the run's details


@dataclasses.dataclass
class Result:
    delay: float
    dataset: str
    name: str
    ok: bool
    secs: float
    hub_bytes: int
    note: str = ""
    cpu: dict[str, float] = dataclasses.field(default_factory=dict)  # "site/command" -> CPU seconds
    detail: str = ""


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


def journal_less_ext4(path: Path) -> str | None:
    """The device when `path` is on ext4 without a journal, else None. There, making a file soon after many
    were deleted is slow (ext4's find_inode_bit() skips every inode deleted in the last 60 s, 360 s while its
    inode table block is dirty, re-reading each, for every new inode: quadratic; with a journal it does not
    look), so a small-file copy's time would depend on what the copies before it deleted. Measured here:
    10,000 files made in 0.6 s normally, 3.7-6.5 s in the minutes after 10,000-20,000 were deleted; perf put
    ~65% of the destination's CPU in recently_deleted(). run.py therefore keeps the small-file copies until
    the end and puts its work directory on /dev/shm by default."""
    st = path.stat()
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        f = line.split()
        sep = f.index("-")
        if f[2] == f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}" and f[sep + 1] == "ext4":
            dev = Path(f[sep + 2]).name
            task = Path(f"/sys/fs/ext4/{dev}/journal_task")
            if task.exists() and task.read_text().strip() == "<none>":
                return dev
    return None


def default_workdir(need_bytes: int) -> Path:
    """A new folder under /dev/shm (tmpfs: no disk, and none of the ext4 effect above) when it has room for
    the datasets and one big copy, else under the temp dir."""
    shm = Path("/dev/shm")
    if shm.is_dir() and shutil.disk_usage(shm).free > need_bytes:
        return Path(tempfile.mkdtemp(prefix="ferry-sites-bench.", dir=shm))
    return Path(tempfile.mkdtemp(prefix="ferry-sites-bench."))


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

FERRY_USER, FERRY_PASSWORD = "bench", "quay-crane-7193"  # a password that passes the strength rules


def ferry_binary(flag: Path | None) -> Path:
    """--ferry-bin, else FERRY_BIN, else target/release/ferry, else target/debug/ferry."""
    if flag is not None:
        return flag.resolve()
    if os.environ.get("FERRY_BIN"):
        return Path(os.environ["FERRY_BIN"]).resolve()
    return next((p for p in (REPO / "target/release/ferry", REPO / "target/debug/ferry") if p.is_file()),
                REPO / "target/release/ferry")


def login_python() -> str | None:
    """A Python that can do the browser part of `ferry login` (compat/ferry_harness.py needs `requests`)."""
    for py in (sys.executable, str(REPO / "compat/.venv/bin/python")):
        if Path(py).is_file() and subprocess.run([py, "-c", "import requests"], capture_output=True,
                                                 timeout=60).returncode == 0:
            return py
    return None


def ferry_login_main(argv: list[str]) -> int:
    """`run.py _ferry_login FERRY HUB_URL USER PASSWORD`, run by FerryRow inside the client site with the
    person's XDG_CONFIG_HOME: `ferry login --url HUB_URL`, its browser part done by the compat harness."""
    binary, hub, user, password = argv
    sys.path.insert(0, str(REPO / "compat"))
    from ferry_harness import ferry_env, ferry_login  # noqa: PLC0415
    env = {**ferry_env(), "XDG_CONFIG_HOME": os.environ["XDG_CONFIG_HOME"]}
    r = ferry_login([binary, "login", "--url", hub], env, user, password)
    if r.returncode != 0:
        print(r.describe(), file=sys.stderr)
    return r.returncode


class FerryRow:
    """Ferry's rows: a hub in `hub`, an endpoint in `a` whose storage root is the datasets' folder (so
    `A:/big/big.bin` is the file the other tools copy) and one in `b` whose storage root is the destinations'
    folder; a person (`bench`) made at the hub with `ferry identity create`, logged in from `client` (the
    browser part done by compat/ferry_harness.py), who sets both endpoints up (`ferry endpoint setup`);
    the collection ids come from each endpoint's start-up output ("mapped collection id"). Per dataset:
    `ferry transfer --recursive --wait A:/<dataset>/ B:/<dest>/` from `client` (checksums verified: the
    default). Any step that fails skips the rows with its output.

    Binary: --ferry-bin, else FERRY_BIN, else target/release/ferry, else target/debug/ferry (a debug build
    is labelled as such in the table). The servers get an environment without FERRY_* (Ferry reads those as
    its configuration and refuses unknown ones)."""

    def __init__(self, sites: kit.Sites, work: Path, src: Path, dst: Path, binary: Path) -> None:
        self.sites, self.work, self.src, self.dst = sites, work / "ferry", src, dst
        self.binary = binary
        self.home = self.work / "person"  # the person's XDG_CONFIG_HOME (tokens)
        self.hub_url = f"http://{sites.addr('hub')}:{FERRY_PORT}"
        self.ids: dict[str, str] = {}
        self.procs: dict[str, kit.Proc] = {}
        self.python: str | None = None
        self.name = "ferry" if "/debug/" not in str(binary) else "ferry (DEBUG build)"

    def check(self) -> None:
        if not self.binary.is_file():
            raise SkipRow(f"no ferry binary at {self.binary} (cargo build --release -p ferry-cli; "
                          "--ferry-bin or FERRY_BIN)")
        res = subprocess.run([self.binary, "serve", "--help"], capture_output=True, text=True, timeout=30,
                             env=self.server_env())
        if "--role" not in res.stdout:
            raise SkipRow("`ferry serve --help` has no --role: the hub/endpoint split (issue 14) is not built yet")
        self.python = login_python()
        if self.python is None:
            raise SkipRow("the login's browser part needs Python with `requests` (compat/install.sh, then run "
                          "with compat/.venv/bin/python)")

    def server_env(self) -> dict[str, str]:
        return {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}

    def login_env(self) -> dict[str, str]:
        return {**self.server_env(), "XDG_CONFIG_HOME": str(self.home)}

    def _run(self, site: str, argv: list[str | Path], env: dict[str, str], what: str) -> str:
        res = self.sites.run(site, argv, check=False, timeout=180, env=env)
        if res.returncode != 0:
            raise SkipRow(f"[{site}] {what}: exit {res.returncode}: {(res.stderr + res.stdout).strip()[-600:]}")
        return res.stdout

    def _serve(self, site: str, role: str, *extra: str | Path) -> None:
        data = self.work / site
        data.mkdir(parents=True, exist_ok=True)
        log = self.work / f"{site}.log"
        proc = self.sites.spawn(site, [self.binary, "serve", "--role", role, "--data-dir", data, "--listen",
                                       f"{self.sites.addr(site)}:{FERRY_PORT}", *extra],
                                env={**self.server_env(), "RUST_LOG": "info"}, log=log)
        self.procs[site] = proc
        try:
            self.sites.wait_tcp("client", site, FERRY_PORT, timeout=120, proc=proc)
        except Exception as err:  # noqa: BLE001 — the row is skipped with the server's output
            raise SkipRow(f"ferry serve --role {role} in {site} did not come up: {err}: "
                          f"{log.read_text(errors='replace')[-600:]}") from None

    def start(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        self._serve("hub", "hub")
        self._run("hub", [self.binary, "identity", "create", FERRY_USER, "--password", FERRY_PASSWORD,
                          "--data-dir", self.work / "hub"], self.server_env(), "ferry identity create")
        self._run("client", [t.cast(str, self.python), Path(__file__).resolve(), "_ferry_login", self.binary,
                             self.hub_url, f"{FERRY_USER}@ferry.local", FERRY_PASSWORD],
                  self.login_env(), "ferry login (browser part by compat/ferry_harness.py)")
        for site, storage in (("a", self.src), ("b", self.dst)):
            self._run("client", [self.binary, "endpoint", "setup", "--hub", self.hub_url, "--public-url",
                                 f"http://{self.sites.addr(site)}:{FERRY_PORT}", "--display-name",
                                 f"bench site {site}", "--data-dir", self.work / site],
                      self.login_env(), f"ferry endpoint setup ({site})")
            self._serve(site, "endpoint", "--storage-root", storage)

    def restart(self) -> None:
        """Stops and starts the three servers (same data directories), after a change of delay: the delay
        applies to new connections only, and the servers keep theirs open (the endpoints report to the hub
        every 0.5 s, the hub keeps connections to the endpoints) — without this the delayed rows would use
        undelayed connections."""
        for site in ("hub", "a", "b"):
            self.procs[site].stop()
        self._serve("hub", "hub")
        for site in ("a", "b"):
            self._serve(site, "endpoint")
        self._run("client", [self.binary, "ls", f"{self.ids['a']}:/", "--url", self.hub_url],
                  self.login_env(), "ferry ls A:/ after the restart")

    def collections(self) -> None:
        """The mapped collection ids of A and B: each endpoint prints its own when it starts ("mapped
        collection id <uuid>"); the hub must list both, and the person must see A's datasets there."""
        for site in ("a", "b"):
            log = self.work / f"{site}.log"
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:  # bounded: the endpoint prints it once it has started
                m = re.search(r"mapped collection id ([0-9a-f-]{36})", log.read_text(errors="replace"))
                if m:
                    self.ids[site] = m.group(1)
                    break
                time.sleep(0.2)
            else:
                raise SkipRow(f"endpoint {site} printed no mapped collection id: "
                              f"{log.read_text(errors='replace')[-600:]}")
        out = self._run("client", [self.binary, "ls", f"{self.ids['a']}:/", "--url", self.hub_url],
                        self.login_env(), "ferry ls A:/ at the hub")
        if not ("big" in out and "small" in out):
            raise SkipRow(f"ferry ls A:/ does not show the datasets: {out[-400:]}")

    def variants(self) -> list[Variant]:
        def transfer(ds: str) -> t.Callable[[Path], list[str | os.PathLike[str]]]:
            return lambda d: [self.binary, "--format", "json", "transfer", "--recursive", "--wait", "--url",
                              self.hub_url, "--label", f"bench {ds} {d.name}",
                              f"{self.ids['a']}:/{ds}/", f"{self.ids['b']}:/{d.relative_to(self.dst)}/"]
        return [Variant(self.name, ds, "client", transfer(ds), self.login_env(), detail=task_detail)
                for ds in ("big", "small")]


def task_detail(out: str) -> str:
    """What the task document says (`ferry --format json transfer --wait` prints it at the end); its times have
    a resolution of one second."""
    start = out.rfind("\n{")
    try:
        doc = json.loads(out[start + 1:] if start >= 0 else out)
    except ValueError:
        return ""
    keys = ("request_time", "completion_time", "files_transferred", "bytes_checksummed", "faults")
    return "task: " + ", ".join(f"{k} {doc[k]}" for k in keys if k in doc)


# -- running ----------------------------------------------------------------------------------------


class CpuWatch:
    """CPU seconds of every process in the sites while a copy runs, by site and command name: /proc/<pid>/stat
    (utime + stime, children not included) of the pids `ip netns pids` lists, sampled every `every` seconds;
    a process that ends between two samples loses its last interval. The tool run by the copy itself is
    measured apart (its rusage). The samples (per-interval CPU % by site/command) go to `series`."""

    def __init__(self, sites: kit.Sites, names: list[str], every: float = 0.5) -> None:
        self.sites, self.names, self.every = sites, names, every
        self.tick = os.sysconf("SC_CLK_TCK")
        self.first: dict[int, tuple[str, float]] = {}
        self.last: dict[int, tuple[str, float]] = {}
        self.rows: list[str] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.site_of: dict[str, str] = {}

    def _snapshot(self) -> dict[int, tuple[str, float]]:
        """Every process whose network namespace is a site's (what `ip netns pids` does, without a process)."""
        if not self.site_of:
            self.site_of = {f"net:[{os.stat(f'/run/netns/{self.sites.ns(s)}').st_ino}]": s for s in self.names}
        snap: dict[int, tuple[str, float]] = {}
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                site = self.site_of.get(os.readlink(f"/proc/{name}/ns/net"))
                if site is None:
                    continue
                stat = Path(f"/proc/{name}/stat").read_text()
            except OSError:
                continue
            comm = stat[stat.index("(") + 1:stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2:].split()
            snap[int(name)] = (f"{site}/{comm}", (int(fields[11]) + int(fields[12])) / self.tick)
        return snap

    def _loop(self) -> None:
        t0 = t_prev = time.monotonic()
        prev = self.first
        while not self.stopped.wait(self.every):
            now, t_now = self._snapshot(), time.monotonic()
            by: dict[str, float] = {}
            for pid, (key, secs) in now.items():
                by[key] = by.get(key, 0.0) + secs - prev.get(pid, (key, 0.0))[1]
            self.rows.append(f"{t_now - t0:.1f}\t" + "\t".join(
                f"{k}={v / (t_now - t_prev):.0%}" for k, v in sorted(by.items()) if v > 0))
            self.last.update(now)
            prev, t_prev = now, t_now

    def __enter__(self) -> CpuWatch:
        self.first = self._snapshot()
        self.thread.start()
        return self

    def __exit__(self, *exc: t.Any) -> None:
        self.stopped.set()
        self.thread.join(timeout=30)
        self.last.update(self._snapshot())

    def totals(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for pid, (key, secs) in self.last.items():
            out[key] = out.get(key, 0.0) + secs - self.first.get(pid, (key, 0.0))[1]
        return {k: v for k, v in out.items() if v >= 0.01}


def run_variant(sites: kit.Sites, v: Variant, ds: Dataset, dest: Path, timeout: float, log: Path) -> Result:
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    dest.chmod(0o777)  # GridFTP writes as nobody
    subprocess.run(["sync"], check=False, timeout=300)  # the previous copy's writeback is not this one's cost
    hub0 = sites.counters("hub")
    with CpuWatch(sites, sites.names) as watch:
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.monotonic()
        try:
            res = sites.run(v.site, v.argv(dest), check=False, timeout=timeout, env=v.env)
            rc, out = res.returncode, res.stdout + res.stderr
        except subprocess.TimeoutExpired:
            rc, out = -1, f"timed out after {timeout}s"
        secs = time.monotonic() - t0
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    hub1 = sites.counters("hub")
    log.write_text(out)
    log.with_suffix(".cpu.tsv").write_text("\n".join(watch.rows) + "\n")
    # The command itself by its rusage (exact), not as the watch saw it.
    own = f"{v.site}/{Path(os.fspath(v.argv(dest)[0])).name[:15]}"
    cpu = {f"{v.site}/(the command)": ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime,
           **{k: secs for k, secs in watch.totals().items() if k != own}}
    note = f"exit {rc}: {out.strip()[-300:]}" if rc != 0 else compare(ds.manifest, manifest(dest))
    if ds.files > 1:
        # Deleted at the end of the benchmark, not now: see journal_less_ext4().
        dest.rename(dest.parent / f".done-{dest.name}-{time.monotonic_ns()}")
    else:
        shutil.rmtree(dest, ignore_errors=True)
    hub_bytes = hub1["rx_bytes"] + hub1["tx_bytes"] - hub0["rx_bytes"] - hub0["tx_bytes"]
    detail = v.detail(out) if v.detail and rc == 0 else ""
    return Result(0.0, ds.name, v.name, not note, secs, hub_bytes, note, cpu, detail)


def table(results: list[Result], sets: dict[str, Dataset], rate: str, skipped: dict[str, str]) -> str:
    """The markdown table (medians of the verified runs), then each run's CPU by process and details."""
    link = kit.parse_rate(rate) / 8  # bytes per second
    lines = [f"| delay (one-way) | dataset | tool | ok | median s | MB/s | % of link ({rate}) | files/s | "
             "x best GridFTP | CPU s: command / a / b / hub | hub bytes |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    keys = list(dict.fromkeys((r.delay, r.dataset, r.name) for r in results))

    def median_of(delay: float, dsname: str, name: str) -> float | None:
        ok = [r.secs for r in results if (r.delay, r.dataset, r.name) == (delay, dsname, name) and r.ok]
        return statistics.median(ok) if ok else None

    for delay, dsname, name in keys:
        runs = [r for r in results if (r.delay, r.dataset, r.name) == (delay, dsname, name)]
        ds = sets[dsname]
        label = f"{dsname} ({ds.files:,} x {ds.nbytes // ds.files >> 10:,} KiB)"
        hub = max(r.hub_bytes for r in runs)
        med = median_of(delay, dsname, name)
        if med is None:
            lines.append(f"| {delay:g} ms | {label} | {name} | 0/{len(runs)} | - | - | - | - | - | - | {hub:,} |")
            continue
        ok = [r for r in runs if r.ok]
        typical = min(ok, key=lambda r: abs(r.secs - med))
        by_site = {site: sum(v for k, v in typical.cpu.items() if k.startswith(site + "/") and "(the command)"
                             not in k) for site in ("a", "b", "hub")}
        cmd = sum(v for k, v in typical.cpu.items() if "(the command)" in k)
        cpu = f"{cmd:.1f} / {by_site['a']:.1f} / {by_site['b']:.1f} / {by_site['hub']:.1f}"
        grid = [m for n in {k[2] for k in keys if k[:2] == (delay, dsname) and k[2].startswith("gridftp")}
                if (m := median_of(delay, dsname, n)) is not None]
        vs = f"{min(grid) / med:.2f}" if grid else "-"
        files_per_s = f"{ds.files / med:,.0f}" if ds.files > 1 else "-"
        lines.append(f"| {delay:g} ms | {label} | {name} | {len(ok)}/{len(runs)} | {med:.2f} | "
                     f"{ds.nbytes / med / 1e6:,.1f} | {ds.nbytes / med / link:.1%} | {files_per_s} | {vs} | {cpu} | "
                     f"{hub:,} |")
    for name, why in skipped.items():
        lines.append(f"\n{name}: skipped: {why}")
    lines.append("\nEach run: CPU seconds by site/command (>= 0.1 s), and details:\n")
    for r in results:
        top = ", ".join(f"{k} {v:.1f}" for k, v in sorted(r.cpu.items(), key=lambda kv: -kv[1]) if v >= 0.1)
        status = "verified" if r.ok else f"FAILED: {r.note}"
        lines.append(f"- {r.delay:g} ms {r.dataset}/{r.name}: {r.secs:.2f} s, {status}; cpu: {top or '-'}"
                     + (f"; {r.detail}" if r.detail else ""))
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
    ap.add_argument("--workdir", type=Path, help="where datasets and copies go (default: a new folder under /dev/shm when it has room, else in the temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--results", type=Path, help="append the table (markdown) to this file")
    ap.add_argument("--ferry-bin", type=Path, help="the ferry binary for the Ferry rows (default: FERRY_BIN, else "
                    "target/release/ferry, else target/debug/ferry); build: cargo build --release -p ferry-cli")
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

    small_bytes = small_files * (args.small_kb << 10)
    base = args.workdir or default_workdir(2 * (big_mb << 20) + small_bytes * (2 + 4 * len(delays) * args.repeats)
                                           + (1 << 30))
    base.mkdir(parents=True, exist_ok=True)
    base.chmod(0o755)
    fs_note = f"work directory {base} ({shutil.disk_usage(base).total >> 30} GiB, " + (
        f"ext4 WITHOUT a journal on {dev}: small-file times depend on recent deletions, see journal_less_ext4())"
        if (dev := journal_less_ext4(base)) else "no journal-less ext4") + ")"
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
        say(f"datasets: {big_mb} MiB, {small_files:,} x {args.small_kb} KiB; {fs_note}")
        with kit.Sites(["hub", "a", "b", "client"], rate=args.rate, rates={"client": None}) as sites:
            start_servers(sites, base, src)
            variants = tool_variants(sites, base, sets)
            ferry = FerryRow(sites, base, src, dst, ferry_binary(args.ferry_bin))
            try:
                ferry.check()
                ferry.start()
                ferry.collections()
                variants += ferry.variants()
            except SkipRow as err:
                skipped["ferry"] = str(err)
                say(f"ferry rows skipped: {err}")
            say(f"sites up: {sites.addrs}; links {args.rate} (client unshaped)")
            for i, delay in enumerate(delays):
                for site in ("hub", "a", "b"):
                    sites.delay(site, delay)
                if i > 0 and "ferry" not in skipped and any(
                        not args.only or re.search(args.only, f"{v.dataset}/{v.name}") for v in ferry.variants()):
                    try:
                        ferry.restart()  # the new delay must apply to the servers' connections too
                    except SkipRow as err:
                        skipped["ferry"] = f"from delay {delay:g} ms on: {err}"
                        variants = [v for v in variants if v.name != ferry.name]
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
                    f"{small_files:,} x {args.small_kb} KiB, delays {args.delays} ms, repeats {args.repeats}, "
                    f"ferry {ferry_binary(args.ferry_bin)}; {fs_note}\n\n"
                    f"{text}\n")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    if sys.argv[1:2] == ["_ferry_login"]:  # FerryRow's login, run inside the client site
        sys.exit(ferry_login_main(sys.argv[2:]))
    sys.exit(main())
