"""Path traversal over every path sink: ≥2,000 variants (raw and percent-encoded `../`, double encoding,
overlong UTF-8, backslashes, drive letters, NUL, trailing space or dot, absolute and /proc paths, symlinks that
lead out) thrown at ls, stat, mkdir, rename (both sides), HTTPS GET/PUT/DELETE, transfer source and
destination, delete tasks, ACL rule paths, guest-collection base paths and default directories, on a guest
collection (as a collaborator with rw on it) and on the mapped collection (as the administrator).

An escape is a response that shows a canary (a name or content from outside the collection's root, or
/etc/passwd), or any change to the trees outside the root."""

from __future__ import annotations

import concurrent.futures as cf
import json
import random
import threading
import time
import urllib.parse

from world import TRANSFER, World, collection_scope, manage_scope

CLIMBS = [
    "../", "..\\", "..%2f", "..%2F", "%2e%2e/", "%2e%2e%2f", "%2E%2E%2F", ".%2e/", "%2e./", "..%252f",
    "%252e%252e%252f", "..%c0%af", "..%c1%9c", "..%e0%80%af", "..%u2215", "..\u2215", "..\uff0f",
    "\uff0e\uff0e/", "....//", "...//", "..;/", "..%00/", "..%5c", "%2e%2e%5c", "..%255c", ".../", "..././",
    "../\x00", "%2e%2e%c0%af", "..%ef%bc%8f",
]
TARGETS = [
    "outside/{c}.txt", "outside/sub/secret.txt", "outside/", "outside", "private/", "private/{c}-private.txt",
    "storage-evil/", "storage-evil/{c}-evil.txt", "etc/passwd", "proc/self/root/etc/passwd",
]
PREFIXES = ["/", "", "/dir/", "/./", "//", "/link-in/", "/dir/../", "/a.txt/"]
SPECIAL = [
    "/etc/passwd", "//etc/passwd", "///etc/passwd", "/proc/self/root/etc/passwd", "/proc/self/fd/3",
    "/proc/self/fd/0", "/proc/self/cwd/", "/proc/self/environ", "/proc/1/root/", "/dev/zero", "c:/windows/win.ini",
    "C:\\Windows\\win.ini", "c:", "\\\\server\\share", "\\..\\..\\outside", "file ", "file.", "a.txt ", "a.txt.",
    "a.txt::$DATA", "a.txt\x00.png", "a.txt%00.png", "/link-out/{c}.txt", "/link-out/", "/link-out",
    "/link-out/sub/secret.txt", "/abs-out/{c}.txt", "/abs-out/", "/etc-out", "/link-out/../..",
    "/link-in/../../private/", "/link-in/../../outside/{c}.txt", "/dir/../../outside/", "~/../outside/",
    "~/../../outside/{c}.txt", "/~/../../outside/", "$HOME/../outside", "/%2e%2e/%2e%2e/outside/",
    "/%252e%252e/outside/", "/.%00./outside/", "/..\u0000/outside/", "/../../../../../../../../etc/passwd",
    "/" + "../" * 64 + "etc/passwd", "/" + "a/" * 300, "/" + "x" * 5000, "", " ", "/ ", ".", "..", "/..",
    "/...", "/....", "/root-link-out/{c}.txt", "/share/../outside/",
]


def corpus(canary: str, size: int) -> list[str]:
    everything = [p + c * d + t for p in PREFIXES for c in CLIMBS for d in range(1, 7) for t in TARGETS]
    rng = random.Random(20261203)
    rng.shuffle(everything)
    picked = [s.format(c=canary) for s in SPECIAL] + [s.format(c=canary) for s in everything[:size]]
    return list(dict.fromkeys(picked))


