"""The administrator's console of the web app in a real Chromium: the endpoint, its storage gateway and
collections; a collection's roles added and removed (checked through the manager API with the real
manager API as the administrator's client); the audit log, filtered and paged; 200% zoom without sideways scrolling; and a plain
person refused everywhere, their forged forms changing nothing. axe-core on every page."""

from __future__ import annotations

import typing as t
from pathlib import Path

import globus_sdk
import pytest
import requests

from ferry_harness import FerryServer, new_person, start_server, stop_server
from test_web_app import Steps, csrf_of, no_serious_violations, sign_in, signed_in_session
from web_browser import Browser, browser_available

_unavailable = browser_available()
pytestmark = pytest.mark.skipif(_unavailable is not None, reason=f"no browser: {_unavailable}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[FerryServer]:
    s = start_server(tmp_path_factory.mktemp("ferry-console"))
    try:
        yield s
    finally:
        stop_server(s)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[Browser]:
    with Browser(log_path=tmp_path_factory.mktemp("browser") / "browser.log") as b:
        yield b


class Manager:
    """The manager API (/api) as the administrator's client (an endpoint administrator), over plain HTTP
    (the SDK's GCSClient speaks HTTPS only)."""

    def __init__(self, server: FerryServer, endpoint_id: str) -> None:
        a = server.admin
        auth = globus_sdk.ConfidentialAppAuthClient(a["client_id"], a["client_secret"],
                                                    base_url=server.base_url + "/")
        scope = globus_sdk.GCSClient.get_gcs_endpoint_scopes(endpoint_id).manage_collections
        token = auth.oauth2_client_credentials_tokens(requested_scopes=[scope]).by_resource_server[
            endpoint_id]["access_token"]
        self.api = server.base_url + "/api"
        self.http = requests.Session()
        self.http.trust_env = False
        self.http.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, body: dict[str, t.Any] | None = None) -> list[dict[str, t.Any]]:
        r = self.http.request(method, self.api + path, json=body, timeout=10)
        assert r.status_code == 200, r.text
        return t.cast(list, r.json()["data"])

    def grant(self, collection: str, person: dict[str, str], role: str) -> str:
        return str(self.call("POST", "/roles", {
            "DATA_TYPE": "role#1.0.0", "collection": collection,
            "principal": f"urn:globus:auth:identity:{person['id']}", "role": role})[0]["id"])

    def revoke(self, role: str) -> None:
        self.call("DELETE", f"/roles/{role}")

    def roles_of(self, collection: str, person: dict[str, str]) -> list[str]:
        urn = f"urn:globus:auth:identity:{person['id']}"
        return [r["role"] for r in self.call("GET", f"/roles?collection_id={collection}")
                if r["principal"] == urn]


@pytest.fixture(scope="module")
def endpoint_id(server: FerryServer) -> str:
    http = requests.Session()
    http.trust_env = False
    return str(http.get(server.base_url + "/api/info", timeout=10).json()["data"][0]["endpoint_id"])


@pytest.fixture(scope="module")
def manager(server: FerryServer, endpoint_id: str) -> Manager:
    return Manager(server, endpoint_id)


@pytest.fixture(scope="module")
def mapped(manager: Manager) -> str:
    return str(next(c["id"] for c in manager.call("GET", "/collections") if c["collection_type"] == "mapped"))


def admin_sign_in(browser: Browser, server: FerryServer, url: str) -> None:
    sign_in(browser, server, url, server.admin["username"], server.admin["password"])


