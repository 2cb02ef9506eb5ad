"""Real `ferry` processes as sites: a hub and an endpoint each in a network namespace of its own, a person in a
third. The person logs in at the hub, sets the endpoint up from their site, and downloads a file over HTTPS:
it comes straight from the endpoint, and the hub's link carries none of its bytes.

    compat/.venv/bin/python -m pytest sites -q      (as root; FERRY_BIN or target/debug/ferry)
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import typing as t
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import kit  # noqa: E402

HAVE_NS, WHY_NOT = kit.namespaces_available()
REPO = Path(__file__).resolve().parent.parent
FERRY = os.environ.get("FERRY_BIN", str(REPO / "target" / "debug" / "ferry"))
DRIVER = Path(__file__).resolve().parent / "ferry_driver.py"
PYTHON = sys.executable


@pytest.mark.skipif(not HAVE_NS, reason=WHY_NOT)
@pytest.mark.skipif(not Path(FERRY).exists(), reason=f"no ferry binary at {FERRY} (cargo build -p ferry-cli)")
def test_a_download_from_an_endpoint_does_not_pass_through_the_hub(tmp_path: Path) -> None:
    # Ferry reads FERRY_* as its configuration and refuses what it does not know: the servers get none of the
    # caller's; the driver is told where the binary is.
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}
    driver_env = {**env, "FERRY_BIN": FERRY}
    with kit.Sites(["hub", "a", "client"]) as s:
        hub_url = f"http://{s.addr('hub')}:8400"
        public = f"http://{s.addr('a')}:8500"
        hub = s.spawn("hub", [FERRY, "serve", "--role", "hub", "--data-dir", tmp_path / "hub", "--listen",
                              f"{s.addr('hub')}:8400"], env=env, log=tmp_path / "hub.log")
        s.wait_tcp("client", "hub", 8400, proc=hub)
        made = subprocess.run([FERRY, "identity", "create", "olive", "--password", "harbour-light-5520",
                               "--data-dir", tmp_path / "hub"], env=env, capture_output=True, text=True)
        assert made.returncode == 0, made.stderr
        home = tmp_path / "olive"
        s.run("client", [PYTHON, DRIVER, "join", hub_url, public, tmp_path / "a", home, "olive@ferry.local",
                         "harbour-light-5520"], env=driver_env)
        site = json.loads((tmp_path / "a" / "endpoint.json").read_text())
        ep = s.spawn("a", [FERRY, "serve", "--role", "endpoint", "--data-dir", tmp_path / "a", "--listen",
                           f"{s.addr('a')}:8500"], env=env, log=tmp_path / "a.log")
        s.wait_tcp("client", "a", 8500, proc=ep)
        # The endpoint's default collection, once it has reported it.
        collection = None
        for _ in range(100):
            log = (tmp_path / "a.log").read_text()
            if "mapped collection id" in log:
                collection = log.split("mapped collection id")[1].split()[0]
                break
            time.sleep(0.1)
        assert collection, (tmp_path / "a.log").read_text()
        data = os.urandom(32 << 20)
        (tmp_path / "a" / "storage" / "scan.bin").write_bytes(data)

        before = s.counters("hub")
        got = s.run("client", [PYTHON, DRIVER, "get", hub_url, collection, "/scan.bin", tmp_path / "scan.bin",
                               home, "olive@ferry.local", "harbour-light-5520"], env=driver_env, check=False)
        after = s.counters("hub")
        assert got.returncode == 0, got.stdout + got.stderr + (tmp_path / "a.log").read_text()[-3000:]
        assert hashlib.sha256((tmp_path / "scan.bin").read_bytes()).digest() == hashlib.sha256(data).digest()
        carried = (after["tx_bytes"] - before["tx_bytes"]) + (after["rx_bytes"] - before["rx_bytes"])
        print(f"the hub's link carried {carried} bytes while {len(data)} bytes went from the endpoint")
        # The login, the token checks and the reports pass the hub: a few hundred KiB at most, against 32 MiB.
        assert carried < len(data) // 32, f"the hub's link carried {carried} bytes for a {len(data)}-byte file"
        assert site["endpoint_id"]


# -- a transfer from endpoint A to endpoint B, clean and under faults ------------------------------------------

#: The issue's sizes with FERRY_SITES_FULL=1 (10,000 small files, 200 medium, one of 1 GiB); CI's by default.
FULL = os.environ.get("FERRY_SITES_FULL") == "1"
SMALL_FILES, MEDIUM_FILES, BIG_MB = (10_000, 200, 1024) if FULL else (2_000, 24, 192)
PASSWORD = "harbour-light-5520"
#: Endpoints retry quickly, so that a fault costs the test seconds, not minutes.
ENDPOINT_CONFIG = "[transfer]\nretry_base_ms = 200\ninactive_retry_secs = 2\ninactive_after_faults = 4\n"


def make_dataset(root: Path) -> int:
    """Small files in folders of 500, medium ones of 1-6 MiB, one big file; returns the bytes written."""
    rng = __import__("random").Random(14)
    total = 0
    for i in range(SMALL_FILES):
        d = root / "small" / f"d{i // 500:03d}"
        d.mkdir(parents=True, exist_ok=True)
        data = rng.randbytes(rng.randint(0, 8192))
        (d / f"f{i:05d}.dat").write_bytes(data)
        total += len(data)
    (root / "medium").mkdir(parents=True)
    for i in range(MEDIUM_FILES):
        data = rng.randbytes(rng.randint(1 << 20, 6 << 20))
        (root / "medium" / f"m{i:03d}.h5").write_bytes(data)
        total += len(data)
    with open(root / "big.bin", "wb") as f:
        for _ in range(BIG_MB):
            f.write(os.urandom(1 << 20))
    return total + (BIG_MB << 20)


def manifest(root: Path) -> dict[str, str]:
    """Relative path -> BLAKE2 of the bytes (folders as "dir"), everything under `root`, hidden names included."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            out[os.path.relpath(os.path.join(dirpath, d), root) + "/"] = "dir"
        for f in filenames:
            p = os.path.join(dirpath, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, root)] = hashlib.file_digest(fh, "blake2b").hexdigest()
    return out


