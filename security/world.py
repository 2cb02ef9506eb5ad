"""The world every probe of the security suite runs in: one real `ferry serve` (debug logging, its log kept
for the secret search), a storage root with canaries beside it, three identities and their tokens.

Layout on disk (all under one temporary folder):

    root/storage/                  the gateway's folder (the mapped collection's root)
        share/                     shared as a guest collection; alice has rw on it
            a.txt, dir/b.txt
            link-out -> ../../outside          symlinks that lead out, and one that stays inside
            abs-out -> <root>/outside
            etc-out -> /etc/passwd
            link-in -> dir
        private/p.txt              in the mapped collection, not shared
    root/outside/                  canaries: must never be read, written or listed through Ferry
    root/storage-evil/             a sibling whose name has the root's as a prefix
    data/                          Ferry's data directory (database, keys): outside the root too
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import secrets
import sys
import threading
import typing as t
import urllib.parse
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "compat"))

from ferry_harness import FerryServer, browser_login  # noqa: E402

TRANSFER = "urn:globus:auth:scope:transfer.api.globus.org:all"
GROUPS = "urn:globus:auth:scope:groups.api.globus.org:all"
OPENID = "openid profile email"
CALLBACK = "https://app.example/cb"


def manage_scope(endpoint: str) -> str:
    return f"urn:globus:auth:scope:{endpoint}:manage_collections"


def collection_scope(collection: str, name: str) -> str:
    return f"https://auth.globus.org/scopes/{collection}/{name}"


class Secrets:
    """Every secret the run has seen, to be searched for in the server's log at the end."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.values: set[str] = set()

    def add(self, *values: t.Any) -> None:
        with self._lock:
            for v in values:
                if isinstance(v, str) and len(v) >= 8:
                    self.values.add(v)

    def add_token_response(self, body: t.Any) -> None:
        """Access, refresh and id tokens of a token response (also the other_tokens and dependent lists)."""
        docs = body if isinstance(body, list) else [body] + list(body.get("other_tokens", []) or [])
        for d in docs:
            if isinstance(d, dict):
                self.add(d.get("access_token"), d.get("refresh_token"), d.get("id_token"))


class Identity(t.NamedTuple):
    """A principal of the suite and how it authenticates: a person's tokens come from the code flow through
    the suite's own client; an application's from client credentials."""

    label: str
    id: str
    username: str
    client_id: str | None = None
    client_secret: str | None = None
    password: str | None = None


def canary_token() -> str:
    return "CANARY-" + secrets.token_hex(12)


def tree_digest(path: Path) -> str:
    """A digest of a folder tree: names, link targets, sizes and contents (never following links)."""
    h = hashlib.sha256()
    if not os.path.lexists(path):
        return "absent"
    for dirpath, dirnames, filenames in os.walk(path, followlinks=False):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            p = Path(dirpath) / name
            h.update(str(p.relative_to(path)).encode("utf-8", "surrogateescape"))
            if p.is_symlink():
                h.update(b"L" + os.readlink(p).encode("utf-8", "surrogateescape"))
            elif p.is_file():
                h.update(b"F" + p.read_bytes())
            else:
                h.update(b"D")
    return h.hexdigest()


