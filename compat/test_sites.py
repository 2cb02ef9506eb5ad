"""globus-cli 3.44.0 against a hub and two endpoints: three `ferry serve` processes (`--role hub`, and two
`--role endpoint`, "Beamline" (A) and "Campus" (B), both on HTTPS with one certificate for 127.0.0.1 from the
site's own CA) on 127.0.0.1. Each endpoint joins with `ferry endpoint setup` after a person's `ferry login` at the
hub; the person's `globus` commands go to the hub, which finds both endpoints' collections (`globus endpoint
search`), each pointing at its own endpoint, and passes `globus ls` and `globus mkdir` on to the endpoint where
the files are; `globus collection show` goes straight to each endpoint's manager API with a token the hub issued.

Between the two: `globus transfer` from A's collection to B's, submitted at the hub and run by B (which pulls the
bytes from A), followed through the hub (`task wait`, `show`, `--successful-transfers`, `event-list`, `list`);
a delete task on B. On B: a guest collection made with `globus collection create guest` (which asks the hub where
B's manager API is and creates it there), shared at the hub with a second person, who reads a file of it over
HTTPS from B with `ferry get`, and nothing outside what was shared.

"""

from __future__ import annotations

import filecmp
import json
import os
import time
import typing as t
from pathlib import Path

import pytest
import requests

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

MiB = 1024 * 1024


def ok(result: CommandResult) -> CommandResult:
    assert result.returncode == 0, result.describe()
    return result


def fails(result: CommandResult, *needles: str) -> CommandResult:
    assert result.returncode != 0, result.describe()
    for needle in needles:
        assert needle in result.stdout + result.stderr, f"{needle!r} not in the output\n{result.describe()}"
    return result


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """The site CA (which the hub, the endpoints and the Globus CLI trust) and the certificate and key for
    127.0.0.1 that both endpoints serve."""
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
    """The person who runs both endpoints (and owns their collections)."""
    return new_person(hub, "olive")


