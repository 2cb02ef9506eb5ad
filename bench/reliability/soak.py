"""The soak: six clients work a real `ferry serve` without pause — ls, stat, client-credentials tokens,
HTTPS GET of 1 MiB, HTTPS PUT of 256 KiB, and small transfer tasks submitted and waited for — while the
server's resident memory (VmRSS from /proc) is sampled every few seconds. Every loop is bounded by the
duration, and everything stays on 127.0.0.1.

    compat/.venv/bin/python bench/reliability/soak.py --minutes 2                 # the CI run (debug build)
    compat/.venv/bin/python bench/reliability/soak.py --minutes 30 --ferry target/release/ferry

Prints requests, errors and memory on one line: RSS after the warm-up (the first tenth of the run) and at the
end, and how much it grew over the second half. Exits 1 on any error, or if RSS grew more than --max-growth
percent over the second half (growth there means something is not bounded).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[2]
TRANSFER = "urn:globus:auth:scope:transfer.api.globus.org:all"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=2.0)
    ap.add_argument("--ferry", default=os.environ.get("FERRY_BIN", str(REPO / "target" / "debug" / "ferry")))
    ap.add_argument("--max-growth", type=float, default=5.0, help="percent of RSS over the second half")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--only", default="", help="comma-separated client kinds to run (ls,stat,token,get,put,task), "
                                                "to find which one memory follows")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ferry-soak-"))
    storage = work / "storage"
    (storage / "read").mkdir(parents=True)
    (storage / "read" / "one-mib.bin").write_bytes(random.randbytes(1 << 20))
    for i in range(50):
        (storage / "read" / f"f{i}.txt").write_text(f"file {i}\n")
    (storage / "tasks").mkdir()
    (storage / "put").mkdir()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    (work / "ferry.toml").write_text(f'storage_root = "{storage}"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}
    env["FERRY_LOG"] = "warn"
    log = open(work / "server.log", "wb")
    proc = subprocess.Popen([args.ferry, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir",
                             str(work / "data"), "--config", str(work / "ferry.toml")],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    ok = False
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{url}/.well-known/openid-configuration", timeout=2).ok:
                    break
            except requests.RequestException:
                time.sleep(0.1)
        admin = json.loads((work / "data" / "admin-credentials.json").read_text())
        creds = (admin["client_id"], admin["client_secret"])
        tok = requests.post(f"{url}/v2/oauth2/token", auth=creds, timeout=30, data={
            "grant_type": "client_credentials", "scope": TRANSFER}).json()["access_token"]
        coll = requests.get(f"{url}/v0.10/endpoint_search", headers={"Authorization": f"Bearer {tok}"}, params={
            "filter_scope": "administered-by-me", "filter_entity_type": "GCSv5_mapped_collection"},
            timeout=30).json()["DATA"][0]["id"]
        https = requests.post(f"{url}/v2/oauth2/token", auth=creds, timeout=30, data={
            "grant_type": "client_credentials",
            "scope": f"https://auth.globus.org/scopes/{coll}/https"}).json()["access_token"]
        h = {"Authorization": f"Bearer {tok}"}
        hs = {"Authorization": f"Bearer {https}"}
        base = f"{url}/v0.10/operation/endpoint/{coll}"
        end = time.monotonic() + args.minutes * 60
        counts = {k: 0 for k in ("ls", "stat", "token", "get", "put", "task")}
        errors: list[str] = []
        lock = threading.Lock()

        def loop(kind: str, step) -> None:  # type: ignore[no-untyped-def]
            s = requests.Session()
            i = 0
            while time.monotonic() < end:
                i += 1
                try:
                    good = step(s, i)
                except requests.RequestException as e:
                    good, detail = False, repr(e)
                else:
                    detail = ""
                with lock:
                    counts[kind] += 1
                    if not good:
                        errors.append(f"{kind}: {detail or 'bad answer'}")

        def ls(s, i):  # type: ignore[no-untyped-def]
            return s.get(f"{base}/ls", params={"path": "/read/"}, headers=h, timeout=30).status_code == 200

        def stat(s, i):  # type: ignore[no-untyped-def]
            return s.get(f"{base}/stat", params={"path": f"/read/f{i % 50}.txt"}, headers=h,
                         timeout=30).status_code == 200

        def token(s, i):  # type: ignore[no-untyped-def]
            return s.post(f"{url}/v2/oauth2/token", auth=creds, timeout=30,
                          data={"grant_type": "client_credentials", "scope": TRANSFER}).status_code == 200

        def get(s, i):  # type: ignore[no-untyped-def]
            r = s.get(f"{url}/data/{coll}/read/one-mib.bin", headers=hs, timeout=30)
            return r.status_code == 200 and len(r.content) == 1 << 20

        payload = random.randbytes(256 << 10)

        def put(s, i):  # type: ignore[no-untyped-def]
            return s.put(f"{url}/data/{coll}/put/p{i % 20}.bin", data=payload, headers=hs,
                         timeout=30).status_code in (200, 201, 204)

        def task(s, i):  # type: ignore[no-untyped-def]
            r = s.post(f"{url}/v0.10/transfer", headers=h, timeout=30, json={
                "DATA_TYPE": "transfer", "source_endpoint": coll, "destination_endpoint": coll,
                "DATA": [{"DATA_TYPE": "transfer_item", "source_path": f"/read/f{i % 50}.txt",
                          "destination_path": f"/tasks/t{i % 100}.txt"}]})
            if r.status_code >= 300:
                return False
            tid = r.json()["task_id"]
            while time.monotonic() < end + 30:
                st = s.get(f"{url}/v0.10/task/{tid}", headers=h, timeout=30).json()["status"]
                if st in ("SUCCEEDED", "FAILED"):
                    return st == "SUCCEEDED"
                time.sleep(0.05)
            return False

        kinds = (("ls", ls), ("stat", stat), ("token", token), ("get", get), ("put", put), ("task", task))
        only = {k for k in args.only.split(",") if k}
        threads = [threading.Thread(target=loop, args=(k, f), daemon=True) for k, f in kinds if not only or k in only]
        for t in threads:
            t.start()
        samples: list[tuple[float, int]] = []
        t0 = time.monotonic()
        every = max(2.0, args.minutes * 60 / 200)
        while time.monotonic() < end:
            samples.append((time.monotonic() - t0, rss_kib(proc.pid)))
            time.sleep(every)
        for t in threads:
            t.join()
        samples.append((time.monotonic() - t0, rss_kib(proc.pid)))
        total = args.minutes * 60
        warm = [r for s, r in samples if s >= total * 0.1]
        half = [r for s, r in samples if s >= total * 0.5]
        start_rss, end_rss = warm[0], samples[-1][1]
        growth = (half[-1] - half[0]) / half[0] * 100 if half else 0.0
        n = sum(counts.values())
        mib = lambda k: k / 1024  # noqa: E731
        print(f"soak: {args.minutes:g} min, {len(threads)} clients, {n} requests ({', '.join(f'{k} {v}' for k, v in counts.items())}), "
              f"{len(errors)} errors; RSS {mib(start_rss):.1f} MiB after warm-up -> {mib(end_rss):.1f} MiB at the end "
              f"(max {mib(max(r for _, r in samples)):.1f}), {growth:+.1f}% over the second half", flush=True)
        for e in errors[:10]:
            print(f"    {e}")
        (work / "rss.csv").write_text("".join(f"{s:.1f},{r}\n" for s, r in samples))
        ok = not errors and growth <= args.max_growth
        return 0 if ok else 1
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        if args.keep or not ok:
            print(f"work folder (server.log, rss.csv): {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
