"""Real `ferry` processes as sites: a hub and an endpoint each in a network namespace of its own, a person in a
third. The person logs in at the hub, sets the endpoint up from their site, and downloads a file over HTTPS:
it comes straight from the endpoint, and the hub's link carries none of its bytes.

    compat/.venv/bin/python -m pytest sites -q      (as root; FERRY_BIN or target/debug/ferry)
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
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
        made = subprocess.run([FERRY, "identity", "create", "olive", "--password", "olive-password-1",
                               "--data-dir", tmp_path / "hub"], env=env, capture_output=True, text=True)
        assert made.returncode == 0, made.stderr
        home = tmp_path / "olive"
        s.run("client", [PYTHON, DRIVER, "join", hub_url, public, tmp_path / "a", home, "olive@ferry.local",
                         "olive-password-1"], env=driver_env)
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
                               home, "olive@ferry.local", "olive-password-1"], env=driver_env, check=False)
        after = s.counters("hub")
        assert got.returncode == 0, got.stdout + got.stderr + (tmp_path / "a.log").read_text()[-3000:]
        assert hashlib.sha256((tmp_path / "scan.bin").read_bytes()).digest() == hashlib.sha256(data).digest()
        carried = (after["tx_bytes"] - before["tx_bytes"]) + (after["rx_bytes"] - before["rx_bytes"])
        print(f"the hub's link carried {carried} bytes while {len(data)} bytes went from the endpoint")
        # The login, the token checks and the reports pass the hub: a few hundred KiB at most, against 32 MiB.
        assert carried < len(data) // 32, f"the hub's link carried {carried} bytes for a {len(data)}-byte file"
        assert site["endpoint_id"]
