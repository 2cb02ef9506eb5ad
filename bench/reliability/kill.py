"""The kill campaign: a real `ferry serve` is killed with SIGKILL again and again while it runs transfer and
delete tasks over a mixed corpus and takes HTTPS uploads, and is started again on the same data directory
each time. At every kill, with the server dead, every file under a real name must be a complete copy; at the
end every task must have SUCCEEDED and every destination must equal its source: 0 files lost, corrupted or
extra (a leftover temporary file counts as extra).

    compat/.venv/bin/python bench/reliability/kill.py                # 50 kills (CI)
    compat/.venv/bin/python bench/reliability/kill.py --kills 200 --ferry target/release/ferry

Prints one line with the figures; exits 1 unless all three are 0 and every task succeeded.
"""

from __future__ import annotations

import argparse
import hashlib
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
PART = ".ferry-part"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_corpus(root: Path, rng: random.Random, scale: float) -> dict[str, str]:
    """Small files in nested folders, medium ones, and two large ones; returns path -> sha256."""
    sums: dict[str, str] = {}

    def put(rel: str, size: int) -> None:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        data = rng.randbytes(size)
        p.write_bytes(data)
        sums[rel] = hashlib.sha256(data).hexdigest()

    for i in range(int(1500 * scale)):
        put(f"small/d{i % 30}/e{i % 7}/f{i}.bin", rng.randint(0, 16 << 10))
    for i in range(int(24 * scale)):
        put(f"mid/m{i}.bin", rng.randint(256 << 10, 4 << 20))
    put("large/l0.bin", int((40 << 20) * scale))
    put("large/l1.bin", int((72 << 20) * scale) + 12345)
    return sums