def size_of(root: Path) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(root) for f in fs)


class Federation:
    """A hub, endpoints A and B and a client, each a site; olive owns both endpoints."""

    def __init__(self, s: kit.Sites, work: Path) -> None:
        self.s, self.work = s, work
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}
        self.hub_url = f"http://{s.addr('hub')}:8400"
        self.home = work / "olive"
        self.procs: dict[str, kit.Proc] = {}
        self.collections: dict[str, str] = {}

    def ferry(self, *args: str | Path, timeout: float = 900, check: bool = True) -> subprocess.CompletedProcess:
        """A `ferry` command of olive's, from the client site."""
        env = {**self.env, "XDG_CONFIG_HOME": str(self.home)}
        return self.s.run("client", [FERRY, *args], env=env, timeout=timeout, check=check)

    def start(self, site: str) -> kit.Proc:
        if site == "hub":
            argv = [FERRY, "serve", "--role", "hub", "--data-dir", self.work / "hub", "--listen",
                    f"{self.s.addr('hub')}:8400"]
        else:
            argv = [FERRY, "serve", "--role", "endpoint", "--data-dir", self.work / site, "--config",
                    self.work / "endpoint.toml", "--listen", f"{self.s.addr(site)}:8500"]
        p = self.s.spawn(site, argv, env=self.env, log=self.work / f"{site}.log")
        self.s.wait_tcp("client", site, 8400 if site == "hub" else 8500, proc=p)
        self.procs[site] = p
        return p

    def up(self) -> None:
        (self.work / "endpoint.toml").write_text(ENDPOINT_CONFIG)
        self.start("hub")
        made = subprocess.run([FERRY, "identity", "create", "olive", "--password", PASSWORD, "--data-dir",
                               self.work / "hub"], env=self.env, capture_output=True, text=True)
        assert made.returncode == 0, made.stderr
        for site, name in (("a", "Beamline"), ("b", "Campus")):
            public = f"http://{self.s.addr(site)}:8500"
            self.s.run("client", [PYTHON, DRIVER, "join", self.hub_url, public, self.work / site, self.home,
                                  "olive@ferry.local", PASSWORD, name],
                       env={**self.env, "FERRY_BIN": FERRY})
            self.start(site)
            for _ in range(100):
                log = (self.work / f"{site}.log").read_text()
                if "mapped collection id" in log:
                    self.collections[site] = log.split("mapped collection id")[1].split()[0]
                    break
                time.sleep(0.1)
            assert site in self.collections, (self.work / f"{site}.log").read_text()[-3000:]
        # The hub knows both collections once both endpoints reported them.
        for _ in range(100):
            found = self.ferry("ls", f"{self.collections['b']}:/", "--url", self.hub_url, check=False)
            if found.returncode == 0:
                break
            time.sleep(0.2)

    def storage(self, site: str) -> Path:
        return self.work / site / "storage"

    def kill(self, site: str) -> None:
        self.procs[site].kill(signal.SIGKILL)
        self.procs[site].wait(10)


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[Federation]:
    if not HAVE_NS:
        pytest.skip(WHY_NOT)
    if not Path(FERRY).exists():
        pytest.skip(f"no ferry binary at {FERRY} (cargo build -p ferry-cli)")
    work = tmp_path_factory.mktemp("federation")
    with kit.Sites(["hub", "a", "b", "client"]) as s:
        f = Federation(s, work)
        f.up()
        f.bytes = make_dataset(f.storage("a") / "data")
        f.want = manifest(f.storage("a") / "data")
        yield f