class World:
    def __init__(self, workdir: Path, quick: bool) -> None:
        self.workdir = workdir
        self.quick = quick
        self.secrets = Secrets()
        self._tokens: dict[tuple[str, str], str] = {}
        self._tokens_lock = threading.Lock()
        # Names the probes may use in their paths; contents and a hidden name they never send, so that an
        # error message echoing a path is not mistaken for a leak.
        self.canary = canary_token()
        self.content = canary_token()
        self.hidden = canary_token()
        self.private_content = canary_token()
        self.root = workdir / "root"
        self.storage = self.root / "storage"
        self.outside = self.root / "outside"
        self.evil = self.root / "storage-evil"
        # A second gateway and mapped collection where the administrator's probes may create and delete
        # anything without disturbing the shared folder.
        self.sandbox = self.root / "sandbox"
        self._make_tree()
        self.server = FerryServer(
            workdir / "server",
            env={"FERRY_LOG": "debug,hyper=info,h2=info,rustls=info"},
            config=f'storage_root = "{self.storage}"\n[transfer]\nretry_base_ms = 50\n[metrics]\nenabled = true\n',
        )
        self.server.start()
        try:
            self._set_up()
        except BaseException:
            # A world that could not be built must not leave its server running.
            self.server.stop()
            raise

    def _set_up(self) -> None:
        self.url = self.server.base_url
        self.http = requests.Session()
        admin = self.server.admin
        self.secrets.add(admin.get("client_secret"), admin.get("password"))
        self.admin = Identity(
            "admin-app", admin["client_id"], f"{admin['client_id']}@clients",
            client_id=admin["client_id"], client_secret=admin["client_secret"],
        )
        info = self.http.get(f"{self.url}/api/info").json()
        self.endpoint = str((info.get("data") or [info])[0].get("endpoint_id") or info.get("endpoint_id"))
        # The suite's own client: the code flow of the people, and the registered redirect of the redirect probe.
        c = self.server.create_client("security suite portal", redirect_uris=[CALLBACK, "http://127.0.0.1/cb"])
        self.portal = (c["client_id"], c["client_secret"])
        self.secrets.add(c["client_secret"])
        self.alice = self._person("alice")
        self.mallory = self._person("mallory")
        e = self.server.create_client("eve's app")
        self.secrets.add(e["client_secret"])
        self.eve = Identity("eve-app", e["client_id"], "", client_id=e["client_id"], client_secret=e["client_secret"])
        self.mapped = self._mapped_collection()
        self.guest = self._guest_collection()
        self.sandbox_collection = self._sandbox_collection()
        rule = self.call("POST", f"/v0.10/endpoint/{self.guest}/access", self.token(self.admin, TRANSFER), {
            "DATA_TYPE": "access", "principal_type": "identity", "principal": self.alice.id,
            "path": "/", "permissions": "rw",
        })
        assert rule[0] in (200, 201), rule
        self.outside_digests = self.digests()

    # -- the tree ------------------------------------------------------------------------------------------

    def _make_tree(self) -> None:
        share = self.storage / "share"
        (share / "dir").mkdir(parents=True)
        (share / "a.txt").write_text("inside a\n")
        (share / "dir" / "b.txt").write_text("inside b\n")
        (self.storage / "private").mkdir()
        (self.storage / "private" / "p.txt").write_text(self.private_content + "\n")
        (self.storage / "private" / f"{self.private_content}.txt").write_text(self.private_content + "\n")
        self.outside.mkdir(parents=True)
        (self.outside / f"{self.canary}.txt").write_text(self.content + "\n")
        (self.outside / f"{self.hidden}.txt").write_text(self.content + "\n")
        (self.outside / "sub").mkdir()
        (self.outside / "sub" / "secret.txt").write_text(self.content + " sub\n")
        self.evil.mkdir()
        (self.evil / f"{self.canary}-evil.txt").write_text(self.content + " evil\n")
        (self.evil / f"{self.hidden}-evil.txt").write_text(self.content + " evil\n")
        os.symlink("../../outside", share / "link-out")
        os.symlink(str(self.outside), share / "abs-out")
        os.symlink("/etc/passwd", share / "etc-out")
        os.symlink("dir", share / "link-in")
        os.symlink("../outside", self.storage / "root-link-out")
        (self.sandbox / "dir").mkdir(parents=True)
        (self.sandbox / "a.txt").write_text("sandbox a\n")
        (self.sandbox / "dir" / "b.txt").write_text("sandbox b\n")
        os.symlink("../outside", self.sandbox / "link-out")
        os.symlink(str(self.outside), self.sandbox / "abs-out")
        os.symlink("dir", self.sandbox / "link-in")

    def digests(self) -> dict[str, str]:
        """What must never change through Ferry: the trees outside the root (and the data directory's
        listing, minus the files the server itself rewrites)."""
        return {
            "outside": tree_digest(self.outside),
            "storage-evil": tree_digest(self.evil),
            "storage-private": tree_digest(self.storage / "private"),
            "root-entries": ",".join(sorted(p.name for p in self.root.iterdir())),
        }

    def outside_changed(self) -> list[str]:
        now = self.digests()
        return [k for k, v in now.items() if self.outside_digests.get(k) != v]

    def leaked(self, text: str | bytes, *, guest: bool = True) -> bool:
        """Whether a response shows anything from outside the collection: a canary's content, a name no probe
        ever sends, or /etc/passwd. On the guest collection, the mapped collection's unshared folder is outside
        too."""
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        marks = [self.content, self.hidden, "root:x:0:0"]
        if guest:
            marks.append(self.private_content)
        return any(m in text for m in marks)

    # -- identities and tokens ---------------------------------------------------------------------------------

    def _person(self, name: str) -> Identity:
        password = "pw-" + secrets.token_urlsafe(12)
        made = self.server.create_identity(name, password=password, email=f"{name}@example.org")
        self.secrets.add(password)
        return Identity(name, str(made["id"]), str(made["username"]), password=password)

    def person_tokens(self, who: Identity, scopes: str, *, offline: bool = False) -> dict[str, t.Any]:
        """The code flow through the login and consent pages, as a browser would; returns the token response."""
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        state = secrets.token_urlsafe(16)
        q = {
            "client_id": self.portal[0], "redirect_uri": CALLBACK, "response_type": "code", "scope": scopes,
            "state": state, "code_challenge": challenge, "code_challenge_method": "S256",
        }
        if offline:
            q["access_type"] = "offline"
        result = browser_login(f"{self.url}/v2/oauth2/authorize?{urllib.parse.urlencode(q)}", who.username, who.password or "")
        self.secrets.add(result.code, verifier)
        r = self.http.post(f"{self.url}/v2/oauth2/token", auth=self.portal, data={
            "grant_type": "authorization_code", "code": result.code, "redirect_uri": CALLBACK,
            "code_verifier": verifier,
        })
        body = r.json()
        assert r.status_code == 200, (r.status_code, body)
        self.secrets.add_token_response(body)
        return body

    def app_tokens(self, who: Identity, scopes: str) -> tuple[int, t.Any]:
        r = self.http.post(f"{self.url}/v2/oauth2/token", auth=(who.client_id or "", who.client_secret or ""),
                           data={"grant_type": "client_credentials", "scope": scopes})
        body = r.json() if r.headers.get("content-type", "").startswith("application/json") else r.text
        if r.status_code == 200:
            self.secrets.add_token_response(body)
        return r.status_code, body

    def token(self, who: Identity, scope: str) -> str:
        """An access token of `who` for one scope (cached)."""
        key = (who.label, scope)
        with self._tokens_lock:
            if key in self._tokens:
                return self._tokens[key]
        if who.client_id:
            st, body = self.app_tokens(who, scope)
            assert st == 200, (who.label, scope, st, body)
        else:
            body = self.person_tokens(who, scope)
        docs = [body] + list(body.get("other_tokens", []))
        tok = next(d["access_token"] for d in docs if scope.split()[0] in d["scope"].split())
        with self._tokens_lock:
            self._tokens[key] = tok
        return tok

    # -- HTTP ------------------------------------------------------------------------------------------------------

    def call(self, method: str, path: str, token: str | None, body: t.Any = None, *,
             params: dict[str, str] | None = None) -> tuple[int, str]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body)
        r = self.http.request(method, self.url + path, headers=headers, params=params, data=data,
                              timeout=60, allow_redirects=False)
        return r.status_code, r.text

    def raw(self, method: str, raw_path: str, token: str | None, body: bytes | None = None) -> tuple[int, bytes]:
        """A request whose path goes on the wire exactly as given (no client-side normalisation)."""
        u = urllib.parse.urlsplit(self.url)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
        try:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            if body is not None:
                headers["Content-Length"] = str(len(body))
            conn.putrequest(method, raw_path, skip_accept_encoding=True)
            for k, v in headers.items():
                conn.putheader(k, v)
            conn.endheaders(body)
            resp = conn.getresponse()
            return resp.status, resp.read()
        except (http.client.HTTPException, OSError) as e:
            return 0, str(e).encode()
        finally:
            conn.close()

    # -- collections -------------------------------------------------------------------------------------------

    def _mapped_collection(self) -> str:
        tok = self.token(self.admin, TRANSFER)
        st, text = self.call("GET", "/v0.10/endpoint_search", tok,
                             params={"filter_scope": "administered-by-me", "filter_entity_type": "GCSv5_mapped_collection"})
        assert st == 200, text
        return json.loads(text)["DATA"][0]["id"]

    def _guest_collection(self) -> str:
        tok = self.token(self.admin, TRANSFER)
        st, text = self.call("POST", "/v0.10/shared_endpoint", tok, {
            "DATA_TYPE": "shared_endpoint", "host_endpoint": self.mapped, "host_path": "/share/",
            "display_name": "security suite share",
        })
        assert st in (200, 201), text
        return json.loads(text)["id"]

    def _sandbox_collection(self) -> str:
        """A copy of the default gateway over the sandbox folder, and a mapped collection on it."""
        manage = self.token(self.admin, manage_scope(self.endpoint))
        st, text = self.call("GET", "/api/storage_gateways", manage)
        assert st == 200, text
        gw = json.loads(text)["data"][0]
        for k in ("id", "high_assurance", "authentication_timeout_mins"):
            gw.pop(k, None)
        gw.update({"display_name": "security sandbox", "root": str(self.sandbox)})
        st, text = self.call("POST", "/api/storage_gateways", manage, gw)
        assert st in (200, 201), text
        gateway = json.loads(text)["data"][0]["id"]
        st, text = self.call("POST", "/api/collections", manage, {
            "DATA_TYPE": "collection#1.10.0", "collection_type": "mapped", "storage_gateway_id": gateway,
            "collection_base_path": "/", "display_name": "security sandbox", "allow_guest_collections": True,
        })
        assert st in (200, 201), text
        return str(json.loads(text)["data"][0]["id"])

    def stop(self) -> None:
        self.server.stop()

    def log_text(self) -> str:
        return self.server.log_path.read_text(errors="replace")