@pytest.fixture(scope="module")
def olive_ferry(hub: FerryServer, olive: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Olive's `ferry login` at the hub (its config folder), which `ferry endpoint setup` uses."""
    home = tmp_path_factory.mktemp("olive-ferry")
    env = {**ferry_env(), "XDG_CONFIG_HOME": str(home)}
    login = ferry_login([hub.binary, "login", "--url", hub.base_url], env, olive["username"], olive["password"])
    assert login.returncode == 0, login.describe()
    return home


def join_endpoint(
    hub: FerryServer, olive_ferry: Path, pki: tuple[Path, Path, Path], work: Path, display_name: str
) -> FerryServer:
    """`ferry endpoint setup` (as Olive) for a new endpoint at a port of its own, then `ferry serve --role
    endpoint` on HTTPS with the site's certificate. The caller stops it."""
    env = {**ferry_env(), "XDG_CONFIG_HOME": str(olive_ferry)}
    port = free_port()
    setup = run(
        [str(hub.binary), "endpoint", "setup", "--hub", hub.base_url, "--public-url",
         f"https://127.0.0.1:{port}", "--display-name", display_name, "--data-dir", str(work / "data")],
        env=env,
    )
    assert setup.returncode == 0, setup.describe()
    assert "Registered endpoint" in setup.stdout, setup.describe()
    site = json.loads((work / "data" / "endpoint.json").read_text())
    assert oct((work / "data" / "endpoint.json").stat().st_mode & 0o777) == "0o600"
    # `site.ca_file`: the site CA is also what the other endpoint's certificate is signed with, which this one
    # must trust to pull a transfer's source from it.
    server = FerryServer(work, role="endpoint", port=port, tls=True, ca_file=pki[0],
                         config=f'tls_cert = "{pki[1]}"\ntls_key = "{pki[2]}"\n[site]\nca_file = "{pki[0]}"\n')
    RUNNING_SERVERS.append(server)
    try:
        server.start()
    except BaseException:
        stop_server(server)
        raise
    server.admin = {"endpoint_id": site["endpoint_id"]}
    return server


@pytest.fixture(scope="module")
def endpoint(
    hub: FerryServer, olive_ferry: Path, pki: tuple[Path, Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> t.Iterator[FerryServer]:
    """Endpoint A, "Beamline"."""
    server = join_endpoint(hub, olive_ferry, pki, tmp_path_factory.mktemp("sites-endpoint"), "Beamline")
    try:
        yield server
    finally:
        stop_server(server)


@pytest.fixture(scope="module")
def endpoint_b(
    hub: FerryServer, olive_ferry: Path, pki: tuple[Path, Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> t.Iterator[FerryServer]:
    """Endpoint B, "Campus": the same certificate (127.0.0.1), another port and data directory."""
    server = join_endpoint(hub, olive_ferry, pki, tmp_path_factory.mktemp("sites-endpoint-b"), "Campus")
    try:
        yield server
    finally:
        stop_server(server)


@pytest.fixture(scope="module")
def home(hub: FerryServer, olive: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Olive's Globus CLI tokens."""
    h = tmp_path_factory.mktemp("olive-globus")
    ok(globus_login(hub, h, olive))
    return h


def globus(hub: FerryServer, home: Path, pki: tuple[Path, Path, Path], *args: str) -> CommandResult:
    """The Globus CLI pointed at the hub, trusting the site CA (for the endpoints' HTTPS)."""
    env = hub.env_for(home)
    env["GLOBUS_SDK_VERIFY_SSL"] = str(pki[0])
    return run([globus_executable(), *args], env=env)


def found_at_hub(hub: FerryServer, home: Path, what: str, match: t.Callable[[dict], bool]) -> dict[str, t.Any]:
    """The first collection that `globus endpoint search` at the hub finds for Olive and `match` accepts (the
    endpoints report in the background: polled, for at most 30 seconds)."""
    last = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        last = ok(hub.globus(home, "endpoint", "search", "--filter-scope", "administered-by-me", "-F", "json"))
        for doc in last.json()["DATA"]:
            if match(doc):
                return t.cast(dict, doc)
        time.sleep(0.2)
    raise AssertionError(f"{what} never appeared at the hub\n" + (last.describe() if last else ""))


def reported_collection(hub: FerryServer, home: Path, endpoint: FerryServer) -> dict[str, t.Any]:
    """The endpoint's mapped collection, as the hub finds it."""
    return found_at_hub(hub, home, f"the mapped collection of {endpoint.base_url}", lambda doc: (
        doc.get("gcs_manager_url") == endpoint.base_url and doc["entity_type"] == "GCSv5_mapped_collection"))


def test_the_hub_finds_both_endpoints_collections(
    hub: FerryServer, endpoint: FerryServer, endpoint_b: FerryServer, home: Path, olive: dict[str, str],
    pki: tuple[Path, Path, Path],
) -> None:
    a = reported_collection(hub, home, endpoint)
    b = reported_collection(hub, home, endpoint_b)
    assert a["id"] != b["id"]
    # Each collection points at its own endpoint: its manager API and its HTTPS door.
    assert a["https_server"].startswith(f"{endpoint.base_url}/data/{a['id']}"), a
    assert b["https_server"].startswith(f"{endpoint_b.base_url}/data/{b['id']}"), b
    assert endpoint.base_url != endpoint_b.base_url
    # One search at the hub lists both (not only the first endpoint that reported).
    found = ok(hub.globus(home, "endpoint", "search", "--filter-scope", "administered-by-me", "-F", "json")).json()
    ids = {doc["id"] for doc in found["DATA"]}
    assert {a["id"], b["id"]} <= ids, found
    # And both endpoints themselves, each with its own manager API.
    endpoints = {doc["id"]: doc["gcs_manager_url"] for doc in found["DATA"] if doc["entity_type"] == "GCSv5_endpoint"}
    assert endpoints == {endpoint.admin["endpoint_id"]: endpoint.base_url,
                         endpoint_b.admin["endpoint_id"]: endpoint_b.base_url}, found

    # `globus collection show` asks the hub where the collection's endpoint is, then the endpoint itself, with a
    # token for that endpoint that the hub issued (the consent `globus login --gcs` adds, one per endpoint).
    ok(globus_login(hub, home, olive, "--gcs", endpoint.admin["endpoint_id"], "--gcs",
                    endpoint_b.admin["endpoint_id"]))
    for doc, server in ((a, endpoint), (b, endpoint_b)):
        shown = ok(globus(hub, home, pki, "collection", "show", doc["id"], "-F", "json")).json()
        assert shown["id"] == doc["id"], shown
        assert shown["collection_type"] == "mapped", shown
        # The answer came from the collection's own endpoint (the CLI asked the manager URL the hub gave it).
        assert shown["manager_url"] == server.base_url, shown
        assert shown["https_url"] == f"{server.base_url}/data/{doc['id']}", shown


def test_the_hub_names_each_endpoint_as_set_up(
    hub: FerryServer, endpoint: FerryServer, endpoint_b: FerryServer, home: Path
) -> None:
    reported_collection(hub, home, endpoint_b)
    found = ok(hub.globus(home, "endpoint", "search", "--filter-scope", "administered-by-me", "-F", "json")).json()
    names = {doc["id"]: doc["display_name"] for doc in found["DATA"] if doc["entity_type"] == "GCSv5_endpoint"}
    assert names == {endpoint.admin["endpoint_id"]: "Beamline", endpoint_b.admin["endpoint_id"]: "Campus"}, names


def test_ls_and_mkdir_through_the_hub_reach_each_endpoints_files(
    hub: FerryServer, endpoint: FerryServer, endpoint_b: FerryServer, home: Path
) -> None:
    own_file = {endpoint: "scan-001.h5", endpoint_b: "report.pdf"}
    for server, name in own_file.items():
        (server.data_dir / "storage" / name).write_bytes(b"x" * len(name) * 100)
    for server, name in own_file.items():
        doc = reported_collection(hub, home, server)
        storage = server.data_dir / "storage"
        listing = ok(hub.globus(home, "ls", f"{doc['id']}:/", "-F", "json")).json()
        names = {e["name"]: e for e in listing["DATA"]}
        # Each collection lists its own endpoint's files, not the other's.
        assert names[name]["size"] == len(name) * 100, listing
        assert not (set(own_file.values()) - {name}) & set(names), listing
        ok(hub.globus(home, "mkdir", f"{doc['id']}:/runs"))
        assert (storage / "runs").is_dir()
        missing = hub.globus(home, "ls", f"{doc['id']}:/nope")
        assert missing.returncode != 0
        # Errors speak in the collection's paths, never the endpoint host's.
        assert str(storage) not in missing.stdout + missing.stderr, missing.describe()


def write_tree(root: Path) -> dict[str, int]:
    """A folder to transfer: a few small files, one over 4 MiB and one over 32 MiB (large files go in ranges,
    small ones together), and a subfolder. Returns each file's path (relative) and size."""
    files = {
        "notes.txt": b"beamline notes\n" * 10,
        "empty.dat": b"",
        "frame-000.raw": os.urandom(4 * MiB + 12345),
        "stack.h5": os.urandom(33 * MiB + 7),
        "sub/meta.json": json.dumps({"run": 42}).encode(),
        "sub/deeper/tiny.bin": bytes(range(256)),
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return {rel: len(data) for rel, data in files.items()}


def same_trees(left: Path, right: Path) -> list[str]:
    """Differences between two folders (names, and contents byte for byte), recursively; empty when equal."""
    problems = []
    left_names = sorted(p.relative_to(left).as_posix() for p in left.rglob("*"))
    right_names = sorted(p.relative_to(right).as_posix() for p in right.rglob("*"))
    if left_names != right_names:
        problems.append(f"names differ: {left_names} != {right_names}")
    for rel in left_names:
        a, b = left / rel, right / rel
        if a.is_file() and (not b.is_file() or not filecmp.cmp(a, b, shallow=False)):
            problems.append(f"{rel} differs")
    return problems


class CrossTransfer(t.NamedTuple):
    task_id: str
    source: dict[str, t.Any]  # A's collection, as the hub finds it
    destination: dict[str, t.Any]  # B's
    tree: Path  # the folder sent, on A's storage
    sizes: dict[str, int]
    wait: CommandResult  # `globus task wait`, which returns once the task has ended (or after 120 s)


@pytest.fixture(scope="module")
def cross_transfer(
    hub: FerryServer, endpoint: FerryServer, endpoint_b: FerryServer, home: Path, pki: tuple[Path, Path, Path]
) -> CrossTransfer:
    """`globus transfer A_COLL:/src B_COLL:/incoming/dst --recursive`, submitted at the hub (which records it
    and passes it to B, which pulls the bytes from A), and `globus task wait` for it, which polls the hub (which
    asks B). The tests below read what it left."""
    a = reported_collection(hub, home, endpoint)
    b = reported_collection(hub, home, endpoint_b)
    tree = endpoint.data_dir / "storage" / "src"
    sizes = write_tree(tree)
    (endpoint_b.data_dir / "storage" / "incoming").mkdir()
    submitted = ok(globus(hub, home, pki, "transfer", f"{a['id']}:/src", f"{b['id']}:/incoming/dst",
                          "--recursive", "--label", "beamline to campus", "-F", "json")).json()
    task_id = submitted["task_id"]
    wait = globus(hub, home, pki, "task", "wait", task_id, "--timeout", "120", "--polling-interval", "1")
    return CrossTransfer(task_id, a, b, tree, sizes, wait)


def test_transfer_between_the_two_endpoints(
    hub: FerryServer, endpoint_b: FerryServer, home: Path, pki: tuple[Path, Path, Path], cross_transfer: CrossTransfer
) -> None:
    x = cross_transfer
    # Exit 0 only once the task SUCCEEDED (1 if it failed, went INACTIVE or was still running after 120 s).
    ok(x.wait)
    task = ok(globus(hub, home, pki, "task", "show", x.task_id, "-F", "json")).json()
    assert task["status"] == "SUCCEEDED", task
    assert task["type"] == "TRANSFER" and task["label"] == "beamline to campus", task
    assert (task["source_endpoint_id"], task["destination_endpoint_id"]) == (x.source["id"], x.destination["id"])
    # src, src/sub and src/sub/deeper; every file, and every byte, once.
    assert (task["files"], task["directories"]) == (len(x.sizes), 3), task
    assert task["files_transferred"] == len(x.sizes), task
    assert task["bytes_transferred"] == sum(x.sizes.values()), task
    assert task["faults"] == 0, task

    # The bytes are on B's storage, exactly as on A's.
    destination = endpoint_b.data_dir / "storage" / "incoming" / "dst"
    assert destination.is_dir()
    assert same_trees(x.tree, destination) == []

    # The per-file record, the events and the task list, all asked at the hub.
    done = ok(globus(hub, home, pki, "task", "show", "--successful-transfers", x.task_id, "-F", "json")).json()
    assert {(f["source_path"], f["destination_path"], f["size"]) for f in done["DATA"]} == {
        (f"/src/{rel}", f"/incoming/dst/{rel}", size) for rel, size in x.sizes.items()}, done
    events = ok(globus(hub, home, pki, "task", "event-list", x.task_id, "-F", "json")).json()
    codes = [e["code"] for e in events["DATA"]]
    assert "STARTED" in codes and "SUCCEEDED" in codes, events
    assert not any(e["is_error"] for e in events["DATA"]), events
    listed = ok(globus(hub, home, pki, "task", "list", "-F", "json")).json()
    mine = [row for row in listed["DATA"] if row["task_id"] == x.task_id]
    assert len(mine) == 1, listed
    assert (mine[0]["status"], mine[0]["files_transferred"], mine[0]["bytes_transferred"]) == (
        "SUCCEEDED", len(x.sizes), sum(x.sizes.values())), mine


def test_the_task_names_the_source_collection_on_the_other_endpoint(
    hub: FerryServer, home: Path, pki: tuple[Path, Path, Path], cross_transfer: CrossTransfer
) -> None:
    task = ok(globus(hub, home, pki, "task", "show", cross_transfer.task_id, "-F", "json")).json()
    assert task["destination_endpoint_display_name"] == cross_transfer.destination["display_name"], task
    assert task["source_endpoint_display_name"] == cross_transfer.source["display_name"], task


def test_the_hubs_task_list_agrees_with_the_task(
    hub: FerryServer, home: Path, pki: tuple[Path, Path, Path], cross_transfer: CrossTransfer
) -> None:
    task = ok(globus(hub, home, pki, "task", "show", cross_transfer.task_id, "-F", "json")).json()
    listed = ok(globus(hub, home, pki, "task", "list", "-F", "json")).json()
    (mine,) = [row for row in listed["DATA"] if row["task_id"] == cross_transfer.task_id]
    keys = ("subtasks_total", "subtasks_succeeded", "source_endpoint_display_name",
            "destination_endpoint_display_name")
    assert {k: mine[k] for k in keys} == {k: task[k] for k in keys}, (mine, task)


def test_delete_runs_where_the_files_are(
    hub: FerryServer, endpoint_b: FerryServer, home: Path, pki: tuple[Path, Path, Path]
) -> None:
    b = reported_collection(hub, home, endpoint_b)
    trash = endpoint_b.data_dir / "storage" / "trash"
    (trash / "inner").mkdir(parents=True)
    (trash / "a.txt").write_bytes(b"a")
    (trash / "inner" / "b.txt").write_bytes(b"b")
    keep = endpoint_b.data_dir / "storage" / "keep.txt"
    keep.write_bytes(b"keep")
    # Submitted at the hub, run by B, followed through the hub.
    submitted = ok(hub.globus(home, "delete", f"{b['id']}:/trash", "--recursive", "--label", "tidy", "-F",
                              "json")).json()
    ok(hub.globus(home, "task", "wait", submitted["task_id"], "--timeout", "60", "--polling-interval", "1"))
    task = ok(hub.globus(home, "task", "show", submitted["task_id"], "-F", "json")).json()
    assert (task["type"], task["status"], task["label"]) == ("DELETE", "SUCCEEDED", "tidy"), task
    assert not trash.exists()
    assert keep.read_bytes() == b"keep"


def test_a_guest_collection_on_b_shared_with_another_person(
    hub: FerryServer, endpoint_b: FerryServer, home: Path, olive: dict[str, str], pki: tuple[Path, Path, Path],
    tmp_path: Path,
) -> None:
    b = reported_collection(hub, home, endpoint_b)
    storage = endpoint_b.data_dir / "storage"
    (storage / "shared" / "for-pat").mkdir(parents=True)
    (storage / "shared" / "for-pat" / "results.csv").write_bytes(b"run,value\n42,3.14\n")
    (storage / "shared" / "olive-only.txt").write_bytes(b"in the guest collection, not shared with Pat\n")
    (storage / "private.txt").write_bytes(b"outside the guest collection\n")

    # globus-cli 3.44 makes a guest collection only with `globus collection create guest` (`globus endpoint
    # create --shared` is gone): it asks the hub for the mapped collection's `gcs_manager_url` and creates the
    # guest collection there, on B's manager API (POST /api/collections), with a user credential of Olive's on
    # B's storage gateway. Both need her consent for B, with the mapped collection's data access.
    endpoint_id = endpoint_b.admin["endpoint_id"]
    ok(globus_login(hub, home, olive, "--gcs", f"{endpoint_id}:{b['id']}"))
    gateway = ok(globus(hub, home, pki, "collection", "show", b["id"], "-F", "json")).json()["storage_gateway_id"]
    local_name = olive["username"].removesuffix("@ferry.local")
    ok(globus(hub, home, pki, "endpoint", "user-credential", "create", "posix", endpoint_id, gateway,
              olive["username"], local_name))
    created = ok(globus(hub, home, pki, "collection", "create", "guest", b["id"], "/shared/", "Campus share",
                        "-F", "json")).json()
    guest = created["id"]
    assert (created["collection_type"], created["mapped_collection_id"]) == ("guest", b["id"]), created
    assert created["https_url"] == f"{endpoint_b.base_url}/data/{guest}", created

    # B reports the new collection to the hub (at once, on the change); the hub then knows it as B's.
    doc = found_at_hub(hub, home, "the guest collection", lambda doc: doc["id"] == guest)
    assert doc["entity_type"] == "GCSv5_guest_collection", doc
    assert doc["gcs_manager_url"] == endpoint_b.base_url, doc

    # Olive shares a folder of it with Pat, at the hub (which passes the permission on to B).
    pat = new_person(hub, "pat")
    rule = ok(hub.globus(home, "endpoint", "permission", "create", f"{guest}:/for-pat/", "--identity",
                         pat["username"], "--permissions", "r", "-F", "json")).json()
    assert rule["code"] == "Created", rule
    rules = ok(hub.globus(home, "endpoint", "permission", "list", guest, "-F", "json")).json()["DATA"]
    assert any(r["id"] == rule["access_id"] and r["principal"] == pat["id"] and r["path"] == "/for-pat/"
               for r in rules), rules

    # Pat logs in at the hub with a token for the guest collection's HTTPS door (`--collection`), and
    # downloads from B: `ferry get` asks the hub where the collection is, then reads it from B.
    pat_home = tmp_path / "pat-ferry"
    pat_home.mkdir()
    pat_env = {**ferry_env(), "XDG_CONFIG_HOME": str(pat_home)}
    login = ferry_login([hub.binary, "login", "--url", hub.base_url, "--collection", guest], pat_env,
                        pat["username"], pat["password"])
    assert login.returncode == 0, login.describe()

    def ferry_as_pat(*args: str) -> CommandResult:
        return run([str(hub.binary), *args, "--url", hub.base_url, "--ca-file", str(pki[0])], env=pat_env,
                   cwd=tmp_path)

    ok(ferry_as_pat("get", f"{guest}:/for-pat/results.csv", str(tmp_path / "results.csv")))
    assert (tmp_path / "results.csv").read_bytes() == b"run,value\n42,3.14\n"
    # In the guest collection but outside what was shared with Pat: refused, and nothing is written.
    fails(ferry_as_pat("get", f"{guest}:/olive-only.txt", str(tmp_path / "olive-only.txt")), "403")
    assert not (tmp_path / "olive-only.txt").exists()
    ls = ferry_as_pat("ls", f"{guest}:/")
    fails(ls, "403")
    assert "olive-only.txt" not in ls.stdout
    assert ok(ferry_as_pat("ls", f"{guest}:/for-pat/")).stdout.split() == ["results.csv"]

    # Outside the guest collection's folder altogether (B's storage root), straight at B's door with Pat's
    # token: a dot-dot segment, escaped so that nothing on the way folds it away, is refused.
    session = json.loads((pat_home / "ferry" / "session.json").read_text())
    token = session["tokens"][guest]["access_token"]
    door = f"{endpoint_b.base_url}/data/{guest}"
    headers = {"Authorization": f"Bearer {token}"}
    assert requests.get(f"{door}/for-pat/results.csv", headers=headers, verify=str(pki[0]),
                        timeout=30).status_code == 200
    escaped = requests.get(f"{door}/%2e%2e/private.txt", headers=headers, verify=str(pki[0]), timeout=30)
    assert escaped.status_code in (400, 403, 404), (escaped.status_code, escaped.text)
    assert b"outside the guest collection" not in escaped.content
