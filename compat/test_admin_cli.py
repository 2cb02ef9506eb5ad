"""The `ferry` administrator's CLI against a running server: storage gateways, collections, roles,
sharing policies, `access explain`, the audit log, `self-diagnostic`, and a person's `ferry login`."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import threading
import time
import typing as t
from pathlib import Path

import pytest

from ferry_harness import (
    COMMAND_TIMEOUT,
    CommandResult,
    FerryServer,
    browser_login,
    ferry_env,
    new_person,
    run,
    start_server,
    stop_server,
)

Ferry = t.Callable[..., CommandResult]


@pytest.fixture(scope="module")
def cli_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ferry-cli-home")


def cli_env(home: Path) -> dict[str, str]:
    env = ferry_env()
    env["XDG_CONFIG_HOME"] = str(home)
    return env


@pytest.fixture(scope="module")
def ferry_cli(ferry: FerryServer, cli_home: Path) -> Ferry:
    """`ferry ARGS --data-dir <the server's>`: as the administrator's client unless logged in."""

    def go(*args: str, stdin: str | None = None) -> CommandResult:
        argv = [str(ferry.binary), *args, "--data-dir", str(ferry.data_dir)]
        return run(argv, env=cli_env(cli_home), input=stdin)

    return go


def ok(result: CommandResult) -> CommandResult:
    assert result.returncode == 0, result.describe()
    return result


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("admin-cli-storage")
    for d in ("data/ana", "data/secret", "etc"):
        (root / d).mkdir(parents=True)
    return root