def wait_for(what: str, check: t.Callable[[], bool], timeout: float) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


FAULTS = ["clean", "kill-a", "kill-b", "kill-hub", "loss-2pct"]


@pytest.mark.parametrize("fault", FAULTS)
def test_a_verified_transfer_from_a_to_b_is_exact(federation: Federation, fault: str) -> None:
    f = federation
    dest = f.storage("b") / fault
    if fault == "loss-2pct":
        f.s.set_loss("a", 2.0)
    hub_before = f.s.counters("hub")
    try:
        sent = f.ferry("transfer", f"{f.collections['a']}:/data", f"{f.collections['b']}:/{fault}", "--recursive",
                       "--verify", "--label", f"A to B ({fault})", "--url", f.hub_url)
        task = sent.stdout.strip().split()[-1]
        if fault.startswith("kill-"):
            site = fault.removeprefix("kill-")
            # Mid-task: a third of the bytes are at B (under their temporary names or real ones).
            wait_for("a third of the bytes at B", lambda: dest.exists() and size_of(dest) > f.bytes // 3, 600)
            f.kill(site)
            time.sleep(2)
            f.start(site)
        waited = f.ferry("task", "wait", task, "--through-inactive", "--timeout", "900", "--url", f.hub_url,
                         timeout=960, check=False)
        shown = f.ferry("task", "show", task, "--format", "json", "--url", f.hub_url, check=False)
    finally:
        if fault == "loss-2pct":
            f.s.set_loss("a", 0)
    logs = "\n".join(f"--- {n}\n" + (f.work / f"{n}.log").read_text()[-3000:] for n in ("hub", "a", "b"))
    assert waited.returncode == 0, waited.stdout + waited.stderr + shown.stdout + logs
    doc = json.loads(shown.stdout)
    assert doc["status"] == "SUCCEEDED", doc
    # 0 files lost, corrupted or extra; no temporary file left under any name.
    got = manifest(dest)
    assert got == f.want, (
        f"lost {sorted(set(f.want) - set(got))[:5]}, extra {sorted(set(got) - set(f.want))[:5]}, "
        f"corrupted {[k for k in f.want if k in got and got[k] != f.want[k]][:5]}"
    )
    print(f"{fault}: {len(f.want)} entries, {f.bytes} bytes, faults {doc.get('faults')}, "
          f"files {doc.get('files')}, transferred {doc.get('files_transferred')}")
    if fault.startswith("kill-"):
        # The events say which side failed, and why.
        events = f.ferry("task", "events", task, "--format", "json", "--url", f.hub_url).stdout
        print(f"{fault}: events {events[:1500]}")
    if fault == "clean":
        after = f.s.counters("hub")
        carried = (after["tx_bytes"] - hub_before["tx_bytes"]) + (after["rx_bytes"] - hub_before["rx_bytes"])
        print(f"the hub's link carried {carried} bytes while {f.bytes} bytes went from A to B")
        assert carried < f.bytes // 100, f"the hub's link carried {carried} bytes for {f.bytes} bytes moved"