class Probe:
    def __init__(self, w: World) -> None:
        self.w = w
        self.lock = threading.Lock()
        self.escapes: list[str] = []
        self.requests = 0
        self.alice_t = w.token(w.alice, TRANSFER)
        self.alice_https = w.token(w.alice, collection_scope(w.guest, "https"))
        self.admin_t = w.token(w.admin, TRANSFER)
        self.admin_https = w.token(w.admin, collection_scope(w.sandbox_collection, "https"))
        self.admin_manage = w.token(w.admin, manage_scope(w.endpoint))
        self.tasks: list[tuple[str, str, str]] = []
        self.created: list[tuple[str, str]] = []

    def record(self, sink: str, variant: str, status: int, body: str | bytes, guest: bool) -> None:
        changed = self.w.outside_changed()
        with self.lock:
            self.requests += 1
            if self.w.leaked(body):
                self.escapes.append(f"{sink} {variant!r}: the response shows what is outside ({status})")
            if changed:
                self.escapes.append(f"{sink} {variant!r}: changed {changed}")
                self.w.outside_digests = self.w.digests()

    # -- the sinks: each sends one variant and records the answer --------------------------------------------

    def files_op(self, guest: bool, variant: str) -> None:
        coll, tok = (self.w.guest, self.alice_t) if guest else (self.w.sandbox_collection, self.admin_t)
        base = f"/v0.10/operation/endpoint/{coll}"
        for sink, method, path, body, params in (
            ("ls", "GET", f"{base}/ls", None, {"path": variant}),
            ("stat", "GET", f"{base}/stat", None, {"path": variant}),
            ("mkdir", "POST", f"{base}/mkdir", {"DATA_TYPE": "mkdir", "path": variant}, None),
            ("rename-src", "POST", f"{base}/rename",
             {"DATA_TYPE": "rename", "old_path": variant, "new_path": "/renamed-probe"}, None),
            ("rename-dst", "POST", f"{base}/rename",
             {"DATA_TYPE": "rename", "old_path": self.victim(guest), "new_path": variant}, None),
        ):
            st, text = self.w.call(method, path, tok, body, params=params)
            self.record(f"{sink}@{'guest' if guest else 'mapped'}", variant, st, text, guest)
            if sink == "rename-dst" and st == 200:
                self.victim(guest, recreate=True)

    def victim(self, guest: bool, recreate: bool = False) -> str:
        """A file each rename-destination probe moves (made again when a rename inside succeeded)."""
        name = "victim.txt"
        where = self.w.storage / "share" if guest else self.w.sandbox
        if recreate or not (where / name).exists():
            (where / name).write_text("victim\n")
        return "/" + name

    def https(self, guest: bool, variant: str) -> None:
        coll, tok = (self.w.guest, self.alice_https) if guest else (self.w.sandbox_collection, self.admin_https)
        raw = variant if variant.startswith("/") else "/" + variant
        # The path goes on the wire as written: only bytes a request line cannot carry are escaped.
        wire = urllib.parse.quote(raw, safe="/%:@!$&'()*+,;=~.\\-_[]")
        for method, body in (("GET", None), ("PUT", b"probe"), ("DELETE", None)):
            st, text = self.w.raw(method, f"/data/{coll}{wire}", tok, body)
            self.record(f"https-{method}@{'guest' if guest else 'mapped'}", variant, st, text, guest)

    def task(self, guest: bool, variant: str, n: int) -> None:
        coll, tok = (self.w.guest, self.alice_t) if guest else (self.w.sandbox_collection, self.admin_t)
        where = "guest" if guest else "mapped"
        here = "/tx" if guest else "/mtx"
        for sink, doc in (
            ("transfer-src", {"source_path": variant, "destination_path": f"{here}/s{n}", "recursive": False}),
            ("transfer-dst", {"source_path": "/a.txt", "destination_path": variant,
                              "recursive": False}),
        ):
            body = {"DATA_TYPE": "transfer", "source_endpoint": coll, "destination_endpoint": coll,
                    "DATA": [{"DATA_TYPE": "transfer_item", **doc}], "deadline": "2099-01-01T00:00:00Z"}
            st, text = self.w.call("POST", "/v0.10/transfer", tok, body)
            self.record(f"{sink}@{where}", variant, st, text, guest)
            if st < 300:
                with self.lock:
                    self.tasks.append((tok, json.loads(text)["task_id"], f"{sink}@{where} {variant!r}"))
        body = {"DATA_TYPE": "delete", "endpoint": coll, "DATA": [{"DATA_TYPE": "delete_item", "path": variant}],
                "recursive": True, "ignore_missing": True, "deadline": "2099-01-01T00:00:00Z"}
        st, text = self.w.call("POST", "/v0.10/delete", tok, body)
        self.record(f"delete-task@{where}", variant, st, text, guest)
        if st < 300:
            with self.lock:
                self.tasks.append((tok, json.loads(text)["task_id"], f"delete-task@{where} {variant!r}"))

    def admin_paths(self, variant: str) -> None:
        """Paths stored in documents: an ACL rule, a guest collection's base path, a default directory."""
        st, text = self.w.call("POST", f"/v0.10/endpoint/{self.w.guest}/access", self.admin_t, {
            "DATA_TYPE": "access", "principal_type": "identity", "principal": self.w.mallory.id,
            "path": variant, "permissions": "r"})
        self.record("acl-path", variant, st, text, True)
        if st < 300:
            doc = json.loads(text)
            rid = doc.get("access_id") or doc.get("id")
            st2, stored = self.w.call("GET", f"/v0.10/endpoint/{self.w.guest}/access/{rid}", self.admin_t)
            path = str(json.loads(stored).get("path", "")) if st2 == 200 else ""
            if ".." in path.split("/") or not path.startswith("/") or "\x00" in path:
                with self.lock:
                    self.escapes.append(f"acl-path {variant!r}: stored as {path!r}")
            self.w.call("DELETE", f"/v0.10/endpoint/{self.w.guest}/access/{rid}", self.admin_t)
        st, text = self.w.call("POST", "/v0.10/shared_endpoint", self.admin_t, {
            "DATA_TYPE": "shared_endpoint", "host_endpoint": self.w.sandbox_collection, "host_path": variant,
            "display_name": "probe"})
        self.record("guest-base-path", variant, st, text, False)
        if st < 300:
            gid = json.loads(text)["id"]
            st2, listing = self.w.call("GET", f"/v0.10/operation/endpoint/{gid}/ls", self.admin_t,
                                       params={"path": "/"})
            self.record("guest-base-path(ls)", variant, st2, listing, False)
            self.w.call("DELETE", f"/v0.10/endpoint/{gid}", self.admin_t)
        st, text = self.w.call("PATCH", f"/api/collections/{self.w.guest}", self.admin_manage,
                               {"DATA_TYPE": "collection#1.10.0", "default_directory": variant})
        self.record("default-directory", variant, st, text, True)
        if st < 300:
            st2, listing = self.w.call("GET", f"/v0.10/operation/endpoint/{self.w.guest}/ls", self.alice_t,
                                       params={"path": "~"})
            self.record("default-directory(ls ~)", variant, st2, listing, True)

    def settle_tasks(self) -> None:
        """Waits for every accepted task to end, then looks for what they may have copied in."""
        deadline = time.monotonic() + 600
        for tok, tid, what in self.tasks:
            while time.monotonic() < deadline:
                st, text = self.w.call("GET", f"/v0.10/task/{tid}", tok)
                status = json.loads(text).get("status") if st == 200 else "?"
                if status in ("SUCCEEDED", "FAILED", "INACTIVE"):
                    break
                time.sleep(0.05)
            st, events = self.w.call("GET", f"/v0.10/task/{tid}/event_list", tok)
            self.record(what + " (events)", "", st, events, what.endswith("guest"))
            if status not in ("FAILED", "INACTIVE"):
                self.w.call("POST", f"/v0.10/task/{tid}/cancel", tok)
        for p in [*self.w.storage.rglob("*"), *self.w.sandbox.rglob("*")]:
            if p.is_file() and not p.is_symlink():
                data = p.read_bytes()
                in_private = p.parent == self.w.storage / "private"
                if self.w.content.encode() in data or (not in_private and self.w.private_content.encode() in data):
                    self.escapes.append(f"a canary was copied into the collection: {p}")


