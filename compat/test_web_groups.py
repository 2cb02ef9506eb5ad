"""The web app's Groups pages in a real Chromium: a person creates a group and invites a second person by
username; the second accepts on their Groups page; the first changes their role and removes them, then deletes
the group. A plain member sees no manager forms, and their forged forms (a valid token, the wrong role), a
stranger's, and forms with a forged token or no session change nothing and say why. axe-core on every page,
a screenshot of every step."""

from __future__ import annotations

import re
import typing as t
from pathlib import Path

import pytest
import requests

from ferry_harness import FerryServer, new_person, start_server, stop_server
# the web app tests' browser fixture and their skip where no browser can run
from test_web_app import (  # noqa: F401
    Steps,
    browser,
    csrf_of,
    no_serious_violations,
    pytestmark,
    sign_in,
    signed_in_session,
)
from web_browser import Browser


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[FerryServer]:
    s = start_server(tmp_path_factory.mktemp("ferry-groups"))
    try:
        yield s
    finally:
        stop_server(s)


def person_in(browser: Browser, server: FerryServer, url: str, who: dict[str, str]) -> None:
    sign_in(browser, server, url, who["username"], who["password"])


def member_row(browser: Browser, who: dict[str, str]) -> str:
    return browser.text(f"tr:has(th:text-is('{who['username']}'))")


def test_create_invite_accept_change_role_remove_and_delete(
    browser: Browser, server: FerryServer, tmp_path: Path
) -> None:
    steps = Steps(browser, tmp_path)
    owner = new_person(server, "owner")
    second = new_person(server, "second")
    name = f"Cohort {second['id'][:8]}"

    person_in(browser, server, "/groups", owner)
    assert browser.url().endswith("/groups")
    assert browser.evaluate("document.querySelector('nav a[aria-current=page]').textContent") == "Groups"
    assert "No invitations" in browser.text("#no-invitations")
    assert "in no group yet" in browser.text("#no-groups")
    steps.shot("groups-empty")
    no_serious_violations(browser)

    browser.click("a:has-text('Create a group')")
    assert browser.url().endswith("/groups/new")
    steps.shot("new-group")
    no_serious_violations(browser)
    browser.fill("#name", name)
    browser.fill("#description", "readers of the cohort's raw data")
    browser.click("button:has-text('Create the group')")
    group = re.search(r"/groups/([0-9a-f-]{36})\?done=created", browser.url())
    assert group, browser.url()
    gid = group.group(1)
    assert browser.text("#notice") == "The group was created; you are its admin."
    assert browser.text("h1") == f"Group: {name}"
    assert "admin" in member_row(browser, owner) and "active" in member_row(browser, owner)
    steps.shot("group-created")
    no_serious_violations(browser)

    # invited by username: the row says invited, not a member yet
    browser.fill("#username", second["username"])
    browser.click("button:has-text('Invite')")
    assert "The invitation was sent" in browser.text("#notice")
    row = member_row(browser, second)
    assert "invited" in row and "member" in row, row
    steps.shot("invited")
    no_serious_violations(browser)

    # the second person answers on their Groups page
    person_in(browser, server, "/groups", second)
    invitations = browser.text("#invitations-h + table")
    assert name in invitations and "member" in invitations
    steps.shot("invitation")
    no_serious_violations(browser)
    browser.click(f"button[aria-label='Accept the invitation to {name}']")
    assert browser.url().endswith(f"/groups/{gid}?done=accept"), browser.url()
    assert "You accepted the invitation" in browser.text("#notice")
    assert "member (active)" in browser.text("main dl")
    # a member: no member list (managers only), no manager forms, only Leave
    assert "managers and admins see" in browser.text("#members-hidden")
    for absent in ("#username", "#invite-h", "#delete-h", "main select", "main table"):
        assert browser.evaluate(f"document.querySelector({absent!r}) === null"), absent
    assert browser.visible("button:has-text('Leave this group')")
    steps.shot("accepted")
    no_serious_violations(browser)
    browser.goto(server.base_url + "/groups")
    assert "No invitations" in browser.text("#no-invitations")
    assert name in browser.text("#groups-h ~ table")

    # the owner makes them a manager, then removes them
    person_in(browser, server, f"/groups/{gid}", owner)
    assert "active" in member_row(browser, second)
    browser.evaluate(f"document.querySelector('#role-{second['id']}').value = 'manager'")
    browser.click(f"button[aria-label='Change role of {second['username']}']")
    assert browser.text("#notice") == "The role was changed."
    assert "manager" in member_row(browser, second)
    steps.shot("role-changed")
    no_serious_violations(browser)
    browser.click(f"button[aria-label='Remove {second['username']}']")
    assert browser.text("#notice") == "The member was removed."
    assert second["username"] not in browser.text("main table")
    steps.shot("removed")
    no_serious_violations(browser)

    # the notice is one of a fixed set: a link cannot put words on the page
    browser.goto(server.base_url + f"/groups/{gid}?done=Your+account+is+locked")
    assert not browser.visible("#notice") and "locked" not in browser.text("main")

    # deleting asks for a ticked confirmation first
    browser.click("input[name=confirm]")
    browser.click("button:has-text('Delete the group')")
    assert browser.url().endswith("/groups?done=delete"), browser.url()
    assert browser.text("#notice") == "The group was deleted."
    assert name not in browser.text("main")
    steps.shot("deleted")
    no_serious_violations(browser)
    browser.goto(server.base_url + f"/groups/{gid}")
    assert "no group" in browser.text("#error")
    no_serious_violations(browser)


