"""globus-cli 3.44.0 in client-credential mode (GLOBUS_CLI_CLIENT_ID/SECRET set to
the administrator's confidential client) against Ferry."""

from __future__ import annotations

import json
import re
import secrets
import typing as t
from pathlib import Path

import pytest

from ferry_harness import CommandResult, FerryServer

UUID_RE = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"

Globus = t.Callable[..., CommandResult]


@pytest.fixture(scope="module")
def client_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli-client-home")


@pytest.fixture(scope="module")
def globus(ferry: FerryServer, admin: dict[str, str], client_home: Path) -> Globus:
    """Run `globus ...` as the admin client; one HOME for the whole module."""

    def run(*args: str) -> CommandResult:
        return ferry.globus(
            client_home,
            *args,
            client_id=admin["client_id"],
            client_secret=admin["client_secret"],
        )

    return run


def ok(result: CommandResult) -> CommandResult:
    assert result.returncode == 0, result.describe()
    return result


def test_whoami(globus: Globus, admin: dict[str, str]) -> None:
    result = ok(globus("whoami"))
    assert result.stdout.strip() == f"{admin['client_id']}@clients.ferry.local", result.describe()


def test_whoami_verbose_json(globus: Globus, admin: dict[str, str]) -> None:
    data = ok(globus("whoami", "-F", "json")).json()
    assert data["sub"] == admin["client_id"], data
    assert data["preferred_username"] == f"{admin['client_id']}@clients.ferry.local", data


def test_api_auth_identities(globus: Globus, person: dict[str, str]) -> None:
    result = ok(
        globus("api", "auth", "GET", "/v2/api/identities", "-Q", f"usernames={person['username']}")
    )
    data = result.json()
    ids = [(i["id"], i["username"]) for i in data["identities"]]
    assert ids == [(person["id"], person["username"])], result.describe()


def test_get_identities_command(globus: Globus, person: dict[str, str]) -> None:
    # `globus get-identities` resolves usernames to ids (and ids back to usernames)
    result = ok(globus("get-identities", person["username"]))
    assert result.stdout.strip() == person["id"], result.describe()
    result = ok(globus("get-identities", person["id"]))
    assert result.stdout.strip() == person["username"], result.describe()


def group_ids(listing: t.Any) -> set[str]:
    return {g["id"] for g in listing}


def test_group_lifecycle(globus: Globus, admin: dict[str, str], person: dict[str, str]) -> None:
    name = f"compat-group-{secrets.token_hex(3)}"

    created = ok(globus("group", "create", name, "--description", "made by the compat suite"))
    match = re.fullmatch(rf"Group ({UUID_RE}) created successfully", created.stdout.strip())
    assert match, created.describe()
    group_id = match.group(1)

    # listed (JSON and text) for the creator
    listing = ok(globus("group", "list", "-F", "json")).json()
    assert group_id in group_ids(listing), listing
    mine = next(g for g in listing if g["id"] == group_id)
    assert mine["name"] == name, mine
    assert "admin" in {m["role"] for m in mine.get("my_memberships", [])}, mine
    text = ok(globus("group", "list"))
    assert group_id in text.stdout and name in text.stdout, text.describe()

    # add the person by username
    added = ok(globus("group", "member", "add", group_id, person["username"], "-F", "json"))
    data = added.json()
    assert data["add"][0]["identity_id"] == person["id"], data
    assert data["add"][0]["role"] == "member", data

    group = ok(globus("group", "member", "list", group_id, "-F", "json")).json()
    roles = {m["identity_id"]: m["role"] for m in group["memberships"]}
    assert roles.get(person["id"]) == "member", group
    assert roles.get(admin["client_id"]) == "admin", group
    members_text = ok(globus("group", "member", "list", group_id))
    assert person["username"] in members_text.stdout, members_text.describe()

    shown = ok(globus("group", "show", group_id, "-F", "json")).json()
    assert shown["id"] == group_id and shown["name"] == name, shown
    assert shown["description"] == "made by the compat suite", shown
    assert "admin" in {m["role"] for m in shown.get("my_memberships", [])}, shown
    shown_text = ok(globus("group", "show", group_id))
    assert name in shown_text.stdout and group_id in shown_text.stdout, shown_text.describe()

    deleted = ok(globus("group", "delete", group_id))
    assert "Group deleted successfully" in deleted.stdout, deleted.describe()

    listing = ok(globus("group", "list", "-F", "json")).json()
    assert group_id not in group_ids(listing), listing
    gone = globus("group", "show", group_id)
    assert gone.returncode != 0, gone.describe()


def test_token_storage_is_namespaced_per_client(
    globus: Globus, admin: dict[str, str], client_home: Path
) -> None:
    """The CLI caches client-credential tokens under clientprofile/ferry/<client_id>."""
    ok(globus("whoami"))
    from globus_sdk.token_storage.legacy import SQLiteAdapter

    adapter = SQLiteAdapter(
        str(client_home / ".globus" / "cli" / "storage.db"),
        namespace=f"clientprofile/ferry/{admin['client_id']}",
    )
    try:
        stored = adapter.get_by_resource_server()
    finally:
        adapter.close()
    assert "auth.globus.org" in stored, json.dumps(stored, indent=2)
    assert stored["auth.globus.org"]["refresh_token"] is None, stored
