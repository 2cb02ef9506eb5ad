"""The seed's sharing walkthrough with the real globus-sdk 4.9.0 and globus-cli 3.44.0, against a Ferry
served over HTTPS with a real SMTP sink (aiosmtpd) on loopback:

an administrator shares a top-level folder as a guest collection and gives a portal application the
access_manager role; the portal (client credentials) lists the destination, creates a folder, puts a file in
it, and adds read permissions for a person and a group; the person (with their own token) lists and
HTTPS-downloads the file while a third identity cannot. Then the same through `globus` commands, and an
e-mail invitation redeemed through the browser pages."""

from __future__ import annotations

import email
import html
import re
import time
import typing as t
from pathlib import Path

import globus_sdk
import pytest
import requests

from ferry_harness import (
    TRANSFER_SCOPE,
    CommandResult,
    FerryServer,
    browser_login,
    Sink,
    globus_executable,
    mail_sink,
    new_person,
    run,
    sdk_pointed_at,
    start_server,
    stop_server,
)


@pytest.fixture(scope="module")
def sink() -> t.Iterator[Sink]:
    with mail_sink() as handler:
        yield handler


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, sink: Sink) -> t.Iterator[FerryServer]:
    s = start_server(tmp_path_factory.mktemp("ferry-sharing"), tls=True, config=sink.config())
    try:
        with sdk_pointed_at(s.base_url, GLOBUS_SDK_VERIFY_SSL=str(s.ca_path), REQUESTS_CA_BUNDLE=str(s.ca_path)):
            yield s
    finally:
        stop_server(s)


def app_tokens(server: FerryServer, client_id: str, secret: str, scopes: list[str]) -> globus_sdk.OAuthTokenResponse:
    auth = globus_sdk.ConfidentialAppAuthClient(client_id, secret)
    return auth.oauth2_client_credentials_tokens(requested_scopes=scopes)


def https_scope(collection: str) -> str:
    return f"https://auth.globus.org/scopes/{collection}/https"


def transfer_client(token: str) -> globus_sdk.TransferClient:
    return globus_sdk.TransferClient(authorizer=globus_sdk.AccessTokenAuthorizer(token))