def run(w: World) -> tuple[str, int, list[str]]:
    size = 2000
    variants = corpus(w.canary, size)
    (w.storage / "share" / "tx").mkdir(exist_ok=True)
    (w.sandbox / "mtx").mkdir(exist_ok=True)
    (w.storage / "private" / f"{w.canary}-private.txt").write_text(w.private_content + "\n")
    w.outside_digests = w.digests()
    p = Probe(w)
    jobs = []
    # Every variant on the guest collection; on the mapped collection all of them in the long run, a
    # deterministic sample of 300 otherwise (the sinks' code is the same, only the guest layer differs).
    on_mapped = set(variants if not w.quick else variants[:: max(1, len(variants) // 300)])
    with cf.ThreadPoolExecutor(4) as pool:
        for n, v in enumerate(variants):
            for guest in (True, False) if v in on_mapped else (True,):
                jobs.append(pool.submit(p.files_op, guest, v))
                jobs.append(pool.submit(p.https, guest, v))
                jobs.append(pool.submit(p.task, guest, v, n))
            jobs.append(pool.submit(p.admin_paths, v))
        for j in jobs:
            j.result()
    p.settle_tasks()
    sinks = 5 + 3 + 3  # file operations, HTTPS methods, task sinks
    n = len(variants)
    return (f"path traversal: {n} variants x {sinks} sinks on a guest collection ({len(on_mapped)} on a mapped "
            f"one) + 3 stored-path sinks "
            f"({p.requests} requests), {len(p.escapes)} escapes", len(p.escapes), p.escapes[:15])