def test_the_console_shows_the_endpoint_its_gateway_and_collections(
    browser: Browser, server: FerryServer, endpoint_id: str, mapped: str, tmp_path: Path
) -> None:
    steps = Steps(browser, tmp_path)
    admin_sign_in(browser, server, "/console")
    assert browser.url().endswith("/console")
    main = browser.text("main")
    assert endpoint_id in main and "Ferry endpoint" in main
    gateways = browser.text("#gateways-h + table")
    assert "Local storage" in gateways and "POSIX" in gateways and "No restriction" in gateways
    collections = browser.text("#collections-h + table")
    assert "Ferry local storage" in collections and "Mapped" in collections
    assert server.admin["username"] in collections
    assert browser.evaluate("document.querySelector('nav a[aria-current=page]').textContent") == "Console"
    assert browser.evaluate("document.querySelectorAll('main table caption').length") == 2
    steps.shot("console")
    no_serious_violations(browser)

    browser.click("a:has-text('Ferry local storage')")
    assert browser.url().endswith(f"/console/collections/{mapped}")
    assert mapped in browser.text("main")
    steps.shot("collection")
    no_serious_violations(browser)
    browser.click("a:has-text('Open in the File Manager')")
    assert f"origin_id={mapped}" in browser.url()


def test_a_role_is_added_and_removed_on_the_mapped_collection(
    browser: Browser, server: FerryServer, manager: Manager, mapped: str, tmp_path: Path
) -> None:
    steps = Steps(browser, tmp_path)
    person = new_person(server, "steward")
    admin_sign_in(browser, server, f"/console/collections/{mapped}")
    browser.fill("#principal", person["username"])
    browser.evaluate("document.querySelector('#role').value = 'access_manager'")
    browser.click("button:has-text('Add the role')")
    assert browser.text("#notice") == "The role was added."
    row = browser.text(f"tr:has(th:text-is('{person['username']}'))")
    assert "access_manager" in row and "Person" in row
    assert manager.roles_of(mapped, person) == ["access_manager"]
    steps.shot("role-added")
    no_serious_violations(browser)

    # an unknown name is refused with what to do; nothing is added
    browser.fill("#principal", "nobody-like-this")
    browser.click("button:has-text('Add the role')")
    assert "Nobody has that username" in browser.text("#error")
    no_serious_violations(browser)

    browser.goto(server.base_url + f"/console/collections/{mapped}")
    browser.click(f"button[aria-label='Remove the access_manager role of {person['username']}']")
    assert browser.text("#notice") == "The role was removed."
    assert person["username"] not in browser.text("main")
    assert manager.roles_of(mapped, person) == []
    steps.shot("role-removed")
    no_serious_violations(browser)

    # the notice is one of a fixed set: a link cannot put words on the page
    browser.goto(server.base_url + f"/console/collections/{mapped}?done=Your+account+is+locked")
    assert not browser.visible("#notice") and "locked" not in browser.text("main")


def test_the_audit_log_shows_recent_actions_filtered_and_paged(
    browser: Browser, server: FerryServer, manager: Manager, mapped: str, tmp_path: Path
) -> None:
    steps = Steps(browser, tmp_path)
    person = new_person(server, "audited")
    # more role changes than a page holds: 30 grants and 30 removals
    for _ in range(30):
        manager.revoke(manager.grant(mapped, person, "activity_monitor"))

    admin_sign_in(browser, server, "/console/audit")
    table = browser.text("main table")
    assert "role.delete" in table and f"activity_monitor {person['username']}" in table
    assert "Ferry local storage" in table
    steps.shot("audit")
    no_serious_violations(browser)

    # a family of actions: more than a page of them
    browser.fill("#action", "role")
    browser.click("button:has-text('Show')")
    actions = browser.evaluate(
        "Array.from(document.querySelectorAll('main tbody td[data-label=Action]')).map(e => e.textContent)")
    assert len(actions) == 50 and set(actions) == {"role.create", "role.delete"}, actions
    browser.click("a[rel=next]")
    older = browser.evaluate(
        "Array.from(document.querySelectorAll('main tbody td[data-label=Action]')).map(e => e.textContent)")
    assert older and set(older) <= {"role.create", "role.delete"} and "action=role&" in browser.url()
    assert browser.visible("a:has-text('Newest records')")
    steps.shot("audit-older")
    no_serious_violations(browser)
    browser.goto(server.base_url + "/console/audit?action=role.create")
    assert "role.delete" not in browser.text("main table")

    # by user: the administrator's own changes in the console's other test, none of the client's
    browser.goto(server.base_url + "/console/audit?action=role&user=" + server.admin["username"])
    who = browser.evaluate(
        "Array.from(document.querySelectorAll('main tbody td[data-label=Who]')).map(e => e.textContent)")
    assert set(who) <= {server.admin["username"]}
    browser.goto(server.base_url + "/console/audit?user=nobody-like-this")
    assert "Nobody has that username" in browser.text("#notice")
    no_serious_violations(browser)

    # one collection's records
    browser.goto(server.base_url + f"/console/audit?collection={mapped}")
    cells = browser.evaluate(
        "Array.from(document.querySelectorAll('main tbody td[data-label=Collection]')).map(e => e.textContent)")
    assert cells and set(cells) == {"Ferry local storage"}