def test_walkthrough(server: FerryServer, sink: Sink, tmp_path: Path) -> None:
    admin = server.admin
    # The administrator's application finds the mapped collection and shares a top-level folder.
    (server.data_dir / "storage" / "share").mkdir(parents=True)
    tok = app_tokens(server, admin["client_id"], admin["client_secret"], [TRANSFER_SCOPE])
    admin_tc = transfer_client(tok.by_resource_server["transfer.api.globus.org"]["access_token"])
    mapped = [
        e for e in admin_tc.endpoint_search(filter_entity_type="GCSv5_mapped_collection")
    ]
    assert len(mapped) == 1, mapped
    created = admin_tc.create_shared_endpoint(
        {"DATA_TYPE": "shared_endpoint", "host_endpoint": mapped[0]["id"], "host_path": "/share/",
         "display_name": "Portal staging"}
    )
    guest = created["id"]
    doc = admin_tc.get_endpoint(guest)
    assert doc["entity_type"] == "GCSv5_guest_collection"
    assert doc["gcs_manager_url"] == server.base_url

    # The portal is an application with the access_manager role on the guest collection.
    portal = server.create_client("portal")
    role = admin_tc.add_endpoint_role(
        guest, {"DATA_TYPE": "role", "principal_type": "identity", "principal": portal["client_id"],
                "role": "access_manager"}
    )
    assert role["role"] == "access_manager"
    assert any(r["id"] == role["id"] for r in admin_tc.endpoint_role_list(guest))

    ptok = app_tokens(server, portal["client_id"], portal["client_secret"],
                      [TRANSFER_SCOPE, https_scope(guest)])
    tc = transfer_client(ptok.by_resource_server["transfer.api.globus.org"]["access_token"])
    portal_https = ptok.by_resource_server[guest]["access_token"]

    # share_data.py: ls the destination, ls the new folder (NotFound), mkdir, add read rules.
    tc.operation_ls(guest, path="/")
    with pytest.raises(globus_sdk.TransferAPIError) as err:
        tc.operation_ls(guest, path="/project1/")
    assert err.value.code == "ClientError.NotFound"
    tc.operation_mkdir(guest, "/project1/")
    r = requests.put(f"{server.base_url}/data/{guest}/project1/results.csv", data=b"a,b\n1,2\n",
                     headers={"Authorization": f"Bearer {portal_https}"})
    assert r.status_code == 201, r.text

    user = new_person(server, "user")
    third = new_person(server, "third")
    groups = globus_sdk.GroupsClient(authorizer=globus_sdk.AccessTokenAuthorizer(
        app_tokens(server, portal["client_id"], portal["client_secret"],
                   ["urn:globus:auth:scope:groups.api.globus.org:all"])
        .by_resource_server["groups.api.globus.org"]["access_token"]))
    group = groups.create_group({"name": "project1 readers"})
    for principal_type, principal in (("identity", user["id"]), ("group", group["id"])):
        rule = tc.add_endpoint_acl_rule(guest, {"DATA_TYPE": "access", "principal_type": principal_type,
                                               "principal": principal, "path": "/project1/",
                                               "permissions": "r"})
        assert rule["code"] == "Created" and rule["access_id"], rule.data
    with pytest.raises(globus_sdk.TransferAPIError) as err:
        tc.add_endpoint_acl_rule(guest, {"DATA_TYPE": "access", "principal_type": "identity",
                                         "principal": user["id"], "path": "/project1/", "permissions": "r"})
    assert err.value.code == "Exists"
    acl = list(tc.endpoint_acl_list(guest))
    assert {(a["principal_type"], a["path"]) for a in acl if a["id"]} == {
        ("identity", "/project1/"), ("group", "/project1/")}
    assert any(a["role_type"] == "access_manager" and a["principal"] == portal["client_id"] for a in acl)

    # The user logs in (their own token, with the collection's https scope) and reads; a third cannot.
    def person_tokens(p: dict[str, str]) -> globus_sdk.OAuthTokenResponse:
        native = server.create_client(f"cli-{p['username']}", native=True,
                                      redirect_uris=[f"{server.base_url}/v2/web/auth-code"])
        nc = globus_sdk.NativeAppAuthClient(native["client_id"])
        nc.oauth2_start_flow(requested_scopes=[TRANSFER_SCOPE, https_scope(guest)],
                             redirect_uri=f"{server.base_url}/v2/web/auth-code")
        login = browser_login(nc.oauth2_get_authorize_url(), p["username"], p["password"])
        return nc.oauth2_exchange_code_for_tokens(login.code)

    ut = person_tokens(user)
    user_tc = transfer_client(ut.by_resource_server["transfer.api.globus.org"]["access_token"])
    names = [f["name"] for f in user_tc.operation_ls(guest, path="/project1/")]
    assert names == ["results.csv"]
    got = requests.get(f"{server.base_url}/data/{guest}/project1/results.csv",
                       headers={"Authorization": f"Bearer {ut.by_resource_server[guest]['access_token']}"})
    assert (got.status_code, got.content) == (200, b"a,b\n1,2\n")
    with pytest.raises(globus_sdk.TransferAPIError) as err:
        user_tc.operation_mkdir(guest, "/project1/mine/")
    assert err.value.http_status == 403
    shared_with_me = [e["id"] for e in user_tc.endpoint_search(filter_scope="shared-with-me")]
    assert shared_with_me == [guest]

    tt = person_tokens(third)
    third_tc = transfer_client(tt.by_resource_server["transfer.api.globus.org"]["access_token"])
    with pytest.raises(globus_sdk.TransferAPIError) as err:
        third_tc.operation_ls(guest, path="/project1/")
    assert (err.value.http_status, err.value.code) == (403, "EndpointPermissionDenied")
    got = requests.get(f"{server.base_url}/data/{guest}/project1/results.csv",
                       headers={"Authorization": f"Bearer {tt.by_resource_server[guest]['access_token']}"})
    assert got.status_code == 403

    # The seed's last step: the portal moves data into the shared folder with an asynchronous transfer,
    # from the instrument's staging area (a share the administrator lets the portal read), and the user
    # reads it there.
    staging = server.data_dir / "storage" / "staging" / "run42"
    staging.mkdir(parents=True)
    for i in range(5):
        (staging / f"sample{i}.dat").write_bytes(bytes([i]) * (1000 * (i + 1)))
    staging_share = admin_tc.create_shared_endpoint(
        {"DATA_TYPE": "shared_endpoint", "host_endpoint": mapped[0]["id"], "host_path": "/staging/",
         "display_name": "Instrument staging"})["id"]
    admin_tc.add_endpoint_acl_rule(staging_share, {"DATA_TYPE": "access", "principal_type": "identity",
                                                   "principal": portal["client_id"], "path": "/",
                                                   "permissions": "r"})
    tdata = globus_sdk.TransferData(source_endpoint=staging_share, destination_endpoint=guest,
                                    label="run42 to project1")
    tdata.add_item("/run42/", "/project1/run42/", recursive=True)
    task_id = tc.submit_transfer(tdata)["task_id"]
    assert tc.task_wait(task_id, timeout=60, polling_interval=1)
    assert tc.get_task(task_id)["status"] == "SUCCEEDED"
    assert sorted(f["name"] for f in user_tc.operation_ls(guest, path="/project1/run42/")) == [
        f"sample{i}.dat" for i in range(5)]
    got = requests.get(f"{server.base_url}/data/{guest}/project1/run42/sample3.dat",
                       headers={"Authorization": f"Bearer {ut.by_resource_server[guest]['access_token']}"})
    assert (got.status_code, got.content) == (200, bytes([3]) * 4000)
    # The user may read but not write there: their own transfer into the folder is refused up front.
    back = globus_sdk.TransferData(source_endpoint=guest, destination_endpoint=guest)
    back.add_item("/project1/run42/sample0.dat", "/project1/run42/copy.dat")
    with pytest.raises(globus_sdk.TransferAPIError) as err:
        user_tc.submit_transfer(back)
    assert err.value.http_status == 403

    # Given a folder of their own, the user's transfer runs, and they are told by e-mail how it ended.
    tc.operation_mkdir(guest, "/inbox/")
    tc.add_endpoint_acl_rule(guest, {"DATA_TYPE": "access", "principal_type": "identity", "principal": user["id"],
                                     "path": "/inbox/", "permissions": "rw"})
    mine = globus_sdk.TransferData(source_endpoint=guest, destination_endpoint=guest, label="my copy")
    mine.add_item("/project1/run42/sample2.dat", "/inbox/sample2.dat")
    mine_id = user_tc.submit_transfer(mine)["task_id"]
    assert user_tc.task_wait(mine_id, timeout=60, polling_interval=1)
    assert user_tc.get_task(mine_id)["status"] == "SUCCEEDED"
    body = sink.wait_for(user["email"], containing="succeeded")
    assert mine_id in body and "my copy" in body, body
    gone = globus_sdk.DeleteData(endpoint=guest, label="cleanup")
    gone.add_item("/inbox/never-there.dat")
    gone_id = user_tc.submit_delete(gone)["task_id"]
    assert user_tc.task_wait(gone_id, timeout=60, polling_interval=1)
    assert user_tc.get_task(gone_id)["status"] == "FAILED"
    body = sink.wait_for(user["email"], containing="failed")
    assert gone_id in body and "FILE_NOT_FOUND" in body, body
    quiet = globus_sdk.DeleteData(endpoint=guest, notify_on_failed=False)
    quiet.add_item("/inbox/also-never-there.dat")
    quiet_id = user_tc.submit_delete(quiet)["task_id"]
    assert user_tc.task_wait(quiet_id, timeout=60, polling_interval=1)
    time.sleep(1)
    assert not any(quiet_id in b for _, b in sink.messages), "notify_on_failed=False was ignored"

    # Bookmarks through the SDK.
    bm = user_tc.create_bookmark({"name": "project1", "endpoint_id": guest, "path": "/project1/"})
    assert [b["name"] for b in user_tc.bookmark_list()] == ["project1"]
    user_tc.update_bookmark(bm["id"], {"name": "p1"})
    assert user_tc.get_bookmark(bm["id"])["name"] == "p1"
    user_tc.delete_bookmark(bm["id"])

    # --- the same with `globus` commands, as the portal (client credentials) -------------------------
    home = tmp_path / "globus-home"
    home.mkdir()

    def globus(*args: str) -> CommandResult:
        env = server.env_for(home, client_id=portal["client_id"], client_secret=portal["client_secret"])
        env["GLOBUS_SDK_VERIFY_SSL"] = str(server.ca_path)
        return run([globus_executable(), *args], env=env)

    def ok(res: CommandResult) -> CommandResult:
        assert res.returncode == 0, res.describe()
        return res

    ok(globus("mkdir", f"{guest}:/project2/"))
    listing = ok(globus("ls", f"{guest}:/")).stdout.split()
    assert "project1/" in listing and "project2/" in listing, listing
    out = ok(globus("endpoint", "permission", "create", f"{guest}:/project2/", "--identity",
                    user["id"], "--permissions", "r", "-F", "json")).json()
    rule_id = out["access_id"]
    listed = ok(globus("endpoint", "permission", "list", guest, "-F", "json")).json()
    assert any(r["id"] == rule_id and r["path"] == "/project2/" for r in listed["DATA"]), listed
    ok(globus("endpoint", "permission", "update", guest, rule_id, "--permissions", "rw"))
    shown = ok(globus("endpoint", "permission", "show", guest, rule_id, "-F", "json")).json()
    assert shown["permissions"] == "rw", shown
    ok(globus("endpoint", "permission", "delete", guest, rule_id))
    roles = ok(globus("endpoint", "role", "list", guest, "-F", "json")).json()
    assert any(r["role"] == "access_manager" for r in roles["DATA"]), roles
    found = ok(globus("endpoint", "search", "Portal", "-F", "json")).json()
    assert [e["id"] for e in found["DATA"]] == [guest], found
    ok(globus("bookmark", "create", f"{guest}:/project2/", "p2"))
    marks = ok(globus("bookmark", "list", "-F", "json")).json()
    assert [m["name"] for m in marks["DATA"]] == ["p2"], marks
    ok(globus("bookmark", "rename", "p2", "project2"))
    ok(globus("bookmark", "delete", "project2"))
    shown = ok(globus("collection", "show", guest, "-F", "json")).json()
    assert shown["id"] == guest and shown["display_name"] == "Portal staging", shown


