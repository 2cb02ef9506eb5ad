"""The `ferry` user's file commands against a running server: `ls`, `stat`, `mkdir`, `rename` (Transfer API),
`put` and `get` over the HTTPS door (a few MiB, compared byte for byte), `rm`; a failed or interrupted download
never leaves a file under its real name, and `--resume` completes an interrupted one; a person's login gets a
collection's HTTPS token only with `ferry login --collection`."""

from __future__ import annotations

import http.server
import json
import secrets
import socket
import threading
import typing as t
from pathlib import Path

import pytest
import requests

from ferry_harness import (
    CommandResult,
    FerryServer,
    ferry_env,
    ferry_login,
    new_person,
    run,
    start_server,
    stop_server,
)

Ferry = t.Callable[..., CommandResult]


def ok(result: CommandResult) -> CommandResult:
    assert result.returncode == 0, result.describe()
    return result


def fails(result: CommandResult, *needles: str) -> CommandResult:
    assert result.returncode != 0, result.describe()
    for n in needles:
        assert n in result.stderr, f"{n!r} not in stderr\n{result.describe()}"
    return result


def cli_env(home: Path) -> dict[str, str]:
    env = ferry_env()
    env["XDG_CONFIG_HOME"] = str(home)
    return env


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[FerryServer]:
    s = start_server(tmp_path_factory.mktemp("ferry-files"))
    try:
        yield s
    finally:
        stop_server(s)


@pytest.fixture(scope="module")
def ferry_cli(server: FerryServer, tmp_path_factory: pytest.TempPathFactory) -> Ferry:
    """`ferry ARGS` as the administrator's client (no login stored in its config folder)."""
    home = tmp_path_factory.mktemp("files-cli-home")

    def go(*args: str, cwd: Path | None = None) -> CommandResult:
        argv = [str(server.binary), *args, "--data-dir", str(server.data_dir)]
        return run(argv, env=cli_env(home), cwd=cwd)

    return go


@pytest.fixture(scope="module")
def storage(server: FerryServer) -> Path:
    """The guest collection's folder on disk."""
    root = server.data_dir / "storage" / "files"
    root.mkdir(parents=True)
    return root


@pytest.fixture(scope="module")
def guest(ferry_cli: Ferry, storage: Path) -> str:
    mapped = ok(ferry_cli("collection", "list", "--filter", "mapped-collections", "--format", "json")).json()
    assert len(mapped) == 1, mapped
    out = ok(ferry_cli("collection", "create-guest", mapped[0]["id"], "/files/", "Files", "--format", "json"))
    return t.cast(str, out.json()["id"])


def test_paths_are_checked_before_any_request(ferry_cli: Ferry, guest: str) -> None:
    fails(ferry_cli("ls", f"{guest}:relative/x"), "must start with /")
    fails(ferry_cli("ls", "not-a-collection:/x"), "not a collection id")
    fails(ferry_cli("mkdir", guest), "name a path")
    fails(ferry_cli("rm", guest), "name a path")
    fails(ferry_cli("get", f"{guest}:/a/../b"), ". or ..")


