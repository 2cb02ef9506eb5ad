"""globus-cli 3.44.0 as a person: `globus login --no-local-server` through Ferry's
login and consent pages, then commands that must refresh (and persist rotated refresh
tokens) on every run, then `globus logout`.

Runs against its own server whose access tokens live 30 s, below the SDK's
EXPIRES_ADJUST_SECONDS (60 s) margin, so every CLI process refreshes the tokens it
uses before its first call."""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
import typing as t
from pathlib import Path

import globus_sdk
import pytest
from globus_sdk.authorizers.renewing import EXPIRES_ADJUST_SECONDS
from globus_sdk.token_storage.legacy import SQLiteAdapter

from ferry_harness import (
    COMMAND_TIMEOUT,
    CommandResult,
    FerryServer,
    browser_login,
    expect_auth_error,
    globus_executable,
    globus_login,
    new_person,
    start_server,
    stop_server,
)

ACCESS_TOKEN_LIFETIME = 30
assert ACCESS_TOKEN_LIFETIME < EXPIRES_ADJUST_SECONDS

NAMESPACE = "userprofile/ferry"
AUTH_RS = "auth.globus.org"
GROUPS_RS = "groups.api.globus.org"


@pytest.fixture(scope="module")
def short_ferry(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[FerryServer]:
    server = start_server(
        tmp_path_factory.mktemp("ferry-short-tokens"),
        env={"FERRY_AUTH__ACCESS_TOKEN_LIFETIME_SECS": str(ACCESS_TOKEN_LIFETIME)},
    )
    try:
        yield server
    finally:
        stop_server(server)


@pytest.fixture(scope="module")
def user(short_ferry: FerryServer) -> dict[str, str]:
    return new_person(short_ferry, "bob")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli-user-home")


def stored_tokens(home: Path) -> dict[str, dict[str, t.Any]]:
    adapter = SQLiteAdapter(str(home / ".globus" / "cli" / "storage.db"), namespace=NAMESPACE)
    try:
        return t.cast(dict, adapter.get_by_resource_server())
    finally:
        adapter.close()


def stored_config(home: Path, name: str) -> dict[str, t.Any] | None:
    adapter = SQLiteAdapter(str(home / ".globus" / "cli" / "storage.db"), namespace=NAMESPACE)
    try:
        return adapter.read_config(name)
    finally:
        adapter.close()


def templated_client(server: FerryServer, home: Path) -> globus_sdk.ConfidentialAppAuthClient:
    """The per-install client `globus login` registered from the CLI template."""
    data = stored_config(home, "auth_client_data")
    assert data, "the CLI stored no auth_client_data"
    return globus_sdk.ConfidentialAppAuthClient(
        data["client_id"], data["client_secret"], base_url=server.base_url + "/"
    )


@pytest.fixture(scope="module")
def logged_in(short_ferry: FerryServer, home: Path, user: dict[str, str]) -> CommandResult:
    result = globus_login(short_ferry, home, user)
    assert result.returncode == 0, result.describe()
    return result


def globus(server: FerryServer, home: Path, *args: str) -> CommandResult:
    return server.globus(home, *args)


def ok(result: CommandResult) -> CommandResult:
    assert result.returncode == 0, result.describe()
    return result


def test_login(logged_in: CommandResult, home: Path, user: dict[str, str]) -> None:
    assert "You have successfully logged in to the Globus CLI!" in logged_in.stdout
    tokens = stored_tokens(home)
    # all the resource servers the CLI asks for at login
    for rs in (AUTH_RS, "transfer.api.globus.org", GROUPS_RS, "search.api.globus.org"):
        assert rs in tokens, f"no {rs} token stored: {sorted(tokens)}"
        assert tokens[rs]["refresh_token"], tokens[rs]
    assert stored_config(home, "auth_user_data") == {"sub": user["id"]}
    # the server honours FERRY_AUTH__ACCESS_TOKEN_LIFETIME_SECS, so later commands
    # really exercise refreshing
    lifetime = tokens[AUTH_RS]["expires_at_seconds"] - time.time()
    assert lifetime <= ACCESS_TOKEN_LIFETIME + 5, f"access token lives {lifetime:.0f}s"


def test_whoami(
    logged_in: CommandResult, short_ferry: FerryServer, home: Path, user: dict[str, str]
) -> None:
    result = ok(globus(short_ferry, home, "whoami"))
    assert result.stdout.strip() == user["username"], result.describe()
    data = ok(globus(short_ferry, home, "whoami", "-F", "json")).json()
    assert data["sub"] == user["id"], data
    assert data["name"] == user["name"] and data["email"] == user["email"], data


def test_login_again_is_noop(
    logged_in: CommandResult, short_ferry: FerryServer, home: Path
) -> None:
    # validates every stored refresh token (POST /v2/oauth2/token/validate)
    result = ok(globus(short_ferry, home, "login", "--no-local-server"))
    assert "You are already logged in!" in result.stdout, result.describe()


def test_refresh_token_rotation_persists_across_processes(
    logged_in: CommandResult, short_ferry: FerryServer, home: Path, user: dict[str, str]
) -> None:
    before = stored_tokens(home)
    auth_rt0 = before[AUTH_RS]["refresh_token"]
    groups_rt0 = before[GROUPS_RS]["refresh_token"]

    first = ok(globus(short_ferry, home, "whoami"))
    assert first.stdout.strip() == user["username"], first.describe()
    auth_rt1 = stored_tokens(home)[AUTH_RS]["refresh_token"]
    assert auth_rt1 != auth_rt0, "whoami did not refresh+store a rotated Auth refresh token"

    second = ok(globus(short_ferry, home, "whoami"))
    assert second.stdout.strip() == user["username"], second.describe()
    auth_rt2 = stored_tokens(home)[AUTH_RS]["refresh_token"]
    assert auth_rt2 not in (auth_rt0, auth_rt1)

    ok(globus(short_ferry, home, "group", "list"))
    groups_rt1 = stored_tokens(home)[GROUPS_RS]["refresh_token"]
    assert groups_rt1 != groups_rt0
    listing = ok(globus(short_ferry, home, "group", "list", "-F", "json")).json()
    assert isinstance(listing, list), listing
    assert stored_tokens(home)[GROUPS_RS]["refresh_token"] != groups_rt1

    # each process used what the previous one stored: the live tokens are valid
    client = templated_client(short_ferry, home)
    for rs in (AUTH_RS, GROUPS_RS):
        live = stored_tokens(home)[rs]["refresh_token"]
        res = client.post("/v2/oauth2/token/validate", data={"token": live}, encoding="form")
        assert res["active"] is True, f"current {rs} refresh token not valid: {res.data}"


def test_superseded_refresh_token_validates_inactive(
    logged_in: CommandResult, short_ferry: FerryServer, home: Path, user: dict[str, str]
) -> None:
    """The CLI decides whether it is logged in by POSTing each stored refresh token
    to /v2/oauth2/token/validate. Once rotated away (refreshing with it is refused with
    invalid_grant), a refresh token must validate as inactive. Checked with /validate,
    not by refreshing: replaying a rotated refresh token may make Ferry revoke the
    live one too."""
    stale = stored_tokens(home)[AUTH_RS]["refresh_token"]
    ok(globus(short_ferry, home, "whoami"))
    live = stored_tokens(home)[AUTH_RS]["refresh_token"]
    assert live != stale
    client = templated_client(short_ferry, home)
    res = client.post("/v2/oauth2/token/validate", data={"token": stale}, encoding="form")
    assert res.data == {"active": False}, (
        f"POST /v2/oauth2/token/validate token=<rotated-away refresh token> answered "
        f"{res.http_status} {res.data}"
    )
    res = client.post("/v2/oauth2/token/validate", data={"token": live}, encoding="form")
    assert res.data == {"active": True}, res.data


def test_person_creates_group(
    logged_in: CommandResult, short_ferry: FerryServer, home: Path
) -> None:
    created = ok(globus(short_ferry, home, "group", "create", "bob's group", "-F", "json"))
    group_id = created.json()["id"]
    listing = ok(globus(short_ferry, home, "group", "list", "-F", "json")).json()
    assert group_id in {g["id"] for g in listing}, listing
    ok(globus(short_ferry, home, "group", "delete", group_id))


def test_session_show(
    logged_in: CommandResult, short_ferry: FerryServer, home: Path, user: dict[str, str]
) -> None:
    """`globus session show` introspects the CLI's Auth token with include=session_info and prints the
    identity of each authentication in the session with its time (issue 13: it printed an empty table)."""
    before = int(time.time())
    shown = ok(globus(short_ferry, home, "session", "show", "-F", "json")).json()
    assert shown.get("session_id"), shown
    auths = shown.get("authentications") or {}
    assert list(auths) == [user["id"]], shown
    auth_time = auths[user["id"]]["auth_time"]
    # the login of this module, not the (refreshed) token's issue time
    assert auth_time <= before, shown
    table = ok(globus(short_ferry, home, "session", "show"))
    assert user["username"] in table.stdout and user["id"] in table.stdout, table.describe()


def test_logout(
    logged_in: CommandResult, short_ferry: FerryServer, home: Path, user: dict[str, str]
) -> None:
    tokens = stored_tokens(home)
    client = templated_client(short_ferry, home)

    result = ok(globus(short_ferry, home, "logout", "--yes"))
    assert f"Logging out of Globus as {user['username']}" in result.stdout, result.describe()
    assert "successfully logged out" in result.stdout, result.describe()
    assert stored_tokens(home) == {}
    assert stored_config(home, "auth_user_data") is None

    # what logout revoked is dead. (Auth is left out: logout's own userinfo call
    # refreshed -- and so rotated -- the Auth token before revoking it.)
    for rs, data in tokens.items():
        if rs == AUTH_RS:
            continue
        expect_auth_error(
            lambda: client.oauth2_refresh_token(data["refresh_token"]),
            f"refreshing the {rs} refresh token `globus logout` revoked",
            error="invalid_grant",
        )

    after = globus(short_ferry, home, "whoami")
    assert after.returncode != 0, after.describe()
    assert "globus login" in after.stderr, after.describe()