def test_email_invitation(server: FerryServer, sink: Sink) -> None:
    admin = server.admin
    (server.data_dir / "storage" / "invite").mkdir(parents=True)
    tok = app_tokens(server, admin["client_id"], admin["client_secret"], [TRANSFER_SCOPE])
    tc = transfer_client(tok.by_resource_server["transfer.api.globus.org"]["access_token"])
    mapped = list(tc.endpoint_search(filter_entity_type="GCSv5_mapped_collection"))[0]
    guest = tc.create_shared_endpoint({"DATA_TYPE": "shared_endpoint", "host_endpoint": mapped["id"],
                                       "host_path": "/invite/", "display_name": "Invited"})["id"]
    tc.operation_mkdir(guest, "/for-dana/")
    res = tc.add_endpoint_acl_rule(guest, {"DATA_TYPE": "access", "principal_type": "invitation",
                                           "principal": "dana@example.net", "path": "/for-dana/",
                                           "permissions": "r"})
    raw = sink.wait_for("dana@example.net")
    mail = email.message_from_string(raw).get_payload(decode=True).decode()
    code = re.search(r"/invitation\?code=([0-9a-f]{64})", mail)
    assert code, mail
    pending = tc.get_endpoint_acl_rule(guest, res["access_id"])
    assert (pending["principal_type"], pending["principal"]) == ("invitation", "dana@example.net")

    # Dana opens the link, logs in with whatever account she has, and accepts.
    dana = new_person(server, "dana")
    s = requests.Session()
    link = f"{server.base_url}/invitation?code={code.group(1)}"
    # Before anything is asked, the link says what is shared, by whom, and offers to sign in.
    page = s.get(link)
    assert page.status_code == 200, page.text
    for shown in ("Invited", "/for-dana/", "dana@example.net", "read"):
        assert shown in page.text, (shown, page.text)
    assert 'name="password"' not in page.text
    sign_in = re.search(r'id="sign-in" href="([^"]+)"', page.text)
    assert sign_in, page.text
    page = s.get(server.base_url + html.unescape(sign_in.group(1)))
    assert "/v2/web/login" in page.url, page.url
    # the login form's anti-forgery token, bound to the pre-login cookie the session now holds
    login_csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    page = s.post(f"{server.base_url}/v2/web/login",
                  data={"next": f"/invitation?code={code.group(1)}", "username": dana["username"],
                        "password": dana["password"], "csrf": login_csrf})
    assert page.status_code == 200 and "Accept the invitation" in page.text, page.text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    done = s.post(f"{server.base_url}/invitation", data={"code": code.group(1), "csrf": csrf})
    assert "Invitation accepted" in done.text, done.text
    bound = tc.get_endpoint_acl_rule(guest, res["access_id"])
    assert (bound["principal_type"], bound["principal"]) == ("identity", dana["id"])
    again = s.post(f"{server.base_url}/invitation", data={"code": code.group(1), "csrf": csrf})
    assert "already been redeemed" in again.text
    # The link itself now says so, to anyone, before asking anything.
    used = requests.get(link)
    assert used.status_code == 410 and "already been accepted" in used.text, used.text
