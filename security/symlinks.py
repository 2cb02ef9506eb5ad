"""The symlink swap race (CVE-2022-21658's pattern): while a thread keeps replacing a folder inside the shared
collection with a symlink to a folder outside it and back, the collaborator lists, reads, uploads, deletes,
renames and creates through it, and runs delete and transfer tasks through it. The outside folder never
changes, and no response and no copy shows anything from it."""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import threading
import time

from world import TRANSFER, World, collection_scope


def run(w: World) -> tuple[str, int, list[str]]:
    rounds = 150 if w.quick else 1500
    race = w.storage / "share" / "race"
    race.mkdir(exist_ok=True)
    real = race / "victim"
    parked = race / ".parked"

    def restock(d: os.PathLike) -> None:
        os.makedirs(d, exist_ok=True)
        for name in ("x.txt", "y.txt"):
            p = os.path.join(d, name)
            if not os.path.exists(p):
                with open(p, "w") as f:
                    f.write("inside\n")

    restock(real)
    w.outside_digests = w.digests()
    stop = threading.Event()
    swaps = 0

    def swapper() -> None:
        nonlocal swaps
        while not stop.is_set():
            try:
                os.rename(real, parked)
                os.symlink(str(w.outside), real)
                time.sleep(0.0005)
                os.unlink(real)
                os.rename(parked, real)
                restock(real)
                swaps += 1
            except OSError:
                # An operation moved or removed something; put the folder back and go on.
                if os.path.islink(real):
                    os.unlink(real)
                if os.path.isdir(parked) and not os.path.exists(real):
                    os.rename(parked, real)
                restock(real)
            time.sleep(0.0005)

    tok = w.token(w.alice, TRANSFER)
    https = w.token(w.alice, collection_scope(w.guest, "https"))
    g = w.guest
    base = f"/v0.10/operation/endpoint/{g}"
    leaks: list[str] = []
    tasks: list[str] = []
    lock = threading.Lock()

    def look(what: str, body: str | bytes) -> None:
        if w.leaked(body):
            with lock:
                leaks.append(f"{what}: the response shows the outside folder")

    def one(i: int) -> None:
        look("GET", w.raw("GET", f"/data/{g}/race/victim/x.txt", https)[1])
        look("PUT", w.raw("PUT", f"/data/{g}/race/victim/new-{i}.txt", https, b"new\n")[1])
        look("DELETE", w.raw("DELETE", f"/data/{g}/race/victim/y.txt", https)[1])
        look("ls", w.call("GET", f"{base}/ls", tok, params={"path": "/race/victim/"})[1])
        look("stat", w.call("GET", f"{base}/stat", tok, params={"path": "/race/victim/x.txt"})[1])
        look("mkdir", w.call("POST", f"{base}/mkdir", tok, {"DATA_TYPE": "mkdir", "path": f"/race/victim/d{i}"})[1])
        st, text = w.call("POST", f"{base}/rename", tok, {"DATA_TYPE": "rename", "old_path": "/race/victim/x.txt",
                                                          "new_path": f"/race/moved-{i}.txt"})
        look("rename", text)
        if i % 10 == 0:
            for doc, kind in (
                ({"DATA_TYPE": "delete", "endpoint": g, "recursive": True, "ignore_missing": True,
                  "DATA": [{"DATA_TYPE": "delete_item", "path": "/race/victim/"}]}, "delete"),
                ({"DATA_TYPE": "transfer", "source_endpoint": g, "destination_endpoint": g,
                  "DATA": [{"DATA_TYPE": "transfer_item", "source_path": "/race/victim/",
                            "destination_path": f"/tx/race-{i}/", "recursive": True}]}, "transfer"),
            ):
                st, text = w.call("POST", f"/v0.10/{kind}", tok, doc)
                look(kind, text)
                if st < 300:
                    with lock:
                        tasks.append(json.loads(text)["task_id"])

    (w.storage / "share" / "tx").mkdir(exist_ok=True)
    t = threading.Thread(target=swapper, daemon=True)
    t.start()
    try:
        with cf.ThreadPoolExecutor(3) as pool:
            list(pool.map(one, range(rounds)))
        deadline = time.monotonic() + 300
        for tid in tasks:
            while time.monotonic() < deadline:
                st, text = w.call("GET", f"/v0.10/task/{tid}", tok)
                if json.loads(text).get("status") in ("SUCCEEDED", "FAILED"):
                    break
                time.sleep(0.05)
            else:
                w.call("POST", f"/v0.10/task/{tid}/cancel", tok)
            look("task events", w.call("GET", f"/v0.10/task/{tid}/event_list", tok)[1])
    finally:
        stop.set()
        t.join()
    changed = w.outside_changed()
    escapes = len(leaks) + (1 if changed else 0)
    notes = leaks[:10] + ([f"outside trees changed: {changed}"] if changed else [])
    for p in (w.storage / "share" / "tx").rglob("*"):
        if p.is_file() and w.leaked(p.read_bytes()):
            escapes += 1
            notes.append(f"a task copied an outside file: {p}")
    return (f"symlink swap race: {rounds} rounds x 7 operations + {len(tasks)} tasks over {swaps} swaps, "
            f"{escapes} escapes", escapes, notes)