def digest(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


class Server:
    def __init__(self, binary: Path, work: Path, storage: Path) -> None:
        self.binary, self.work, self.storage = binary, work, storage
        self.data = work / "data"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        (work / "ferry.toml").write_text(
            f'storage_root = "{storage}"\n[transfer]\nretry_base_ms = 50\ninactive_retry_secs = 1\n')

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}
        env["FERRY_LOG"] = "warn"
        with open(self.work / "server.log", "ab") as log:
            self.proc = subprocess.Popen(
                [str(self.binary), "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir", str(self.data),
                 "--config", str(self.work / "ferry.toml")],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        self.starts += 1
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("ferry serve exited; see " + str(self.work / "server.log"))
            try:
                if requests.get(f"{self.url}/.well-known/openid-configuration", timeout=2).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise RuntimeError("ferry serve did not start")

    def kill9(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def admin(self) -> dict[str, str]:
        return json.loads((self.data / "admin-credentials.json").read_text())


class Campaign:
    def __init__(self, server: Server, src: Path, sums: dict[str, str], rng: random.Random) -> None:
        self.s, self.src, self.sums, self.rng = server, src, sums, rng
        self.tasks: list[tuple[str, str, Path | None]] = []  # (task id, kind, destination folder)
        self.corrupted: set[str] = set()
        # real path -> sha256 of every body ever PUT there: the name may hold any one of them, whole
        self.uploads: dict[str, set[str]] = {}
        self.http = requests.Session()
        self.token = ""
        self.collection = ""
        self.next_dst = 0

    def login(self) -> None:
        a = self.s.admin()
        r = self.http.post(f"{self.s.url}/v2/oauth2/token", auth=(a["client_id"], a["client_secret"]),
                           data={"grant_type": "client_credentials",
                                 "scope": f"{TRANSFER} https://auth.globus.org/scopes/{self.collection}/https"
                                 if self.collection else TRANSFER}, timeout=30)
        r.raise_for_status()
        body = r.json()
        self.token = body["access_token"]
        self.https = next((d["access_token"] for d in body.get("other_tokens", [])), "")
        if not self.collection:
            r = self.http.get(f"{self.s.url}/v0.10/endpoint_search", timeout=30, headers=self.h(), params={
                "filter_scope": "administered-by-me", "filter_entity_type": "GCSv5_mapped_collection"})
            self.collection = r.json()["DATA"][0]["id"]
            self.login()

    def h(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def submit_transfer(self) -> None:
        n = self.next_dst
        self.next_dst += 1
        dst = self.s.storage / f"dst{n}"
        body = {"DATA_TYPE": "transfer", "source_endpoint": self.collection, "destination_endpoint": self.collection,
                "verify_checksum": True, "label": f"kill campaign {n}",
                "DATA": [{"DATA_TYPE": "transfer_item", "source_path": "/src/", "destination_path": f"/dst{n}/",
                          "recursive": True}]}
        r = self.http.post(f"{self.s.url}/v0.10/transfer", json=body, headers=self.h(), timeout=60)
        r.raise_for_status()
        self.tasks.append((r.json()["task_id"], "transfer", dst))

    def submit_delete(self) -> None:
        """Deletes an earlier, finished destination (it must be gone at the end)."""
        done = [d for _, kind, d in self.tasks if kind == "transfer" and d is not None and d.exists()]
        if len(done) < 2:
            return
        victim = done[0]
        for i, (tid, kind, d) in enumerate(self.tasks):
            if d == victim and kind == "transfer":
                self.tasks[i] = (tid, "transfer-deleted", d)
        body = {"DATA_TYPE": "delete", "endpoint": self.collection, "recursive": True,
                "DATA": [{"DATA_TYPE": "delete_item", "path": f"/{victim.name}/"}]}
        r = self.http.post(f"{self.s.url}/v0.10/delete", json=body, headers=self.h(), timeout=60)
        r.raise_for_status()
        self.tasks.append((r.json()["task_id"], "delete", victim))

    def status(self, tid: str) -> str:
        r = self.http.get(f"{self.s.url}/v0.10/task/{tid}", headers=self.h(), timeout=30)
        return str(r.json().get("status"))

    def uploader(self, stop: threading.Event) -> None:
        """HTTPS PUTs of 1-8 MiB while the server may die at any moment."""
        (self.s.storage / "uploads").mkdir(exist_ok=True)
        i = 0
        while not stop.is_set():
            i += 1
            name = f"uploads/u{i % 40}.bin"
            data = self.rng.randbytes(self.rng.randint(1 << 20, 8 << 20))
            self.uploads.setdefault(name, set()).add(hashlib.sha256(data).hexdigest())
            try:
                r = requests.put(f"{self.s.url}/data/{self.collection}/{name}", data=data, timeout=30,
                                 headers={"Authorization": f"Bearer {self.https}"})
                if r.status_code >= 300:
                    time.sleep(0.05)
            except requests.RequestException:
                time.sleep(0.02)

    def check_names(self) -> None:
        """With the server dead: every real name under a destination holds a complete copy."""
        for _, kind, dst in self.tasks:
            if dst is None or kind != "transfer" or not dst.exists():
                continue
            for p in dst.rglob("*"):
                if p.is_file() and PART not in p.name:
                    rel = str(p.relative_to(dst))
                    if rel not in self.sums or digest(p) != self.sums[rel]:
                        self.corrupted.add(f"{dst.name}/{rel}")
        up = self.s.storage / "uploads"
        if up.exists():
            for p in up.iterdir():
                if p.is_file() and not p.name.startswith("."):
                    name = f"uploads/{p.name}"
                    if digest(p) not in self.uploads.get(name, set()):
                        self.corrupted.add(f"{name} ({p.stat().st_size} bytes: not a whole upload)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=50)
    ap.add_argument("--scale", type=float, default=1.0, help="corpus size factor (1.0: ~1,500 small files, "
                                                               "24 medium, 2 large, ~170 MB)")
    ap.add_argument("--ferry", default=os.environ.get("FERRY_BIN", str(REPO / "target" / "debug" / "ferry")))
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="ferry-kill-"))
    storage = work / "storage"
    sums = make_corpus(storage / "src", rng, args.scale)
    total = sum((storage / "src" / r).stat().st_size for r in sums)
    server = Server(Path(args.ferry), work, storage)
    c = Campaign(server, storage / "src", sums, rng)
    started = time.monotonic()
    ok = False
    try:
        server.start()
        c.login()
        c.submit_transfer()
        stop = threading.Event()
        up = threading.Thread(target=c.uploader, args=(stop,), daemon=True)
        up.start()
        kills = 0
        while kills < args.kills:
            time.sleep(rng.uniform(0.2, 1.6))
            server.kill9()
            kills += 1
            c.check_names()
            server.start()
            # Keep a task running: when the newest has ended, start another (and now and then a delete).
            try:
                if c.status(c.tasks[-1][0]) in ("SUCCEEDED", "FAILED"):
                    c.submit_transfer()
                    if kills % 5 == 0:
                        c.submit_delete()
            except (requests.RequestException, ValueError, KeyError):
                c.login()
        stop.set()
        up.join()
        # Let everything finish, then compare.
        deadline = time.monotonic() + 900
        statuses = {}
        for tid, kind, _ in c.tasks:
            while time.monotonic() < deadline:
                st = c.status(tid)
                if st in ("SUCCEEDED", "FAILED"):
                    break
                time.sleep(0.2)
            statuses[tid] = st
        server.kill9()
        c.check_names()
        lost, corrupted, extra = 0, set(c.corrupted), []
        for tid, kind, dst in c.tasks:
            if kind == "transfer" and dst is not None:
                have = {str(p.relative_to(dst)) for p in dst.rglob("*") if p.is_file()}
                lost += len(set(sums) - have)
                extra += [f"{dst.name}/{x}" for x in sorted(have - set(sums))]
                for rel in set(sums) & have:
                    if digest(dst / rel) != sums[rel]:
                        corrupted.add(f"{dst.name}/{rel}")
            if kind == "delete" and dst is not None and dst.exists():
                extra += [f"{dst.name} (deleted by a SUCCEEDED delete task, still there)"]
        extra += [f"uploads/{p.name}" for p in (storage / "uploads").iterdir() if p.name.startswith(".")]
        failed = [tid for tid, st in statuses.items() if st != "SUCCEEDED"]
        transfers = sum(1 for _, k, _ in c.tasks if k.startswith("transfer"))
        deletes = sum(1 for _, k, _ in c.tasks if k == "delete")
        print(f"kill campaign: {kills} SIGKILLs over {transfers} transfer and {deletes} delete tasks "
              f"({len(sums)} files, {total / 1e6:.0f} MB per copy) and HTTPS uploads: {lost} lost, "
              f"{len(corrupted)} corrupted, {len(extra)} extra; {len(statuses) - len(failed)}/{len(statuses)} "
              f"tasks SUCCEEDED  [{time.monotonic() - started:.0f} s, seed {args.seed}]", flush=True)
        for x in sorted(corrupted)[:10] + extra[:10]:
            print(f"    {x}")
        ok = lost == 0 and not corrupted and not extra and not failed
        return 0 if ok else 1
    finally:
        server.kill9()
        if args.keep or not ok:
            print(f"work folder: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