@pytest.fixture(scope="module")
def gateway(ferry_cli: Ferry, storage: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    rules = tmp_path_factory.mktemp("rules") / "restrict.json"
    rules.write_text(json.dumps({"read_write": ["/data"], "none": ["/data/secret"]}))
    out = ok(
        ferry_cli(
            "storage-gateway", "create", "posix", "Imaging", "--root", str(storage),
            "--restrict-paths", f"file:{rules}", "--user-allow", "admin", "--format", "json",
        )
    ).json()
    assert out["restrict_paths"]["none"] == ["/data/secret"]
    return t.cast(str, out["id"])


@pytest.fixture(scope="module")
def collection(ferry_cli: Ferry, gateway: str) -> str:
    out = ok(
        ferry_cli(
            "collection", "create", gateway, "/", "Imaging data", "--allow-guest-collections",
            "--sharing-restrict-paths", '{"read_write": ["/data"]}', "--description", "raw",
            "--format", "json",
        )
    ).json()
    assert out["collection_type"] == "mapped" and out["description"] == "raw"
    return t.cast(str, out["id"])


def test_gateways_and_collections(ferry_cli: Ferry, gateway: str, collection: str) -> None:
    shown = ok(ferry_cli("storage-gateway", "show", gateway, "--format", "json")).json()
    assert shown["restrict_paths"]["read_write"] == ["/data"]
    listed = ok(ferry_cli("collection", "list", "--filter", "mapped-collections", "--format", "json")).json()
    assert collection in [c["id"] for c in listed]
    updated = ok(ferry_cli("collection", "update", collection, "--display-name", "Imaging", "--format", "json")).json()
    assert updated["display_name"] == "Imaging" and updated["description"] == "raw"
    table = ok(ferry_cli("collection", "show", collection)).stdout
    assert "Imaging" in table and collection in table
    as_csv = list(csv.reader(io.StringIO(ok(ferry_cli("storage-gateway", "list", "--format", "csv")).stdout)))
    assert as_csv[0][:2] == ["ID", "Display name"] and any(gateway == r[0] for r in as_csv[1:])


def test_bad_arguments_name_the_option_and_change_nothing(ferry_cli: Ferry, storage: Path) -> None:
    before = ok(ferry_cli("storage-gateway", "list", "--format", "json")).json()
    for args, expected in [
        (["--restrict-paths", "{nope"], "--restrict-paths"),
        (["--restrict-paths", "file:/no/such/file.json"], "--restrict-paths"),
        (["--restrict-paths", '{"read": ["relative"]}'], "restrict_paths.read[0]"),
        (["--identity-mapping", "[1"], "--identity-mapping"),
    ]:
        r = ferry_cli("storage-gateway", "create", "posix", "Bad", "--root", str(storage), *args)
        assert r.returncode != 0, r.describe()
        assert expected in r.stderr, r.describe()
    r = ferry_cli("collection", "update", "not-a-uuid", "--description", "x")
    assert r.returncode != 0 and "invalid value" in r.stderr, r.describe()
    assert ok(ferry_cli("storage-gateway", "list", "--format", "json")).json() == before


def test_roles_and_sharing_policies(ferry: FerryServer, ferry_cli: Ferry, collection: str) -> None:
    person = new_person(ferry, "am")
    # A bare name is a person of this server (name@ferry.local), as the README writes them.
    bare = person["username"].removesuffix("@ferry.local")
    role = ok(ferry_cli("collection", "role", "create", collection, "access_manager", bare, "--format", "json")).json()
    assert role["principal"] == f"urn:globus:auth:identity:{person['id']}"
    ep_role = ok(ferry_cli("endpoint", "role", "create", "administrator", bare, "--format", "json")).json()
    assert ep_role["principal"] == f"urn:globus:auth:identity:{person['id']}"
    ok(ferry_cli("endpoint", "role", "delete", ep_role["id"]))
    group = ok(ferry_cli("group", "create", "Bare names", "--format", "json")).json()
    member = ok(ferry_cli("group", "member", "add", group["id"], bare, "--format", "json")).json()
    assert member["identity_id"] == person["id"], member
    ok(ferry_cli("group", "delete", group["id"]))
    r = ferry_cli("endpoint", "role", "create", "administrator", "nobody-at-all")
    assert r.returncode != 0 and "nobody-at-all@ferry.local" in r.stderr, r.describe()
    roles = ok(ferry_cli("collection", "role", "list", collection, "--format", "json")).json()
    assert {r["role"] for r in roles} >= {"administrator", "access_manager"}
    ok(ferry_cli("collection", "role", "delete", role["id"]))
    r = ferry_cli("endpoint", "role", "create", "access_manager", person["id"])
    assert r.returncode != 0 and "invalid value" in r.stderr, r.describe()
    policy = ok(
        ferry_cli("sharing-policy", "create", collection, "--user", "admin", "--read", "/etc", "--format", "json")
    ).json()
    assert policy["sharing_restrict_paths"]["read"] == ["/etc"]
    assert len(ok(ferry_cli("sharing-policy", "list", collection, "--format", "json")).json()) == 1
    ok(ferry_cli("sharing-policy", "delete", policy["id"]))


def test_access_explain_names_the_deciding_rule(ferry_cli: Ferry, collection: str) -> None:
    out = ok(ferry_cli("access", "explain", collection, "/data/secret/x", "--identity", "admin")).stdout
    assert 'none rule "/data/secret"' in out, out
    report = ok(
        ferry_cli("access", "explain", collection, "/data/ana/f", "--identity", "admin", "--format", "json")
    ).json()
    assert report["access"] == "read_write" and report["account"] == "admin"
    assert 'rule "/data"' in report["decided_by"]
    out = ok(ferry_cli("access", "explain", collection, "/etc", "--identity", "admin")).stdout
    assert "no restrict_paths rule applies" in out, out
    r = ferry_cli("access", "explain", collection, "/data/../etc", "--identity", "admin")
    assert r.returncode != 0 and ".." in r.stderr, r.describe()


def test_audit_shows_the_changes(ferry_cli: Ferry, gateway: str, collection: str) -> None:
    rows = ok(ferry_cli("audit", "query", "--collection", collection, "--format", "json")).json()
    assert any(r["action"] == "collection.create" and r["outcome"] == "allowed" for r in rows), rows
    dump = ok(ferry_cli("audit", "dump", "--format", "csv", "--outcome", "allowed")).stdout
    records = list(csv.DictReader(io.StringIO(dump)))
    assert any(r["action"] == "storage_gateway.create" and r["detail"] == gateway for r in records)
    r = ferry_cli("audit", "query", "--since", "yesterday")
    assert r.returncode != 0 and "--since" in r.stderr, r.describe()


def test_self_diagnostic(ferry_cli: Ferry) -> None:
    out = ok(ferry_cli("self-diagnostic")).stdout
    assert "FAIL" not in out and "server" in out, out


def test_login_whoami_logout(ferry: FerryServer, cli_home: Path, tmp_path: Path) -> None:
    person = new_person(ferry, "cli-login")
    home = tmp_path / "login-home"
    home.mkdir()
    argv = [str(ferry.binary), "login", "--url", ferry.base_url]
    proc = subprocess.Popen(
        argv, env=cli_env(home), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdin and proc.stdout and proc.stderr
    err = bytearray()
    reader = threading.Thread(
        target=lambda: [err.extend(c) for c in iter(lambda: os.read(proc.stderr.fileno(), 4096), b"")],
        daemon=True,
    )
    reader.start()
    url = None
    deadline = time.monotonic() + COMMAND_TIMEOUT
    while time.monotonic() < deadline and proc.poll() is None:
        m = re.search(r"(https?://\S+/v2/oauth2/authorize\S+)", err.decode(errors="replace"))
        if m and "Code:" in err.decode(errors="replace"):
            url = m.group(1)
            break
        time.sleep(0.05)
    assert url, err.decode(errors="replace")
    login = browser_login(url, person["username"], person["password"])
    out, _ = proc.communicate(login.displayed_code.encode() + b"\n", timeout=COMMAND_TIMEOUT)
    reader.join(timeout=5)
    assert proc.returncode == 0, err.decode(errors="replace")
    assert person["username"] in out.decode()
    session_file = home / "ferry" / "session.json"
    assert oct(session_file.stat().st_mode & 0o777) == "0o600"

    def as_person(*args: str) -> CommandResult:
        return run([str(ferry.binary), *args, "--data-dir", str(ferry.data_dir)], env=cli_env(home))

    who = ok(as_person("whoami", "--format", "json")).json()
    assert who["username"] == person["username"]
    session = ok(as_person("session", "show", "--format", "json")).json()
    assert session["username"] == person["username"]
    # A person without a role may read the endpoint but not create storage gateways.
    ok(as_person("endpoint", "show"))
    r = as_person("storage-gateway", "create", "posix", "Mine", "--root", "/tmp")
    assert r.returncode != 0 and "403" in r.stderr, r.describe()
    ok(as_person("logout"))
    assert not session_file.exists()
    r = as_person("session", "show")
    assert r.returncode != 0 and "not logged in" in r.stderr


def test_guest_collection_without_a_storage_account_says_what_to_do(
    ferry_cli: Ferry, storage: Path
) -> None:
    gw = ok(ferry_cli("storage-gateway", "create", "posix", "Uni only", "--root", str(storage),
                      "--domain", "uni.edu", "--format", "json")).json()
    mapped = ok(ferry_cli("collection", "create", gw["id"], "/", "Uni data", "--allow-guest-collections",
                          "--format", "json")).json()
    r = ferry_cli("collection", "create-guest", mapped["id"], "/data", "Mine")
    assert r.returncode != 0, r.describe()
    # The server's reason, and what to do about it.
    assert "not from a domain the storage gateway allows (uni.edu)" in r.stderr, r.describe()
    assert "acts as its creator's storage account" in r.stderr and "ferry login" in r.stderr, r.describe()


def test_restart_with_tls_keeps_admin_commands_working(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    workdir = tmp_path_factory.mktemp("ferry-restart")
    plain = start_server(workdir)
    stop_server(plain)
    tls = start_server(workdir, tls=True)
    try:
        home = tmp_path / "home"
        home.mkdir()

        def local(*args: str, env: dict[str, str] | None = None) -> CommandResult:
            argv = [str(tls.binary), *args, "--data-dir", str(tls.data_dir)]
            return run(argv, env=env or cli_env(home), cwd=tmp_path)

        shown = ok(local("endpoint", "show", "--format", "json")).json()
        assert shown["gcs_manager_url"] == tls.base_url
        diag = ok(local("self-diagnostic")).stdout
        assert "FAIL" not in diag and f"{tls.base_url} answers" in diag, diag

        # Elsewhere (no data directory): the untrusted certificate is explained, and the CA can be given.
        creds = ["--client-id", tls.admin["client_id"], "--client-secret", tls.admin["client_secret"]]
        elsewhere = tmp_path / "elsewhere"
        r = run([str(tls.binary), "whoami", "--url", tls.base_url, *creds, "--data-dir", str(elsewhere)],
                env=cli_env(home), cwd=tmp_path)
        assert r.returncode != 0, r.describe()
        assert "not trusted" in r.stderr and "--ca-file" in r.stderr and "ca.pem" in r.stderr, r.describe()
        for extra, env in [
            (["--ca-file", str(tls.ca_path)], cli_env(home)),
            (["--ca", str(tls.ca_path)], cli_env(home)),
            ([], {**cli_env(home), "GLOBUS_SDK_VERIFY_SSL": str(tls.ca_path)}),
            ([], {**cli_env(home), "FERRY_CA_FILE": str(tls.ca_path)}),
        ]:
            r = run([str(tls.binary), "whoami", "--url", tls.base_url, *creds, *extra,
                     "--data-dir", str(elsewhere), "--format", "json"], env=env, cwd=tmp_path)
            assert r.returncode == 0, r.describe()
            assert r.json()["username"].startswith(tls.admin["client_id"]), r.describe()
    finally:
        stop_server(tls)
