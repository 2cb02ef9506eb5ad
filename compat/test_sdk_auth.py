"""globus-sdk 4.9.0 against Ferry's Auth API: client credentials, identities,
native-app (PKCE) login with refresh-token rotation, introspection and revocation;
and the Groups API's invitations (BatchMembershipActions) for people who logged in."""

from __future__ import annotations

import stat
import time
import typing as t

import globus_sdk
import pytest
import requests

from ferry_harness import (
    AUTH_SCOPES,
    TRANSFER_SCOPE,
    BrowserLoginError,
    FerryServer,
    browser_login,
    expect_auth_error,
    new_person,
    start_server,
    stop_server,
)

AUTH_RS = "auth.globus.org"
# globus_cli.login_manager.storage._template_client_id() outside the known Globus envs
GLOBUS_CLI_TEMPLATE_ID = "95fdeba8-fac2-42bd-a357-e068d82ff78e"
TRANSFER_RS = "transfer.api.globus.org"


def scopes_of(token: dict[str, t.Any]) -> set[str]:
    return set(str(token["scope"]).split())


def assert_token_shape(token: dict[str, t.Any], resource_server: str) -> None:
    assert token["resource_server"] == resource_server, token
    assert isinstance(token["access_token"], str) and token["access_token"], token
    assert str(token["token_type"]).lower() == "bearer", token
    assert token["expires_at_seconds"] > time.time() + 60, token


@pytest.fixture(scope="module")
def admin_client(admin: dict[str, str]) -> globus_sdk.ConfidentialAppAuthClient:
    return globus_sdk.ConfidentialAppAuthClient(admin["client_id"], admin["client_secret"])


# -- bootstrap -----------------------------------------------------------------


def test_admin_credentials_file(ferry: FerryServer) -> None:
    path = ferry.data_dir / "admin-credentials.json"
    mode = stat.S_IMODE(path.stat().st_mode)
    assert mode == 0o600, f"{path} has mode {oct(mode)}, expected 0o600"
    creds = ferry.admin
    for key in ("url", "username", "password", "client_id", "client_secret"):
        assert creds.get(key), f"admin-credentials.json lacks {key!r}: {sorted(creds)}"
    assert creds["username"] == "admin@ferry.local"
    assert creds["url"].rstrip("/") == ferry.base_url


def test_openid_configuration(ferry: FerryServer) -> None:
    # what IDTokenDecoder relies on
    conf = requests.get(f"{ferry.base_url}/.well-known/openid-configuration", timeout=10).json()
    assert conf["issuer"], conf
    assert conf["id_token_signing_alg_values_supported"], conf
    jwks = requests.get(conf["jwks_uri"], timeout=10).json()
    assert jwks["keys"], jwks


# -- 1. client credentials + identities -----------------------------------------


def test_client_credentials_transfer_scope(
    admin_client: globus_sdk.ConfidentialAppAuthClient,
) -> None:
    tokens = admin_client.oauth2_client_credentials_tokens(requested_scopes=TRANSFER_SCOPE)
    assert "other_tokens" in tokens.data, tokens.data
    assert set(tokens.by_resource_server) == {TRANSFER_RS}, tokens.data
    token = tokens.by_resource_server[TRANSFER_RS]
    assert_token_shape(token, TRANSFER_RS)
    assert scopes_of(token) == {TRANSFER_SCOPE}, token
    assert not token["refresh_token"], "client_credentials must not issue refresh tokens"


def test_client_credentials_auth_scopes(
    admin_client: globus_sdk.ConfidentialAppAuthClient,
) -> None:
    tokens = admin_client.oauth2_client_credentials_tokens(requested_scopes=AUTH_SCOPES)
    assert set(tokens.by_resource_server) == {AUTH_RS}, tokens.data
    assert tokens.data["other_tokens"] == [], tokens.data
    token = tokens.by_resource_server[AUTH_RS]
    assert_token_shape(token, AUTH_RS)
    assert scopes_of(token) == set(AUTH_SCOPES.split()), token