def test_mkdir_ls_stat_rename(ferry_cli: Ferry, guest: str, storage: Path) -> None:
    ok(ferry_cli("mkdir", f"{guest}:/docs"))
    assert (storage / "docs").is_dir()
    fails(ferry_cli("mkdir", f"{guest}:/docs"), "Exists")
    fails(ferry_cli("mkdir", f"{guest}:/no/such/parent"), "404")
    (storage / "docs" / "a.txt").write_text("alpha\n")
    (storage / "docs" / "b.txt").write_text("bravo\n")
    (storage / "docs" / "c.csv").write_text("x,y\n")
    (storage / "docs" / ".hidden").write_text("h")

    names = ok(ferry_cli("ls", f"{guest}:/docs")).stdout.split()
    assert names == ["a.txt", "b.txt", "c.csv"], names
    assert ".hidden" in ok(ferry_cli("ls", "-a", f"{guest}:/docs/")).stdout.split()
    assert "docs/" in ok(ferry_cli("ls", guest)).stdout.split()
    assert ok(ferry_cli("ls", f"{guest}:/docs", "--filter", "*.txt")).stdout.split() == ["a.txt", "b.txt"]
    assert ok(ferry_cli("ls", f"{guest}:/docs", "--filter", "=c.csv")).stdout.split() == ["c.csv"]
    assert len(ok(ferry_cli("ls", f"{guest}:/docs", "--limit", "2")).stdout.split()) == 2

    doc = ok(ferry_cli("ls", f"{guest}:/docs", "--format", "json")).json()
    assert doc["DATA_TYPE"] == "file_list" and doc["path"] == "/docs/"
    assert {f["name"]: f["size"] for f in doc["DATA"]} == {"a.txt": 6, "b.txt": 6, "c.csv": 4}
    table = ok(ferry_cli("ls", "-l", f"{guest}:/docs")).stdout
    assert "a.txt" in table and "Permissions" in table and "0644" in table, table
    csv_lines = ok(ferry_cli("ls", f"{guest}:/docs", "--format", "csv")).stdout.splitlines()
    assert csv_lines[0].startswith("Name,Type,Size,Modified,Permissions"), csv_lines
    fails(ferry_cli("ls", f"{guest}:/nowhere"), "404")

    st = ok(ferry_cli("stat", f"{guest}:/docs/a.txt", "--format", "json")).json()
    assert (st["type"], st["size"], st["name"]) == ("file", 6, "a.txt"), st
    assert ok(ferry_cli("stat", f"{guest}:/docs", "--format", "json")).json()["type"] == "dir"
    fails(ferry_cli("stat", f"{guest}:/docs/zzz"), "404")

    ok(ferry_cli("rename", f"{guest}:/docs/c.csv", "/docs/d.csv"))
    ok(ferry_cli("rename", f"{guest}:/docs/d.csv", f"{guest}:/e.csv"))
    assert (storage / "e.csv").read_text() == "x,y\n"
    assert not (storage / "docs" / "c.csv").exists()
    other = "0f0e0d0c-0b0a-0908-0706-050403020100"
    fails(ferry_cli("rename", f"{guest}:/e.csv", f"{other}:/e.csv"), "within one collection")
    fails(ferry_cli("rename", f"{guest}:/missing", "/x"), "404")


def test_put_and_get_round_trip(ferry_cli: Ferry, guest: str, storage: Path, tmp_path: Path) -> None:
    payload = secrets.token_bytes(3 * 1024 * 1024 + 123)
    local = tmp_path / "data.bin"
    local.write_bytes(payload)
    ok(ferry_cli("mkdir", f"{guest}:/up"))
    # A destination ending in / is a folder: the file keeps its name.
    out = ok(ferry_cli("put", str(local), f"{guest}:/up/")).stdout
    assert "3145851 bytes" in out, out
    assert (storage / "up" / "data.bin").read_bytes() == payload
    assert ok(ferry_cli("stat", f"{guest}:/up/data.bin", "--format", "json")).json()["size"] == len(payload)

    fetched = tmp_path / "fetched.bin"
    ok(ferry_cli("get", f"{guest}:/up/data.bin", str(fetched)))
    assert fetched.read_bytes() == payload
    assert not Path(str(fetched) + ".part").exists()

    # LOCAL a folder: saved in it under the remote name; LOCAL left out: in the current folder.
    into = tmp_path / "into"
    into.mkdir()
    ok(ferry_cli("get", f"{guest}:/up/data.bin", str(into)))
    assert (into / "data.bin").read_bytes() == payload
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    ok(ferry_cli("get", f"{guest}:/up/data.bin", "--quiet", cwd=cwd))
    assert (cwd / "data.bin").read_bytes() == payload

    # Replacing a file, and a name that needs escaping in the URL.
    local.write_bytes(b"shorter")
    ok(ferry_cli("put", str(local), f"{guest}:/up/data.bin"))
    ok(ferry_cli("get", f"{guest}:/up/data.bin", str(fetched)))
    assert fetched.read_bytes() == b"shorter"
    odd = tmp_path / "a b ü#%?.txt"
    odd.write_text("odd name")
    ok(ferry_cli("put", str(odd), f"{guest}:/up/"))
    assert (storage / "up" / odd.name).read_text() == "odd name"
    ok(ferry_cli("get", f"{guest}:/up/{odd.name}", str(tmp_path / "odd-copy")))
    assert (tmp_path / "odd-copy").read_text() == "odd name"

    # JSON output for programs.
    put_doc = json.loads(ok(ferry_cli("put", str(local), f"{guest}:/up/j.bin", "--format", "json")).stdout)
    assert put_doc["size"] == len(b"shorter"), put_doc

    fails(ferry_cli("put", str(tmp_path / "nope.bin"), f"{guest}:/up/"), "cannot read")
    fails(ferry_cli("put", str(tmp_path), f"{guest}:/up/"), "not a file")
    fails(ferry_cli("put", str(local), f"{guest}:/no/such/folder/x.bin"), "404")