def test_at_200_percent_zoom_the_console_does_not_scroll_sideways(
    server: FerryServer, mapped: str, tmp_path: Path
) -> None:
    with Browser(log_path=tmp_path / "browser.log", zoom=2) as zoomed:
        admin_sign_in(zoomed, server, "/console")
        for url in ("/console", f"/console/collections/{mapped}", "/console/audit"):
            zoomed.goto(server.base_url + url)
            assert zoomed.evaluate("document.documentElement.scrollWidth <= innerWidth"), url
            zoomed.screenshot(tmp_path / f"zoom-{url.strip('/').replace('/', '-')}.png")
            no_serious_violations(zoomed)


def test_a_plain_person_is_refused_and_their_forged_forms_change_nothing(
    browser: Browser, server: FerryServer, manager: Manager, endpoint_id: str, mapped: str
) -> None:
    plain = new_person(server, "plain")
    other = new_person(server, "other")
    sign_in(browser, server, "/console", plain["username"], plain["password"])
    assert "endpoint's owner and administrators" in browser.text("#refused")
    no_serious_violations(browser)

    s = signed_in_session(server, plain["username"], plain["password"])
    base = server.base_url
    for url in ("/console", "/console/audit", f"/console/audit?collection={mapped}",
                f"/console/collections/{mapped}"):
        r = s.get(base + url, timeout=10, allow_redirects=False)
        assert r.status_code == 403, (url, r.status_code, r.text[:500])
        assert "administrators of its collections" in r.text
        for secret in (endpoint_id, mapped, "Local storage", "Ferry local storage", "role.create"):
            assert secret not in r.text, (url, secret)

    # a role someone else holds, which the forged removal aims at
    held = manager.grant(mapped, other, "activity_monitor")
    token = csrf_of(s.get(base + "/v2/web/password", timeout=10).text)  # the session's one token
    posts = {
        f"/console/collections/{mapped}/roles": {"principal": plain["username"], "role": "administrator"},
        f"/console/collections/{mapped}/roles/remove": {"role": held},
    }
    for url, form in posts.items():
        r = s.post(base + url, data={**form, "csrf": token}, timeout=10, allow_redirects=False)
        assert r.status_code == 403, (url, r.status_code, r.text[:500])
    assert manager.roles_of(mapped, plain) == []
    assert manager.roles_of(mapped, other) == ["activity_monitor"]

    # the administrator's own session, with a forged token or none, and no session at all
    owner = signed_in_session(server, server.admin["username"], server.admin["password"])
    form = {"principal": plain["username"], "role": "administrator"}
    url = base + f"/console/collections/{mapped}/roles"
    r = owner.post(url, data={**form, "csrf": "forged"}, timeout=10)
    assert r.status_code == 403 and "Nothing was changed" in r.text
    assert owner.post(url, data=form, timeout=10).status_code == 403
    anon = requests.Session()
    anon.trust_env = False
    r = anon.post(url, data={**form, "csrf": token}, timeout=10, allow_redirects=False)
    assert r.status_code in (302, 303) and "/v2/web/login" in r.headers["Location"]
    for page in ("/console", "/console/audit", f"/console/collections/{mapped}"):
        r = anon.get(base + page, timeout=10, allow_redirects=False)
        assert r.status_code in (302, 303) and "/v2/web/login?next=" in r.headers["Location"], page
    assert manager.roles_of(mapped, plain) == []
    manager.revoke(held)