def test_client_credentials_two_resource_servers(
    admin_client: globus_sdk.ConfidentialAppAuthClient,
) -> None:
    tokens = admin_client.oauth2_client_credentials_tokens(
        requested_scopes=[AUTH_SCOPES, TRANSFER_SCOPE]
    )
    assert len(tokens.data["other_tokens"]) == 1, tokens.data
    assert set(tokens.by_resource_server) == {AUTH_RS, TRANSFER_RS}, tokens.data
    assert_token_shape(tokens.by_resource_server[AUTH_RS], AUTH_RS)
    assert_token_shape(tokens.by_resource_server[TRANSFER_RS], TRANSFER_RS)
    assert scopes_of(tokens.by_resource_server[AUTH_RS]) == set(AUTH_SCOPES.split())
    assert scopes_of(tokens.by_resource_server[TRANSFER_RS]) == {TRANSFER_SCOPE}
    assert (
        tokens.by_resource_server[AUTH_RS]["access_token"]
        != tokens.by_resource_server[TRANSFER_RS]["access_token"]
    )
    # by_scopes indexing works across both tokens
    assert tokens.by_scopes["openid email"]["resource_server"] == AUTH_RS
    assert tokens.by_scopes[TRANSFER_SCOPE]["resource_server"] == TRANSFER_RS


def test_client_credentials_bad_secret(admin: dict[str, str]) -> None:
    bad = globus_sdk.ConfidentialAppAuthClient(admin["client_id"], "not-the-secret")
    expect_auth_error(
        lambda: bad.oauth2_client_credentials_tokens(requested_scopes=AUTH_SCOPES),
        "client_credentials grant with a wrong client secret",
        error="invalid_client",
        statuses=(401,),
    )


def auth_token(admin_client: globus_sdk.ConfidentialAppAuthClient) -> str:
    tokens = admin_client.oauth2_client_credentials_tokens(requested_scopes=AUTH_SCOPES)
    return str(tokens.by_resource_server[AUTH_RS]["access_token"])


def assert_is_person(identity: dict[str, t.Any], person: dict[str, str]) -> None:
    assert identity["id"] == person["id"], identity
    assert identity["username"] == person["username"], identity
    assert identity.get("name") == person["name"], identity
    assert identity.get("email") == person["email"], identity


def test_get_identities_by_username_and_id(
    admin_client: globus_sdk.ConfidentialAppAuthClient, person: dict[str, str]
) -> None:
    ac = globus_sdk.AuthClient(
        authorizer=globus_sdk.AccessTokenAuthorizer(auth_token(admin_client))
    )
    by_name = ac.get_identities(usernames=[person["username"]])
    assert len(by_name["identities"]) == 1, by_name.data
    assert_is_person(by_name["identities"][0], person)

    by_id = ac.get_identities(ids=[person["id"]])
    assert len(by_id["identities"]) == 1, by_id.data
    assert_is_person(by_id["identities"][0], person)

    unknown = ac.get_identities(usernames=["nobody-such-user@ferry.local"])
    assert unknown["identities"] == [], unknown.data


def test_get_identities_several_usernames(
    ferry: FerryServer,
    admin_client: globus_sdk.ConfidentialAppAuthClient,
    person: dict[str, str],
) -> None:
    ac = globus_sdk.AuthClient(
        authorizer=globus_sdk.AccessTokenAuthorizer(auth_token(admin_client))
    )
    res = ac.get_identities(usernames=[person["username"], ferry.admin["username"]])
    found = {i["username"] for i in res["identities"]}
    assert found == {person["username"], ferry.admin["username"]}, res.data


def test_client_credentials_authorizer(
    admin_client: globus_sdk.ConfidentialAppAuthClient,
    admin: dict[str, str],
    person: dict[str, str],
) -> None:
    authorizer = globus_sdk.ClientCredentialsAuthorizer(admin_client, AUTH_SCOPES)
    ac = globus_sdk.AuthClient(authorizer=authorizer)
    res = ac.get_identities(usernames=person["username"])
    assert [i["id"] for i in res["identities"]] == [person["id"]], res.data
    info = ac.userinfo()
    assert info["sub"] == admin["client_id"], info.data
    assert info["preferred_username"] == f"{admin['client_id']}@clients.ferry.local", info.data


def test_unauthenticated_identities_call_is_401() -> None:
    expect_auth_error(
        lambda: globus_sdk.AuthClient().get_identities(usernames="x@ferry.local"),
        "GET /v2/api/identities without a bearer token",
        statuses=(401,),
    )