def post(s: requests.Session, server: FerryServer, url: str, form: dict[str, str]) -> requests.Response:
    token = csrf_of(s.get(server.base_url + "/v2/web/password", timeout=10).text)  # the session's one token
    return s.post(server.base_url + url, data={**form, "csrf": token}, timeout=10, allow_redirects=False)


def test_a_member_sees_no_manager_forms_and_forged_forms_change_nothing(
    browser: Browser, server: FerryServer, tmp_path: Path
) -> None:
    steps = Steps(browser, tmp_path)
    owner, member, third, stranger = (new_person(server, n) for n in ("admin", "member", "third", "stranger"))
    own = signed_in_session(server, owner["username"], owner["password"])
    r = post(own, server, "/groups/new", {"name": "Lab", "description": ""})
    assert r.status_code in (302, 303), r.text
    gid = re.search(r"/groups/([0-9a-f-]{36})", r.headers["Location"]).group(1)  # type: ignore[union-attr]
    for who in (member, third):
        r = post(own, server, f"/groups/{gid}/membership", {"action": "invite", "username": who["username"]})
        assert r.status_code in (302, 303), r.text
    mem = signed_in_session(server, member["username"], member["password"])
    r = post(mem, server, f"/groups/{gid}/membership", {"action": "accept", "identity": member["id"]})
    assert r.headers["Location"] == f"/groups/{gid}?done=accept"

    def members() -> str:
        page = own.get(f"{server.base_url}/groups/{gid}", timeout=10).text
        return page[page.index("Members of this group"):]

    before = members()
    assert "invited" in before and member["username"] in before

    # the member's page: no invite, role, remove or delete forms
    page = mem.get(f"{server.base_url}/groups/{gid}", timeout=10).text
    for manager_only in ('name="username"', "change_role", 'value="remove"', f"/groups/{gid}/delete"):
        assert manager_only not in page, manager_only
    person_in(browser, server, f"/groups/{gid}", member)
    assert browser.text("h1") == "Group: Lab"
    steps.shot("member-view")
    no_serious_violations(browser)

    # a member's forms with a valid token, aimed at what managers and admins do: refused, and why
    forged = {
        "invite": {"action": "invite", "username": stranger["username"]},
        "change_role": {"action": "change_role", "identity": member["id"], "role": "admin"},
        "remove": {"action": "remove", "identity": owner["id"]},
        "accept for another": {"action": "accept", "identity": third["id"]},
    }
    for what, form in forged.items():
        r = post(mem, server, f"/groups/{gid}/membership", form)
        assert r.status_code == 403, (what, r.status_code, r.text[:500])
        assert "does not allow this" in r.text and "admins or managers" in r.text, what
    r = post(mem, server, f"/groups/{gid}/delete", {"confirm": "yes"})
    assert r.status_code == 403 and "admin role" in r.text, r.text[:500]
    assert members() == before

    # the same in the browser: a form the page does not offer, built in it and sent, is refused with words
    browser.evaluate(f"""(() => {{
        const f = document.createElement('form');
        f.method = 'post'; f.action = '/groups/{gid}/membership';
        for (const [k, v] of [['csrf', document.querySelector('input[name=csrf]').value],
                              ['action', 'invite'], ['username', {stranger['username']!r}]]) {{
            const i = document.createElement('input'); i.type = 'hidden'; i.name = k; i.value = v;
            f.appendChild(i);
        }}
        const b = document.createElement('button'); b.id = 'forged'; b.textContent = 'Forged';
        f.appendChild(b); document.querySelector('main').appendChild(f);
    }})()""")
    browser.click("#forged")
    error = browser.text("main")
    assert "this needs the manager role" in error and "does not allow this" in error, error
    steps.shot("forged-refused")
    no_serious_violations(browser)
    assert members() == before

    # a stranger does not learn the group exists; an unknown action or person is named
    out = signed_in_session(server, stranger["username"], stranger["password"])
    r = out.get(f"{server.base_url}/groups/{gid}", timeout=10)
    assert r.status_code == 404 and "Lab" not in r.text
    r = post(out, server, f"/groups/{gid}/membership", {"action": "accept", "identity": stranger["id"]})
    assert r.status_code == 404 and "Lab" not in r.text
    r = post(own, server, f"/groups/{gid}/membership", {"action": "invite", "username": "nobody-like-this"})
    assert r.status_code == 400 and "Nobody has that username" in r.text
    r = post(own, server, f"/groups/{gid}/membership", {"action": "explode", "identity": member["id"]})
    assert r.status_code == 400 and "explode" in r.text
    r = post(own, server, f"/groups/{gid}/delete", {})
    assert r.status_code == 400 and "not deleted" in r.text

    # a forged token, none at all, and no session: nothing changes
    url = f"{server.base_url}/groups/{gid}/membership"
    form = {"action": "remove", "identity": member["id"]}
    r = own.post(url, data={**form, "csrf": "forged"}, timeout=10)
    assert r.status_code == 403 and "Nothing was changed" in r.text
    assert own.post(url, data=form, timeout=10).status_code == 403
    anon = requests.Session()
    anon.trust_env = False
    r = anon.post(url, data=form, timeout=10, allow_redirects=False)
    assert r.status_code in (302, 303) and "/v2/web/login" in r.headers["Location"]
    for page_url in ("/groups", "/groups/new", f"/groups/{gid}"):
        r = anon.get(server.base_url + page_url, timeout=10, allow_redirects=False)
        assert r.status_code in (302, 303) and "/v2/web/login?next=" in r.headers["Location"], page_url
    assert members() == before

    # the third person declines on their Groups page in the browser
    person_in(browser, server, "/groups", third)
    browser.click("button[aria-label='Decline the invitation to Lab']")
    assert browser.text("#notice") == "You declined the invitation."
    assert "No invitations" in browser.text("#no-invitations")
    steps.shot("declined")
    no_serious_violations(browser)
    assert "declined" in members()

    # the member leaves; the last admin cannot
    person_in(browser, server, f"/groups/{gid}", member)
    browser.click("button:has-text('Leave this group')")
    assert browser.text("#notice") == "You left the group."
    assert "Lab" not in browser.text("main")
    assert member["username"] not in members()
    r = post(own, server, f"/groups/{gid}/membership", {"action": "leave", "identity": owner["id"]})
    assert r.status_code == 409 and "at least one admin" in r.text, r.text[:500]


def test_at_200_percent_zoom_the_group_pages_do_not_scroll_sideways(
    server: FerryServer, tmp_path: Path
) -> None:
    owner = new_person(server, "zoom")
    own = signed_in_session(server, owner["username"], owner["password"])
    r = post(own, server, "/groups/new", {"name": "Zoomed group with a rather long name", "description": "x"})
    gid = re.search(r"/groups/([0-9a-f-]{36})", r.headers["Location"]).group(1)  # type: ignore[union-attr]
    with Browser(log_path=tmp_path / "browser.log", zoom=2) as zoomed:
        person_in(zoomed, server, "/groups", owner)
        for url in ("/groups", "/groups/new", f"/groups/{gid}"):
            zoomed.goto(server.base_url + url)
            assert zoomed.evaluate("document.documentElement.scrollWidth <= innerWidth"), url
            zoomed.screenshot(tmp_path / f"zoom-{url.strip('/').replace('/', '-')}.png")
            no_serious_violations(zoomed)
