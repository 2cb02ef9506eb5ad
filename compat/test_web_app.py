"""The web app in a real Chromium (web-tests/, Playwright): the file manager (collections, a folder's listing
sorted, filtered and paged on the server, new folder, rename, delete, download, the upload form), a folder's
`/data/` URL opened in a browser, sharing (a guest collection from a folder, who has access, adding and
removing), and Activity (tasks, a task's page, cancelling). Every page is checked with axe-core: no serious or
critical violation. Screenshots of each step go to the test's folder."""

from __future__ import annotations

import os
import re
import typing as t
import urllib.parse
from pathlib import Path

import globus_sdk
import pytest
import requests

from ferry_harness import (
    FerryServer,
    browser_login,
    new_person,
    sdk_pointed_at,
    start_server,
    stop_server,
)
from web_browser import Browser, browser_available, format_violations

_unavailable = browser_available()
pytestmark = pytest.mark.skipif(_unavailable is not None, reason=f"no browser: {_unavailable}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[FerryServer]:
    s = start_server(tmp_path_factory.mktemp("ferry-webapp"))
    try:
        with sdk_pointed_at(s.base_url):
            yield s
    finally:
        stop_server(s)


@pytest.fixture(scope="module")
def storage(server: FerryServer) -> Path:
    return server.data_dir / "storage"


@pytest.fixture(scope="module")
def mapped(server: FerryServer) -> str:
    tc = admin_transfer(server)
    return str(list(tc.endpoint_search(filter_entity_type="GCSv5_mapped_collection"))[0]["id"])


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[Browser]:
    with Browser(log_path=tmp_path_factory.mktemp("browser") / "browser.log") as b:
        yield b


def admin_transfer(server: FerryServer) -> globus_sdk.TransferClient:
    app = globus_sdk.ConfidentialAppAuthClient(server.admin["client_id"], server.admin["client_secret"])
    authorizer = globus_sdk.ClientCredentialsAuthorizer(app, globus_sdk.TransferClient.scopes.all)
    return globus_sdk.TransferClient(authorizer=authorizer)


def person_transfer(server: FerryServer, username: str, password: str) -> globus_sdk.TransferClient:
    """A Transfer client acting as a person (a native app's login through Ferry's pages)."""
    native = server.create_client("web app tests", native=True)
    auth = globus_sdk.NativeAppAuthClient(native["client_id"])
    auth.oauth2_start_flow(requested_scopes=globus_sdk.TransferClient.scopes.all)
    done = browser_login(auth.oauth2_get_authorize_url(), username, password)
    tokens = auth.oauth2_exchange_code_for_tokens(done.code).by_resource_server
    token = tokens["transfer.api.globus.org"]["access_token"]
    return globus_sdk.TransferClient(authorizer=globus_sdk.AccessTokenAuthorizer(token))


class Steps:
    """Screenshots of a journey, numbered in order, in the test's folder."""

    def __init__(self, browser: Browser, folder: Path) -> None:
        self.browser = browser
        self.folder = folder
        self.n = 0

    def shot(self, name: str) -> Path:
        self.n += 1
        return self.browser.screenshot(self.folder / f"{self.n:02d}-{name}.png")


def sign_in(browser: Browser, server: FerryServer, url: str, username: str, password: str) -> None:
    """Opens `url` in a fresh context, which sends the browser to the login page and back."""
    browser.open(server.base_url + url)
    assert "/v2/web/login" in browser.url(), browser.url()
    browser.fill("#username", username)
    browser.fill("#password", password)
    browser.click("button[type=submit]")


def no_serious_violations(browser: Browser) -> None:
    found = browser.axe(min_impact="serious")
    assert not found, f"{browser.url()}:\n{format_violations(found)}"
    # scripts that failed, or a blocked resource (CSP); an error page's own status is logged as
    # "Failed to load resource", which is not a fault of the page
    errors = [c for c in browser.console() if c["type"] == "pageerror" or c["type"] == "error"
              and not c["text"].startswith("Failed to load resource")]
    assert not errors, errors


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, page[:2000]
    return found.group(1)


def signed_in_session(server: FerryServer, username: str, password: str) -> requests.Session:
    """A browser without scripts: cookies, forms, no redirects followed."""
    s = requests.Session()
    s.trust_env = False
    page = s.get(server.base_url + "/v2/web/login?next=/", timeout=10)
    r = s.post(server.base_url + "/v2/web/login", data={
        "csrf": csrf_of(page.text), "next": "/", "username": username, "password": password},
        timeout=10, allow_redirects=False)
    assert r.status_code in (302, 303), r.text
    return s


def rows(browser: Browser) -> list[str]:
    return t.cast(list, browser.evaluate(
        "Array.from(document.querySelectorAll('#listing tbody th[scope=row]')).map(e => e.innerText)"))


def test_file_manager_browse_make_rename_delete(
    browser: Browser, server: FerryServer, storage: Path, mapped: str, tmp_path: Path
) -> None:
    steps = Steps(browser, tmp_path)
    (storage / "web" / "inner").mkdir(parents=True)
    (storage / "web" / "notes.txt").write_text("field notes\n")
    sign_in(browser, server, "/", server.admin["username"], server.admin["password"])
    assert browser.url().endswith("/file-manager"), browser.url()
    steps.shot("collections")
    no_serious_violations(browser)

    browser.click(f"a[href*='origin_id={mapped}']")
    assert "origin_id=" + mapped in browser.url()
    browser.fill("#path", "/web/")
    browser.click("form.bar button:has-text('Go')")
    assert rows(browser) == ["inner/", "notes.txt"]
    steps.shot("folder")
    no_serious_violations(browser)

    # a new folder: the page says so and lists it
    browser.fill("#new-folder", "results 2026")
    browser.click("button:has-text('Create folder')")
    assert "Created the folder results 2026." in browser.text("#notice")
    assert rows(browser) == ["inner/", "results 2026/", "notes.txt"]
    assert (storage / "web" / "results 2026").is_dir()
    steps.shot("made-folder")

    # rename, on its own page (keyboard reachable, a labelled field)
    browser.click("a[aria-label='Rename notes.txt']")
    no_serious_violations(browser)
    browser.fill("#name", "field-notes.txt")
    steps.shot("rename")
    browser.click("button:has-text('Rename')")
    assert "Renamed to field-notes.txt." in browser.text("#notice")
    assert (storage / "web" / "field-notes.txt").read_text() == "field notes\n"

    # a name with a slash is refused with a message, and nothing changes
    browser.click("a[aria-label='Rename field-notes.txt']")
    browser.fill("#name", "../escape.txt")
    browser.click("button:has-text('Rename')")
    assert "has no /" in browser.text("#error")
    no_serious_violations(browser)
    assert sorted(p.name for p in (storage / "web").iterdir()) == [
        "field-notes.txt", "inner", "results 2026"]

    # delete asks first
    browser.goto(server.base_url + f"/file-manager?origin_id={mapped}&origin_path=/web/")
    browser.click("a[aria-label='Delete results 2026']")
    assert "cannot be undone" in browser.text("main")
    no_serious_violations(browser)
    steps.shot("delete-confirm")
    browser.click("button:has-text('Delete')")
    assert "Deleted results 2026." in browser.text("#notice")
    assert not (storage / "web" / "results 2026").exists()

    # the file's link downloads it through the data door, with the browser's session
    href = browser.evaluate("document.querySelector('#listing a[download]').getAttribute('href')")
    assert href == f"/data/{mapped}/web/field-notes.txt?download", href
    got = browser.evaluate(f"fetch({href!r}).then(r => r.text())")
    assert got == "field notes\n"


def test_a_large_folder_is_sorted_filtered_and_paged_on_the_server(
    browser: Browser, server: FerryServer, storage: Path, mapped: str, tmp_path: Path
) -> None:
    big = storage / "big"
    big.mkdir()
    for i in range(250):
        (big / f"run-{i:03d}.dat").write_bytes(b"x" * i)
    sign_in(browser, server, f"/file-manager?origin_id={mapped}&origin_path=/big/",
            server.admin["username"], server.admin["password"])
    assert "250 items" in browser.text("caption")
    assert len(rows(browser)) == 100 and rows(browser)[0] == "run-000.dat"
    assert "Page 1 of 3" in browser.text("nav.pages")
    no_serious_violations(browser)

    browser.click("a[rel=next]")
    assert rows(browser)[0] == "run-100.dat" and "Page 2 of 3" in browser.text("nav.pages")

    # sort by size, largest first: the header says so to assistive technology
    browser.click("th:has-text('Size') a")
    browser.click("th:has-text('Size') a")
    assert browser.evaluate(
        "document.querySelector('th[aria-sort=descending]').innerText").startswith("Size")
    assert rows(browser)[0] == "run-249.dat"

    browser.fill("#filter", "run-24")
    browser.click("button:has-text('Filter')")
    assert "10 items match" in browser.text("caption")  # run-240 … run-249
    assert rows(browser)[0] == "run-249.dat"
    browser.screenshot(tmp_path / "filtered.png")


def test_a_folders_data_url_opens_the_folder_in_the_browser(
    browser: Browser, server: FerryServer, storage: Path, mapped: str
) -> None:
    (storage / "opened").mkdir()
    (storage / "opened" / "a.txt").write_text("a")
    sign_in(browser, server, f"/data/{mapped}/opened/", server.admin["username"],
            server.admin["password"])
    parsed = urllib.parse.urlsplit(browser.url())
    assert parsed.path == "/file-manager", browser.url()
    assert urllib.parse.parse_qs(parsed.query)["origin_path"] == ["/opened/"]
    assert rows(browser) == ["a.txt"]
    # a client fetching bytes still gets the API's answer, not a page
    r = requests.get(server.base_url + f"/data/{mapped}/opened/", timeout=10)
    assert r.status_code in (401, 403, 404) and r.headers["content-type"].startswith(
        "application/json"), r.text


def test_the_upload_form_stores_files_without_scripts(
    server: FerryServer, storage: Path, mapped: str
) -> None:
    """The form posted as a browser without scripts would: multipart, the session's token."""
    (storage / "drop").mkdir()
    s = signed_in_session(server, server.admin["username"], server.admin["password"])
    folder = s.get(server.base_url + f"/file-manager?origin_id={mapped}&origin_path=/drop/",
                   timeout=10)
    assert folder.status_code == 200, folder.text
    token = csrf_of(folder.text)
    fields = {"origin_id": mapped, "origin_path": "/drop/", "csrf": token}
    r = s.post(server.base_url + "/file-manager/upload", data=fields,
               files=[("file", ("ü data.bin", b"\x00\x01" * 5000))], timeout=30)
    assert r.status_code == 200 and "Uploaded ü data.bin." in r.text, r.text
    assert (storage / "drop" / "ü data.bin").read_bytes() == b"\x00\x01" * 5000

    # without the token: refused, nothing stored
    r = s.post(server.base_url + "/file-manager/upload", data={**fields, "csrf": "x"},
               files=[("file", ("forged.bin", b"x"))], timeout=30)
    assert r.status_code == 403 and "Nothing was stored" in r.text
    assert not (storage / "drop" / "forged.bin").exists()


def test_share_a_folder_see_who_has_access_and_remove_it(
    browser: Browser, server: FerryServer, storage: Path, mapped: str, tmp_path: Path
) -> None:
    steps = Steps(browser, tmp_path)
    (storage / "lab" / "run1").mkdir(parents=True)
    (storage / "lab" / "run1" / "data.csv").write_text("a,b\n")
    colleague = new_person(server, "colleague")
    sign_in(browser, server, f"/file-manager?origin_id={mapped}&origin_path=/lab/",
            server.admin["username"], server.admin["password"])
    browser.click("a:has-text('Share this folder')")
    steps.shot("make-guest-collection")
    no_serious_violations(browser)
    browser.fill("#display_name", "Lab share")
    browser.click("button:has-text('Create guest collection')")
    assert "Guest collection created" in browser.text("#notice")
    steps.shot("share-dialog")
    no_serious_violations(browser)
    guest = urllib.parse.parse_qs(urllib.parse.urlsplit(browser.url()).query)["origin_id"][0]

    browser.fill("#who", colleague["username"])
    browser.click("input[name=permissions][value=rw]")
    browser.fill("#expires", "2099-12-31")
    browser.click("button:has-text('Share')")
    assert "Access added." in browser.text("#notice")
    access = browser.text("main")
    assert colleague["username"] in access and "Editor (read and write)" in access
    assert "2099-12-31" in access
    steps.shot("shared")

    # an unknown username is refused with what to do; nothing is added
    browser.fill("#who", "nobody-like-this")
    browser.click("button:has-text('Share')")
    assert "Give their full username" in browser.text("#error")
    no_serious_violations(browser)

    # in a folder below, the rule shows as coming from above
    browser.goto(server.base_url + f"/file-manager/share?origin_id={guest}&origin_path=/run1/")
    assert "(from a folder above)" in browser.text("main")

    # the colleague can now read it, through the API, with their own token
    tc = admin_transfer(server)
    rules = [r for r in tc.endpoint_acl_list(guest)["DATA"] if r["principal"] == colleague["id"]]
    assert len(rules) == 1 and rules[0]["permissions"] == "rw" and rules[0]["path"] == "/"

    browser.goto(server.base_url + f"/file-manager/share?origin_id={guest}&origin_path=/")
    browser.click(f"button[aria-label^='Remove access of {colleague['username']}']")
    assert "Access removed." in browser.text("#notice")
    assert colleague["username"] not in browser.text("main")
    assert not [r for r in tc.endpoint_acl_list(guest)["DATA"] if r["principal"] == colleague["id"]]


def test_activity_lists_tasks_shows_one_and_cancels_it(
    browser: Browser, server: FerryServer, storage: Path, mapped: str, tmp_path: Path
) -> None:
    steps = Steps(browser, tmp_path)
    (storage / "act").mkdir()
    (storage / "act" / "small.txt").write_text("small")
    with open(storage / "act" / "huge.bin", "wb") as f:
        f.truncate(4 << 30)  # sparse: a copy that takes long enough to cancel
    tc = person_transfer(server, server.admin["username"], server.admin["password"])
    small = globus_sdk.TransferData(source_endpoint=mapped, destination_endpoint=mapped,
                                    label="small copy")
    small.add_item("/act/small.txt", "/act-out/small.txt")
    done_id = tc.submit_transfer(small)["task_id"]
    tc.task_wait(done_id, timeout=60, polling_interval=1)
    big = globus_sdk.TransferData(source_endpoint=mapped, destination_endpoint=mapped,
                                  label="huge copy", verify_checksum=True)
    big.add_item("/act/huge.bin", "/act-out/huge.bin")
    running_id = tc.submit_transfer(big)["task_id"]

    sign_in(browser, server, "/activity", server.admin["username"], server.admin["password"])
    listing = browser.text("table")
    assert "small copy" in listing and "huge copy" in listing and "Succeeded" in listing
    steps.shot("activity")
    no_serious_violations(browser)

    browser.click("a:has-text('small copy')")
    assert "Succeeded" in browser.text("#status")
    assert "/act/small.txt" in browser.text("main")  # per-file results
    no_serious_violations(browser)

    browser.goto(server.base_url + f"/activity/{running_id}")
    assert browser.text("#status").startswith("Active"), browser.text("#status")
    steps.shot("running-task")
    no_serious_violations(browser)
    browser.click("button:has-text('Cancel this task')")
    assert "cancelled" in browser.text("#notice")
    assert browser.text("#status") == "Cancelled by its owner", browser.text("#status")
    steps.shot("cancelled")
    task = tc.get_task(running_id)
    assert task["status"] == "FAILED", task
    assert not (storage / "act-out" / "huge.bin").exists()

    # someone else's task is not shown to them
    other = new_person(server, "other")
    sign_in(browser, server, f"/activity/{running_id}", other["username"], other["password"])
    assert "not found" in browser.text("#error").lower()


def test_a_stranger_and_a_forged_form_change_nothing(
    server: FerryServer, storage: Path, mapped: str
) -> None:
    """The pages run the same access check as the APIs: a signed-in stranger is refused on someone else's
    guest collection; a form without the session's token, or without a session, changes nothing."""
    (storage / "private" / "inside").mkdir(parents=True)
    tc = admin_transfer(server)
    guest = tc.create_shared_endpoint({"DATA_TYPE": "shared_endpoint", "host_endpoint": mapped,
                                       "host_path": "/private/", "display_name": "private"})["id"]
    stranger = new_person(server, "stranger")
    s = signed_in_session(server, stranger["username"], stranger["password"])
    base = server.base_url
    for url in (f"/file-manager?origin_id={guest}&origin_path=/",
                f"/file-manager/share?origin_id={guest}&origin_path=/",
                f"/file-manager/rename?origin_id={guest}&origin_path=/inside"):
        r = s.get(base + url, timeout=10, allow_redirects=False)
        assert r.status_code in (403, 404), (url, r.status_code, r.text[:500])
        assert "/private" not in r.text and str(storage) not in r.text, r.text
        # the refusal is drawn for the person signed in, not as if nobody were
        assert f"Signed in as <strong>{stranger['username']}</strong>" in r.text, r.text
        assert ">Sign in</a>" not in r.text, r.text
    token = csrf_of(s.get(base + "/v2/web/password", timeout=10).text)  # the session's one token
    posts = {
        "/file-manager/mkdir": {"origin_id": guest, "origin_path": "/", "name": "x"},
        "/file-manager/rename": {"origin_id": guest, "origin_path": "/inside", "name": "moved"},
        "/file-manager/delete": {"origin_id": guest, "origin_path": "/inside"},
        "/file-manager/share/add": {"origin_id": guest, "origin_path": "/", "kind": "all",
                                    "permissions": "rw"},
        "/file-manager/share/guest": {"origin_id": mapped, "origin_path": "/private/",
                                      "display_name": "stolen"},
    }
    for url, form in posts.items():
        r = s.post(base + url, data={**form, "csrf": token}, timeout=10, allow_redirects=False)
        assert r.status_code in (403, 404), (url, r.status_code, r.text[:500])
    assert sorted(p.name for p in (storage / "private").iterdir()) == ["inside"]
    assert [r for r in tc.endpoint_acl_list(guest)["DATA"] if r["id"]] == []  # roles only

    # the owner's own session, with a forged token or none, and no session at all
    owner = signed_in_session(server, server.admin["username"], server.admin["password"])
    form = {"origin_id": guest, "origin_path": "/", "name": "forged"}
    r = owner.post(base + "/file-manager/mkdir", data={**form, "csrf": "forged"}, timeout=10)
    assert r.status_code == 403 and "Nothing was changed" in r.text
    r = owner.post(base + "/file-manager/mkdir", data=form, timeout=10)
    assert r.status_code == 403
    anon = requests.Session()
    anon.trust_env = False
    r = anon.post(base + "/file-manager/mkdir", data={**form, "csrf": token}, timeout=10,
                  allow_redirects=False)
    assert r.status_code in (302, 303) and "/v2/web/login" in r.headers["Location"]
    for url in ("/file-manager", "/activity", f"/file-manager/share?origin_id={guest}"):
        r = anon.get(base + url, timeout=10, allow_redirects=False)
        assert r.status_code in (302, 303) and "/v2/web/login?next=" in r.headers["Location"], url
    assert sorted(p.name for p in (storage / "private").iterdir()) == ["inside"]


def test_bookmarks_are_made_from_a_folder_renamed_and_deleted(
    browser: Browser, server: FerryServer, storage: Path, mapped: str, tmp_path: Path
) -> None:
    (storage / "marked" / "deep").mkdir(parents=True)
    sign_in(browser, server, f"/file-manager?origin_id={mapped}&origin_path=/marked/deep/",
            server.admin["username"], server.admin["password"])
    assert browser.evaluate("document.querySelector('#bookmark').value") == "deep"
    browser.fill("#bookmark", "Deep data")
    browser.click("button:has-text('Add bookmark')")
    assert "Bookmark added." in browser.text("#notice")
    browser.screenshot(tmp_path / "bookmarks.png")
    no_serious_violations(browser)
    browser.click("a:has-text('Deep data')")
    assert urllib.parse.parse_qs(urllib.parse.urlsplit(browser.url()).query)["origin_path"] == ["/marked/deep/"]
    browser.goto(server.base_url + "/bookmarks")
    name_field = browser.evaluate("document.querySelector('input[name=name]').id")
    browser.fill(f"#{name_field}", "Deep results")
    browser.click("button:has-text('Rename')")
    assert "Bookmark renamed." in browser.text("#notice") and "Deep results" in browser.text("table")
    # the same bookmarks through the Transfer API, as the CLI sees them
    tc = person_transfer(server, server.admin["username"], server.admin["password"])
    assert [b["name"] for b in tc.bookmark_list()] == ["Deep results"]
    browser.click("button[aria-label='Delete the bookmark Deep results']")
    assert "Bookmark deleted." in browser.text("#notice")
    assert list(tc.bookmark_list()) == []


def test_identities_page_lists_and_revokes_what_applications_may_do(
    browser: Browser, server: FerryServer, tmp_path: Path
) -> None:
    person = new_person(server, "revoker")
    tc = person_transfer(server, person["username"], person["password"])
    assert tc.bookmark_list() is not None  # the application's token works
    sign_in(browser, server, "/v2/web/identities", person["username"], person["password"])
    assert "web app tests" in browser.text("main")
    browser.screenshot(tmp_path / "identities.png")
    no_serious_violations(browser)
    browser.click("button[aria-label^='Revoke web app tests']")
    assert "Access withdrawn" in browser.text("#notice")
    assert "web app tests" not in browser.text("main")
    with pytest.raises(globus_sdk.TransferAPIError) as refused:
        tc.bookmark_list()
    assert refused.value.http_status == 401


def test_the_other_pages_pass_axe(browser: Browser, server: FerryServer) -> None:
    """Pages of the sign-in issue, seen signed in: password, identities, sign out; and an error page."""
    sign_in(browser, server, "/v2/web/password", server.admin["username"], server.admin["password"])
    for url in ("/v2/web/password", "/v2/web/identities", "/v2/web/logout", "/activity",
                "/bookmarks", "/file-manager?origin_id=not-a-collection"):
        browser.goto(server.base_url + url)
        no_serious_violations(browser)


def test_at_200_percent_zoom_two_panes_reflow_and_the_keyboard_works(
    server: FerryServer, storage: Path, mapped: str, tmp_path: Path
) -> None:
    (storage / "zoomed").mkdir()
    (storage / "zoomed" / "a-rather-long-file-name-from-the-instrument-0001.h5").write_text("x")
    url = (f"/file-manager?origin_id={mapped}&origin_path=/zoomed/"
           f"&destination_id={mapped}&destination_path=/")
    with Browser(log_path=tmp_path / "browser.log", zoom=2) as b:
        sign_in(b, server, url, server.admin["username"], server.admin["password"])
        b.screenshot(tmp_path / "two-panes-200.png")
        # nothing scrolls sideways (WCAG 1.4.10): the panes stack, the tables fit
        assert b.evaluate("document.documentElement.scrollWidth <= innerWidth"), b.evaluate(
            "[document.documentElement.scrollWidth, innerWidth]")
        assert b.visible("#listing") and b.visible("#dest-listing")
        no_serious_violations(b)
        # the keyboard: the first Tab stop skips to the content; a folder is made with Enter alone
        b.press("body", "Tab")
        assert b.evaluate("document.activeElement.className") == "skip"
        b.fill("#new-folder", "typed")
        b.press("#new-folder", "Enter")
        assert "Created the folder typed." in b.text("#notice")
        assert (storage / "zoomed" / "typed").is_dir()


def test_files_dropped_on_the_list_upload_and_a_reloaded_page_resumes(
    browser: Browser, server: FerryServer, storage: Path, mapped: str, tmp_path: Path
) -> None:
    import blake3

    (storage / "dropzone").mkdir()
    sign_in(browser, server, f"/file-manager?origin_id={mapped}&origin_path=/dropzone/",
            server.admin["username"], server.admin["password"])
    # a drop as the browser delivers it: a DataTransfer with a file, on the listing
    browser.evaluate("""(() => {
        const dt = new DataTransfer();
        dt.items.add(new File(['dropped bytes'], 'dropped.txt', {type: 'text/plain'}));
        const table = document.querySelector('#listing');
        table.dispatchEvent(new DragEvent('dragover', {dataTransfer: dt, bubbles: true, cancelable: true}));
        table.dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
    })()""")
    browser.wait_for_url("**done=upload**")
    assert "Uploaded dropped.txt." in browser.text("#notice")
    assert (storage / "dropzone" / "dropped.txt").read_text() == "dropped bytes"

    # a large file, the page reloaded mid-way, the same file chosen again: it goes on from the server's offset
    big = tmp_path / "reloaded.bin"
    big.write_bytes(os.urandom(24 << 20))
    folder = server.base_url + f"/file-manager?origin_id={mapped}&origin_path=/dropzone/"
    browser.goto(folder)
    browser.set_input_files("#files", [big])
    browser.throttle(upload=4 << 20)
    browser.click("form.upload button[type=submit]")
    deadline = 600
    while browser.evaluate("Number(document.querySelector('.uploads progress')?.value || 0)") < (4 << 20):
        deadline -= 1
        assert deadline, "the upload did not start"
        browser.evaluate("new Promise(r => setTimeout(r, 50))")
    browser.goto(folder)  # the reload: the request in flight is cut
    assert not (storage / "dropzone" / big.name).exists()
    browser.throttle(upload=None)
    browser.set_input_files("#files", [big])
    browser.click("form.upload button[type=submit]")
    browser.wait_for_url("**done=upload**", timeout=300)
    log = browser.evaluate("JSON.parse(sessionStorage.getItem('ferry-upload-log') || '[]')")
    resumed = [e for e in log if e["file"] == big.name and e["event"] == "resumed"]
    assert resumed and resumed[-1]["offset"] > 0, log
    assert blake3.blake3((storage / "dropzone" / big.name).read_bytes()).hexdigest() == \
        blake3.blake3(big.read_bytes()).hexdigest()