# -- 2. native app login with PKCE ----------------------------------------------


def start_native_flow(client_id: str) -> tuple[globus_sdk.NativeAppAuthClient, str]:
    nc = globus_sdk.NativeAppAuthClient(client_id)
    nc.oauth2_start_flow(requested_scopes=[AUTH_SCOPES, TRANSFER_SCOPE], refresh_tokens=True)
    return nc, nc.oauth2_get_authorize_url()


def test_native_app_login_refresh_and_rotation(
    ferry: FerryServer, native_client: dict[str, t.Any], person: dict[str, str]
) -> None:
    nc, url = start_native_flow(native_client["client_id"])
    login = browser_login(url, person["username"], person["password"])
    assert login.state == "_default", login
    assert login.redirect_url.startswith(f"{ferry.base_url}/v2/web/auth-code?"), login
    assert login.displayed_code == login.code, (
        "the auth-code page must show the code in <code id=\"auth-code\">", login
    )

    tokens = nc.oauth2_exchange_code_for_tokens(login.code)
    assert set(tokens.by_resource_server) == {AUTH_RS, TRANSFER_RS}, tokens.data
    for rs in (AUTH_RS, TRANSFER_RS):
        assert_token_shape(tokens.by_resource_server[rs], rs)
        assert tokens.by_resource_server[rs]["refresh_token"], tokens.data
    assert scopes_of(tokens.by_resource_server[AUTH_RS]) == set(AUTH_SCOPES.split())
    assert scopes_of(tokens.by_resource_server[TRANSFER_RS]) == {TRANSFER_SCOPE}

    claims = tokens.decode_id_token()
    assert claims["sub"] == person["id"], claims
    assert claims["aud"] in (native_client["client_id"], [native_client["client_id"]])
    issuer = nc.get_openid_configuration()["issuer"]
    assert claims["iss"] == issuer, claims

    # the person's access token is a real bearer token for Auth
    ac = globus_sdk.AuthClient(
        authorizer=globus_sdk.AccessTokenAuthorizer(
            tokens.by_resource_server[AUTH_RS]["access_token"]
        )
    )
    info = ac.userinfo()
    assert info["sub"] == person["id"], info.data
    assert info["preferred_username"] == person["username"], info.data

    # refresh rotates the refresh token ...
    rt0 = tokens.by_resource_server[TRANSFER_RS]["refresh_token"]
    refreshed = nc.oauth2_refresh_token(rt0)
    assert set(refreshed.by_resource_server) == {TRANSFER_RS}, refreshed.data
    new = refreshed.by_resource_server[TRANSFER_RS]
    assert_token_shape(new, TRANSFER_RS)
    assert scopes_of(new) == {TRANSFER_SCOPE}, new
    assert new["refresh_token"] and new["refresh_token"] != rt0, refreshed.data
    assert new["access_token"] != tokens.by_resource_server[TRANSFER_RS]["access_token"]

    # ... the rotated one keeps working (and rotates again) ...
    rt1 = new["refresh_token"]
    again = nc.oauth2_refresh_token(rt1)
    rt2 = again.by_resource_server[TRANSFER_RS]["refresh_token"]
    assert rt2 and rt2 not in (rt0, rt1), again.data

    # ... and a superseded one is refused. (Ferry may then revoke the whole refresh
    # family as a replay; nothing below relies on it.)
    expect_auth_error(
        lambda: nc.oauth2_refresh_token(rt0),
        "refreshing with a refresh token that was already rotated away",
        error="invalid_grant",
    )

    # the code is single-use
    expect_auth_error(
        lambda: nc.oauth2_exchange_code_for_tokens(login.code),
        "exchanging an authorization code a second time",
        error="invalid_grant",
    )


def test_native_app_wrong_pkce_verifier(
    native_client: dict[str, t.Any], person: dict[str, str]
) -> None:
    flow_a, url_a = start_native_flow(native_client["client_id"])
    flow_b, _url_b = start_native_flow(native_client["client_id"])
    login = browser_login(url_a, person["username"], person["password"])
    # exchanging A's code with B's verifier must fail
    expect_auth_error(
        lambda: flow_b.oauth2_exchange_code_for_tokens(login.code),
        "exchanging a PKCE code with another flow's code_verifier",
        error="invalid_grant",
    )