def test_failed_get_creates_nothing(ferry_cli: Ferry, guest: str, tmp_path: Path) -> None:
    target = tmp_path / "missing.bin"
    fails(ferry_cli("get", f"{guest}:/missing.bin", str(target)), "404")
    assert list(tmp_path.iterdir()) == []
    fails(ferry_cli("get", f"{guest}:/up/", str(target)), "not a folder")
    fails(ferry_cli("get", f"{guest}:/up", str(target)), "is a folder")
    assert list(tmp_path.iterdir()) == []


class CuttingProxy(http.server.ThreadingHTTPServer):
    """Relays requests to the server, but breaks off every HTTPS-door download after `cut` bytes of the body,
    as a dropped connection would."""

    daemon_threads = True

    def __init__(self, upstream: str, cut: int) -> None:
        self.upstream = upstream
        self.cut = cut
        super().__init__(("127.0.0.1", 0), _ProxyHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: CuttingProxy

    def log_message(self, format: str, *args: t.Any) -> None:
        pass

    def _relay(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        hop = {"host", "connection", "keep-alive", "transfer-encoding"}
        headers = {k: v for k, v in self.headers.items() if k.lower() not in hop}
        upstream = requests.request(
            self.command, self.server.upstream + self.path, headers=headers, data=body,
            stream=True, allow_redirects=False, timeout=30,
        )
        cut = self.command == "GET" and self.path.startswith("/data/")
        self.send_response(upstream.status_code)
        for k, v in upstream.raw.headers.items():
            if k.lower() not in hop and (cut or k.lower() != "content-length"):
                self.send_header(k, v)
        if cut and upstream.status_code < 300:
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(upstream.raw.read(self.server.cut))
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        content = upstream.content
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    do_GET = do_POST = do_PUT = do_DELETE = _relay


def test_interrupted_get_keeps_the_real_name_free_and_resumes(
    server: FerryServer, ferry_cli: Ferry, guest: str, storage: Path, tmp_path: Path
) -> None:
    payload = secrets.token_bytes(4 * 1024 * 1024)
    (storage / "interrupted.bin").write_bytes(payload)
    proxy = CuttingProxy(server.base_url, cut=1024 * 1024)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        target = tmp_path / "interrupted.bin"
        part = tmp_path / "interrupted.bin.part"
        r = fails(ferry_cli("get", f"{guest}:/interrupted.bin", str(target), "--url", proxy.url), "--resume")
        assert not target.exists(), r.describe()
        assert 0 < part.stat().st_size < len(payload), r.describe()
        assert part.read_bytes() == payload[: part.stat().st_size]
        # Through the server itself this time: the rest only, then the rename.
        ok(ferry_cli("get", f"{guest}:/interrupted.bin", str(target), "--resume"))
        assert target.read_bytes() == payload
        assert not part.exists()
    finally:
        proxy.shutdown()
        proxy.server_close()


def test_rm(ferry_cli: Ferry, guest: str, storage: Path) -> None:
    (storage / "trash" / "deep").mkdir(parents=True)
    (storage / "trash" / "deep" / "f.txt").write_text("x")
    (storage / "single.txt").write_text("x")
    ok(ferry_cli("rm", f"{guest}:/single.txt"))
    assert not (storage / "single.txt").exists()
    fails(ferry_cli("stat", f"{guest}:/single.txt"), "404")
    # rm is a delete task: its failures say why, with the task's error code.
    fails(ferry_cli("rm", f"{guest}:/single.txt"), "FILE_NOT_FOUND")
    ok(ferry_cli("rm", "--ignore-missing", f"{guest}:/single.txt"))
    fails(ferry_cli("rm", f"{guest}:/trash"), "recursive")
    assert (storage / "trash" / "deep" / "f.txt").exists()
    ok(ferry_cli("rm", "--recursive", f"{guest}:/trash"))
    assert not (storage / "trash").exists()


def login(
    server: FerryServer, home: Path, person: dict[str, str], *extra: str, url: bool = True
) -> None:
    """`ferry login` as a person, the browser part done by the harness (without --url: the stored login's)."""
    argv = [str(server.binary), "login", *(["--url", server.base_url] if url else []), *extra]
    result = ferry_login(argv, cli_env(home), person["username"], person["password"])
    assert result.returncode == 0, result.describe()


def test_login_asks_for_the_collection_token(
    server: FerryServer, ferry_cli: Ferry, guest: str, tmp_path: Path
) -> None:
    person = new_person(server, "files")
    ok(ferry_cli("mkdir", f"{guest}:/for-person"))
    # Setup only: a permission for the person (the share commands have their own tests).
    # A bare username names a person of this server (name@ferry.local), as `ferry identity create` makes them.
    bare = person["username"].removesuffix("@ferry.local")
    ok(ferry_cli("share", "create", f"{guest}:/for-person/", "--identity", bare,
                 "--permissions", "rw"))
    home = tmp_path / "person-home"
    home.mkdir()

    def as_person(*args: str) -> CommandResult:
        return run([str(server.binary), *args, "--data-dir", str(server.data_dir)], env=cli_env(home),
                   cwd=tmp_path)

    login(server, home, person)
    assert ok(as_person("ls", f"{guest}:/for-person/")).stdout.split() == []
    fails(as_person("ls", f"{guest}:/"), "403 EndpointPermissionDenied")
    local = tmp_path / "mine.txt"
    local.write_text("from the person\n")
    fails(as_person("put", str(local), f"{guest}:/for-person/"), f"ferry login --collection {guest}")
    fails(as_person("get", f"{guest}:/for-person/mine.txt"), f"ferry login --collection {guest}")

    # The fix `ferry put` suggests, exactly as it says it (no --url: the stored login's server).
    login(server, home, person, "--collection", guest, url=False)
    ok(as_person("put", str(local), f"{guest}:/for-person/"))
    copy = tmp_path / "copy.txt"
    ok(as_person("get", f"{guest}:/for-person/mine.txt", str(copy)))
    assert copy.read_text() == "from the person\n"
    # Outside the permission the door refuses, whatever the token.
    fails(as_person("put", str(local), f"{guest}:/"), "403")

    # A later login without --collection keeps asking for the collection the session had.
    login(server, home, person)
    session = ok(as_person("session", "show", "--format", "json")).json()
    assert guest in [tok["resource_server"] for tok in session["tokens"]], session
    ok(as_person("rm", f"{guest}:/for-person/mine.txt"))
