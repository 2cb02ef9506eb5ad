"""Transfer and delete tasks with the real globus-sdk and globus-cli: submit_transfer, task_wait,
task_successful_transfers, submit_delete through the SDK; `globus transfer --recursive --sync-level
checksum`, `globus task wait/show/event-list`, `globus delete -r` through the CLI (as an application,
with client credentials)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import globus_sdk
import pytest

from ferry_harness import TRANSFER_SCOPE, CommandResult, FerryServer


def files_under(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def tc(ferry: FerryServer) -> globus_sdk.TransferClient:
    admin = ferry.admin
    auth = globus_sdk.ConfidentialAppAuthClient(admin["client_id"], admin["client_secret"])
    tokens = auth.oauth2_client_credentials_tokens(requested_scopes=[TRANSFER_SCOPE])
    token = tokens.by_resource_server["transfer.api.globus.org"]["access_token"]
    return globus_sdk.TransferClient(authorizer=globus_sdk.AccessTokenAuthorizer(token))


@pytest.fixture(scope="module")
def collection(tc: globus_sdk.TransferClient) -> str:
    found = list(tc.endpoint_search(filter_scope="administered-by-me",
                                    filter_entity_type="GCSv5_mapped_collection"))
    assert found, "the default mapped collection"
    return str(found[0]["id"])


def make_tree(root: Path) -> None:
    (root / "a" / "b").mkdir(parents=True, exist_ok=True)
    for i in range(30):
        sub = ["", "a/", "a/b/"][i % 3]
        (root / f"{sub}file{i}.txt").write_bytes(bytes((i * j) % 256 for j in range(1000 + 97 * i)))
    (root / "big.bin").write_bytes(bytes(range(256)) * (6 * 4096))  # 6 MiB: copied as ranges


def test_sdk_submit_wait_successful_transfers_and_delete(
    ferry: FerryServer, tc: globus_sdk.TransferClient, collection: str
) -> None:
    storage = ferry.data_dir / "storage"
    make_tree(storage / "sdk-src")
    tdata = globus_sdk.TransferData(source_endpoint=collection, destination_endpoint=collection,
                                    label="sdk copy", sync_level="checksum", verify_checksum=True)
    tdata.add_item("/sdk-src/", "/sdk-dst/", recursive=True)
    tdata.add_item("/sdk-src/big.bin", "/sdk-md5/big.bin", checksum_algorithm="MD5")
    task = tc.submit_transfer(tdata)
    assert task["code"] == "Accepted" and task["task_id"], task.data
    task_id = task["task_id"]
    assert tc.task_wait(task_id, timeout=120, polling_interval=1)
    doc = tc.get_task(task_id)
    assert doc["status"] == "SUCCEEDED", doc.data
    assert doc["label"] == "sdk copy" and doc["type"] == "TRANSFER"
    assert doc["files"] == 32 and doc["files_transferred"] == 32, doc.data
    assert files_under(storage / "sdk-src") == files_under(storage / "sdk-dst")

    transfers = list(tc.task_successful_transfers(task_id))
    assert len(transfers) == 32
    # big.bin is copied twice (in the folder, and alone with MD5): tell them apart by destination.
    by_dest = {t["destination_path"]: t for t in transfers}
    big = by_dest["/sdk-dst/big.bin"]
    md5 = [t for t in transfers if t["destination_path"] == "/sdk-md5/big.bin"][0]
    assert md5["checksum_algorithm"] == "MD5"
    assert md5["checksum"] == hashlib.md5((storage / "sdk-src/big.bin").read_bytes()).hexdigest()
    assert big["checksum_algorithm"] == "BLAKE3" and len(big["checksum"]) == 64
    assert big["size"] == (storage / "sdk-src/big.bin").stat().st_size

    # The SDK pages task_list by offset and total; the task is there with its label.
    listed = list(tc.task_list(filter={"label": "sdk copy"}))
    assert [t["task_id"] for t in listed] == [task_id]
    events = [e["code"] for e in tc.task_event_list(task_id)]
    assert events[0] == "SUCCEEDED" and "STARTED" in events

    # Submitting again with sync_level checksum copies nothing: everything is up to date.
    again = globus_sdk.TransferData(source_endpoint=collection, destination_endpoint=collection,
                                    sync_level="checksum")
    again.add_item("/sdk-src/", "/sdk-dst/", recursive=True)
    t2 = tc.submit_transfer(again)["task_id"]
    assert tc.task_wait(t2, timeout=120, polling_interval=1)
    d2 = tc.get_task(t2)
    assert (d2["status"], d2["files_skipped"], d2["files_transferred"]) == ("SUCCEEDED", 31, 0), d2.data

    # submit_delete removes the copy (directories need recursive).
    ddata = globus_sdk.DeleteData(endpoint=collection, recursive=True, label="cleanup")
    ddata.add_item("/sdk-dst/")
    deleted = tc.submit_delete(ddata)
    assert deleted["code"] == "Accepted"
    assert tc.task_wait(deleted["task_id"], timeout=60, polling_interval=1)
    assert tc.get_task(deleted["task_id"])["status"] == "SUCCEEDED"
    assert not (storage / "sdk-dst").exists()

    # Errors are TransferAPIError with the documented codes, and nothing is queued.
    before = tc.task_list(limit=1)["total"]
    empty = globus_sdk.TransferData(source_endpoint=collection, destination_endpoint=collection)
    with pytest.raises(globus_sdk.TransferAPIError) as err:
        tc.submit_transfer(empty)
    assert (err.value.http_status, err.value.code) == (400, "ClientError.BadRequest.NoTransferItems")
    inside = globus_sdk.TransferData(source_endpoint=collection, destination_endpoint=collection)
    inside.add_item("/sdk-src/", "/sdk-src/deeper/", recursive=True)
    with pytest.raises(globus_sdk.TransferAPIError) as err:
        tc.submit_transfer(inside)
    assert err.value.code == "ClientError.BadRequest"
    assert tc.task_list(limit=1)["total"] == before


def test_cli_transfer_task_wait_show_events_and_delete(
    ferry: FerryServer, collection: str, tmp_path: Path
) -> None:
    storage = ferry.data_dir / "storage"
    make_tree(storage / "cli-src")
    home = tmp_path / "home"
    home.mkdir()
    admin = ferry.admin

    def globus(*args: str) -> CommandResult:
        return ferry.globus(home, *args, client_id=admin["client_id"], client_secret=admin["client_secret"])

    def ok(res: CommandResult) -> CommandResult:
        assert res.returncode == 0, res.describe()
        return res

    out = ok(globus("transfer", "--recursive", "--sync-level", "checksum", "--label", "cli copy",
                    f"{collection}:/cli-src/", f"{collection}:/cli-dst/", "-F", "json")).json()
    task_id = out["task_id"]
    ok(globus("task", "wait", task_id, "--timeout", "120", "--polling-interval", "1"))
    shown = ok(globus("task", "show", task_id, "-F", "json")).json()
    assert shown["status"] == "SUCCEEDED" and shown["files"] == 31, shown
    assert files_under(storage / "cli-src") == files_under(storage / "cli-dst")
    text = ok(globus("task", "show", task_id)).stdout
    assert "SUCCEEDED" in text and "cli copy" in text, text
    events = ok(globus("task", "event-list", task_id, "-F", "json")).json()
    assert any(e["code"] == "SUCCEEDED" for e in events["DATA"]), events
    listed = ok(globus("task", "list", "-F", "json")).json()
    assert task_id in [t["task_id"] for t in listed["DATA"]]

    out = ok(globus("delete", "-r", f"{collection}:/cli-dst/", "-F", "json")).json()
    ok(globus("task", "wait", out["task_id"], "--timeout", "60", "--polling-interval", "1"))
    assert not (storage / "cli-dst").exists()

    # A task that fails makes `globus task wait` exit non-zero.
    out = ok(globus("delete", f"{collection}:/cli-src/", "-F", "json")).json()  # a folder without -r
    res = globus("task", "wait", out["task_id"], "--timeout", "60", "--polling-interval", "1")
    assert res.returncode != 0, res.describe()
    shown = ok(globus("task", "show", out["task_id"], "-F", "json")).json()
    assert shown["status"] == "FAILED", json.dumps(shown)