def test_login_with_wrong_password_gets_no_code(
    ferry: FerryServer, native_client: dict[str, t.Any]
) -> None:
    victim = new_person(ferry, "carol")
    _nc, url = start_native_flow(native_client["client_id"])
    with pytest.raises(BrowserLoginError):
        browser_login(url, victim["username"], "definitely-wrong")


# -- 3. introspection and revocation ------------------------------------------


def test_introspect_and_revoke(
    admin_client: globus_sdk.ConfidentialAppAuthClient, admin: dict[str, str]
) -> None:
    token = auth_token(admin_client)
    before = time.time()
    data = admin_client.oauth2_token_introspect(token)
    assert data["active"] is True, data.data
    assert data["sub"] == admin["client_id"], data.data
    assert data["username"] == f"{admin['client_id']}@clients.ferry.local", data.data
    assert set(data["scope"].split()) == set(AUTH_SCOPES.split()), data.data
    assert isinstance(data["exp"], int) and data["exp"] > before, data.data
    assert data.get("client_id") == admin["client_id"], data.data

    admin_client.oauth2_revoke_token(token)
    after = admin_client.oauth2_token_introspect(token)
    assert after.data == {"active": False}, after.data

    # and the revoked token no longer authorizes calls
    ac = globus_sdk.AuthClient(authorizer=globus_sdk.AccessTokenAuthorizer(token))
    expect_auth_error(
        ac.userinfo, "GET /v2/oauth2/userinfo with a revoked access token", statuses=(401,)
    )


def test_revoke_through_globus_cli_template_client(
    ferry: FerryServer, person: dict[str, str]
) -> None:
    """What `globus login` then `globus logout` do at the wire level: register a client
    from the CLI's template id (unauthenticated POST /v2/api/clients), log a person in
    with it, then revoke the tokens through the *template* id as a native client,
    i.e. POST /v2/oauth2/token/revoke with token=...&client_id=<template id> and no
    secret. `globus logout` treats any error there as fatal."""
    template = globus_sdk.NativeAppAuthClient(GLOBUS_CLI_TEMPLATE_ID)
    registered = template.post(
        "/v2/api/clients",
        data={"client": {"template_id": GLOBUS_CLI_TEMPLATE_ID, "name": "Globus CLI"}},
    )
    cred = registered["included"]["client_credential"]
    cli_client = globus_sdk.ConfidentialAppAuthClient(cred["client"], cred["secret"])
    cli_client.oauth2_start_flow(
        redirect_uri=cli_client.base_url + "v2/web/auth-code",
        requested_scopes=AUTH_SCOPES,
        refresh_tokens=True,
    )
    url = cli_client.oauth2_get_authorize_url(query_params={"prompt": "login"})
    code = browser_login(url, person["username"], person["password"]).code
    tokens = cli_client.oauth2_exchange_code_for_tokens(code).by_resource_server[AUTH_RS]

    for kind in ("access_token", "refresh_token"):
        res = template.oauth2_revoke_token(tokens[kind])
        assert res.http_status == 200, res.data
    for kind in ("access_token", "refresh_token"):
        res = cli_client.post(
            "/v2/oauth2/token/validate", data={"token": tokens[kind]}, encoding="form"
        )
        assert res.data == {"active": False}, f"{kind} still active after revocation"


def test_introspect_garbage_token(admin_client: globus_sdk.ConfidentialAppAuthClient) -> None:
    assert admin_client.oauth2_token_introspect("not-a-token").data == {"active": False}


def test_revoked_refresh_token_is_refused(
    admin_client: globus_sdk.ConfidentialAppAuthClient,
    native_client: dict[str, t.Any],
    person: dict[str, str],
) -> None:
    """A refresh token revoked through the native client is inactive everywhere."""
    nc, url = start_native_flow(native_client["client_id"])
    tokens = nc.oauth2_exchange_code_for_tokens(
        browser_login(url, person["username"], person["password"]).code
    )
    rt = tokens.by_resource_server[AUTH_RS]["refresh_token"]
    nc.oauth2_revoke_token(rt)
    expect_auth_error(
        lambda: nc.oauth2_refresh_token(rt),
        "refreshing with a revoked refresh token",
        error="invalid_grant",
    )


