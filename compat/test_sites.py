"""globus-cli 3.44.0 against a hub and an endpoint: two `ferry serve` processes (`--role hub`, `--role
endpoint`, the endpoint on HTTPS with a certificate of the site's own CA) on 127.0.0.1. The endpoint joins with
`ferry endpoint setup` after a person's `ferry login` at the hub; the person's `globus` commands go to the hub,
which finds the endpoint's collection (`globus endpoint search`) pointing at the endpoint, passes `globus ls` and
`globus mkdir` on to the endpoint, where the files are; `globus collection show` then goes straight to the
endpoint's manager API with a token the hub issued."""

from __future__ import annotations

import json
import time
import typing as t
from pathlib import Path

import pytest

from ferry_harness import (
    RUNNING_SERVERS,
    CommandResult,
    FerryServer,
    ferry_env,
    ferry_login,
    free_port,
    globus_executable,
    globus_login,
    make_site_certificate,
    new_person,
    run,
    start_server,
    stop_server,
)


def ok(result: CommandResult) -> CommandResult:
    assert result.returncode == 0, result.describe()
    return result


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """The site CA (which the hub and the Globus CLI trust) and the endpoint's certificate and key."""
    return make_site_certificate(tmp_path_factory.mktemp("sites-pki"))


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory, pki: tuple[Path, Path, Path]) -> t.Iterator[FerryServer]:
    s = start_server(tmp_path_factory.mktemp("sites-hub"), role="hub", config=f'[site]\nca_file = "{pki[0]}"\n')
    try:
        yield s
    finally:
        stop_server(s)


@pytest.fixture(scope="module")
def olive(hub: FerryServer) -> dict[str, str]:
    return new_person(hub, "olive")


@pytest.fixture(scope="module")
def endpoint(
    hub: FerryServer, olive: dict[str, str], pki: tuple[Path, Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> t.Iterator[FerryServer]:
    work = tmp_path_factory.mktemp("sites-endpoint")
    home = tmp_path_factory.mktemp("olive-ferry")
    env = {**ferry_env(), "XDG_CONFIG_HOME": str(home)}
    login = ferry_login([hub.binary, "login", "--url", hub.base_url], env, olive["username"], olive["password"])
    assert login.returncode == 0, login.describe()
    port = free_port()
    setup = run(
        [str(hub.binary), "endpoint", "setup", "--hub", hub.base_url, "--public-url",
         f"https://127.0.0.1:{port}", "--display-name", "Beamline", "--data-dir", str(work / "data")],
        env=env,
    )
    assert setup.returncode == 0, setup.describe()
    assert "Registered endpoint" in setup.stdout, setup.describe()
    site = json.loads((work / "data" / "endpoint.json").read_text())
    assert oct((work / "data" / "endpoint.json").stat().st_mode & 0o777) == "0o600"
    server = FerryServer(work, role="endpoint", port=port, tls=True, ca_file=pki[0],
                         config=f'tls_cert = "{pki[1]}"\ntls_key = "{pki[2]}"\n')
    RUNNING_SERVERS.append(server)
    server.start()
    server.admin = {"endpoint_id": site["endpoint_id"]}
    try:
        yield server
    finally:
        stop_server(server)


@pytest.fixture(scope="module")
def home(hub: FerryServer, olive: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    h = tmp_path_factory.mktemp("olive-globus")
    ok(globus_login(hub, h, olive))
    return h


def globus(hub: FerryServer, home: Path, pki: tuple[Path, Path, Path], *args: str) -> CommandResult:
    """The Globus CLI pointed at the hub, trusting the site CA (for the endpoint's HTTPS)."""
    env = hub.env_for(home)
    env["GLOBUS_SDK_VERIFY_SSL"] = str(pki[0])
    return run([globus_executable(), *args], env=env)


def reported_collection(hub: FerryServer, home: Path, endpoint: FerryServer) -> dict[str, t.Any]:
    """The endpoint's collection as `globus endpoint search` finds it at the hub (the endpoint reports in the
    background: polled, bounded)."""
    last = None
    for _ in range(100):
        last = hub.globus(home, "endpoint", "search", "--filter-scope", "administered-by-me", "-F", "json")
        ok(last)
        for doc in last.json()["DATA"]:
            if doc.get("gcs_manager_url") == endpoint.base_url and doc["entity_type"] != "GCSv5_endpoint":
                return t.cast(dict, doc)
        time.sleep(0.1)
    raise AssertionError("the endpoint's collection never appeared at the hub\n" + (last.describe() if last else ""))


def test_the_hub_finds_the_endpoints_collection(
    hub: FerryServer, endpoint: FerryServer, home: Path, olive: dict[str, str], pki: tuple[Path, Path, Path]
) -> None:
    doc = reported_collection(hub, home, endpoint)
    assert doc["https_server"].startswith(f"{endpoint.base_url}/data/{doc['id']}"), doc
    # `globus collection show` asks the hub where the collection's endpoint is, then the endpoint itself, with a
    # token for the endpoint that the hub issued (the consent `globus login --gcs` adds).
    ok(globus_login(hub, home, olive, "--gcs", endpoint.admin["endpoint_id"]))
    shown = ok(globus(hub, home, pki, "collection", "show", doc["id"], "-F", "json")).json()
    assert shown["id"] == doc["id"], shown
    assert shown["collection_type"] == "mapped", shown


def test_ls_and_mkdir_through_the_hub_reach_the_endpoints_files(
    hub: FerryServer, endpoint: FerryServer, home: Path
) -> None:
    doc = reported_collection(hub, home, endpoint)
    storage = endpoint.data_dir / "storage"
    (storage / "scan-001.h5").write_bytes(b"x" * 1000)
    listing = ok(hub.globus(home, "ls", f"{doc['id']}:/", "-F", "json")).json()
    names = {e["name"]: e for e in listing["DATA"]}
    assert names["scan-001.h5"]["size"] == 1000
    ok(hub.globus(home, "mkdir", f"{doc['id']}:/runs"))
    assert (storage / "runs").is_dir()
    missing = hub.globus(home, "ls", f"{doc['id']}:/nope")
    assert missing.returncode != 0
    # Errors speak in the collection's paths, never the endpoint host's.
    assert str(storage) not in missing.stdout + missing.stderr, missing.describe()