# -- configuration ---------------------------------------------------------------


def test_config_file_sets_access_token_lifetime(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """`ferry serve --config FILE` with `[auth] access_token_lifetime_secs` is what
    clients see as `expires_in`."""
    server = start_server(
        tmp_path_factory.mktemp("ferry-config"),
        config="[auth]\naccess_token_lifetime_secs = 1234\n",
    )
    try:
        client = globus_sdk.ConfidentialAppAuthClient(
            server.admin["client_id"],
            server.admin["client_secret"],
            base_url=server.base_url + "/",
        )
        tokens = client.oauth2_client_credentials_tokens(requested_scopes=AUTH_SCOPES)
        assert tokens["expires_in"] == 1234, tokens.data
    finally:
        stop_server(server)


# -- 4. the scope registry and dependent tokens (issue 13) ---------------------

MANAGE_PROJECTS = "urn:globus:auth:scope:auth.globus.org:manage_projects"


def test_scope_api_and_a_dependent_token_chain(ferry: FerryServer, person: dict[str, str]) -> None:
    """A portal registers its scope with Transfer as a dependency through the SDK's scope API; a web
    application asks a person for the portal's scope (the consent covers Transfer); the portal exchanges
    the token it receives for a Transfer token as the person. A dependency the scope does not declare is
    refused, and so is a dependent token the consent did not cover."""
    created = ferry.create_client("compat portal")
    portal = globus_sdk.ConfidentialAppAuthClient(created["client_id"], created["client_secret"])
    manage = portal.oauth2_client_credentials_tokens(requested_scopes=MANAGE_PROJECTS)
    ac = globus_sdk.AuthClient(
        authorizer=globus_sdk.AccessTokenAuthorizer(
            manage.by_resource_server[AUTH_RS]["access_token"]
        )
    )
    transfer = ac.get_scopes(scope_strings=[TRANSFER_SCOPE])["scopes"]
    assert [s["scope_string"] for s in transfer] == [TRANSFER_SCOPE], transfer
    made = ac.create_scope(
        portal.client_id,
        "Portal",
        "Runs analyses for you",
        "portal",
        dependent_scopes=[globus_sdk.DependentScopeSpec(transfer[0]["id"], False, True)],
    )["scope"]
    portal_scope = f"https://auth.globus.org/scopes/{portal.client_id}/portal"
    assert made["scope_string"] == portal_scope, made
    assert made["client"] == portal.client_id, made
    assert made["dependent_scopes"] == [
        {"scope": transfer[0]["id"], "optional": False, "requires_refresh_token": True}
    ], made
    assert ac.get_scope(made["id"])["scope"]["scope_string"] == portal_scope
    assert [s["id"] for s in ac.get_scopes(ids=[made["id"]])] == [made["id"]]
    assert made["id"] in {s["id"] for s in ac.get_scopes()}
    renamed = ac.update_scope(made["id"], name="Portal analyses")["scope"]
    assert renamed["name"] == "Portal analyses" and renamed["dependent_scopes"], renamed
    spare = ac.create_scope(portal.client_id, "Spare", "unused", "spare")["scope"]
    assert ac.delete_scope(spare["id"])["scope"]["id"] == spare["id"]
    expect_auth_error(lambda: ac.get_scope(spare["id"]), "GET a deleted scope", statuses=(404,))

    web_created = ferry.create_client("compat web app")
    web = globus_sdk.ConfidentialAppAuthClient(
        web_created["client_id"], web_created["client_secret"]
    )
    redirect = web.base_url + "v2/web/auth-code"
    web.oauth2_start_flow(redirect_uri=redirect, requested_scopes=f"{portal_scope}[{AUTH_SCOPES.split()[0]}]")
    with pytest.raises(BrowserLoginError, match="invalid_scope"):
        browser_login(web.oauth2_get_authorize_url(), person["username"], person["password"])

    web.oauth2_start_flow(redirect_uri=redirect, requested_scopes=portal_scope)
    code = browser_login(
        web.oauth2_get_authorize_url(), person["username"], person["password"]
    ).code
    token = web.oauth2_exchange_code_for_tokens(code).by_resource_server[portal.client_id]
    dependent = portal.oauth2_get_dependent_tokens(token["access_token"])
    got = dependent.by_resource_server[TRANSFER_RS]
    assert got["scope"] == TRANSFER_SCOPE, dependent.data
    seen = portal.oauth2_token_introspect(got["access_token"])
    assert seen["sub"] == person["id"], seen.data
    expect_auth_error(
        lambda: portal.oauth2_get_dependent_tokens(
            token["access_token"], scope="urn:globus:auth:scope:groups.api.globus.org:all"
        ),
        "a dependent token for a scope the portal's scope does not declare",
        error="invalid_scope",
    )


# -- 5. group invitations (BatchMembershipActions) -------------------------------

GROUPS_SCOPE = "urn:globus:auth:scope:groups.api.globus.org:all"


def groups_client_of(native_client: dict[str, t.Any], who: dict[str, str]) -> globus_sdk.GroupsClient:
    """A GroupsClient as `who`, after a native-app login in a browser."""
    nc = globus_sdk.NativeAppAuthClient(native_client["client_id"])
    nc.oauth2_start_flow(requested_scopes=GROUPS_SCOPE)
    code = browser_login(nc.oauth2_get_authorize_url(), who["username"], who["password"]).code
    token = nc.oauth2_exchange_code_for_tokens(code).by_resource_server["groups.api.globus.org"]
    return globus_sdk.GroupsClient(authorizer=globus_sdk.AccessTokenAuthorizer(token["access_token"]))


def test_group_invitations_are_accepted_or_declined_by_the_invitee(
    ferry: FerryServer, native_client: dict[str, t.Any]
) -> None:
    """invite_members, accept_invites and decline_invites as the SDK sends them: a manager invites, only the
    invitee answers, and an invitation is no membership until it is accepted."""
    owner, alice, bob = (new_person(ferry, n) for n in ("gowner", "galice", "gbob"))
    gc_owner, gc_alice, gc_bob = (groups_client_of(native_client, p) for p in (owner, alice, bob))
    gid = gc_owner.create_group({"name": "compat invitations"})["id"]

    invited = gc_owner.batch_membership_action(gid, globus_sdk.BatchMembershipActions()
                                               .invite_members([alice["id"]])
                                               .invite_members([bob["id"]], role="manager"))
    assert [(m["identity_id"], m["role"], m["status"]) for m in invited["invite"]] == [
        (alice["id"], "member", "invited"), (bob["id"], "manager", "invited")], invited.data
    assert "errors" not in invited.data, invited.data
    # the invitee sees the invitation only under its status; an invited manager manages nothing yet
    assert list(gc_alice.get_my_groups()) == []
    assert [g["id"] for g in gc_alice.get_my_groups(statuses="invited")] == [gid]
    r = gc_bob.batch_membership_action(gid, globus_sdk.BatchMembershipActions().invite_members([owner["id"]]))
    assert r["errors"]["invite"][0]["code"] == "FORBIDDEN", r.data

    # nobody answers for another: not the group's admin, not another invitee
    for gc in (gc_owner, gc_bob):
        r = gc.batch_membership_action(gid, globus_sdk.BatchMembershipActions().accept_invites([alice["id"]]))
        assert r["accept"] == [] and r["errors"]["accept"][0]["code"] == "FORBIDDEN", r.data

    r = gc_alice.batch_membership_action(gid, globus_sdk.BatchMembershipActions().accept_invites([alice["id"]]))
    assert r["accept"][0]["status"] == "active", r.data
    assert [g["id"] for g in gc_alice.get_my_groups()] == [gid]
    r = gc_alice.batch_membership_action(gid, globus_sdk.BatchMembershipActions().invite_members([owner["id"]]))
    assert r["errors"]["invite"][0]["code"] == "FORBIDDEN", "a member is no manager"

    r = gc_bob.batch_membership_action(gid, globus_sdk.BatchMembershipActions().decline_invites([bob["id"]]))
    assert r["decline"][0]["status"] == "declined", r.data
    with pytest.raises(globus_sdk.GroupsAPIError) as err:
        gc_bob.get_group(gid)
    assert err.value.http_status == 404
    members = {m["identity_id"]: m["status"]
               for m in gc_owner.get_group(gid, include=["memberships"])["memberships"]}
    assert members == {owner["id"]: "active", alice["id"]: "active", bob["id"]: "declined"}, members
