"""The seed's journey in two real Chromiums (a PI's and a collaborator's), against one Ferry with a real SMTP
sink and a real OpenID provider (the collaborator's university):

 1. the PI shares a project folder: a guest collection from it, an e-mail invitation to the collaborator
    with read-write access to its incoming/ folder;
 2. the collaborator, who has no account, opens the e-mailed link, signs in through the university, accepts,
    and lands in the shared folder;
 3. the PI gives read access to results/ by username; the collaborator browses there and downloads a file;
 4. the collaborator uploads a large file (1 GiB; FERRY_JOURNEY_UPLOAD_MB to change) into incoming/; Ferry is
    SIGKILLed mid-upload and restarted; the page resumes from what had arrived; the stored file's BLAKE3 is
    the original's, and nothing half-uploaded was ever under the real name;
 5. where the rules do not reach (the collection's root; an upload into read-only results/) the collaborator
    is refused with a clear message;
 6. the PI sees who has access, starts a transfer between two panes and watches it on Activity, and cancels
    another.

A screenshot of every step goes to the test's folder (or FERRY_JOURNEY_SHOTS), named in order."""

from __future__ import annotations

import email
import os
import re
import time
import typing as t
import urllib.parse
from pathlib import Path

import blake3
import pytest

from ferry_harness import FerryServer, free_port, mail_sink, sdk_pointed_at, start_server, stop_server
from oidc_provider import OidcProvider, oidc_available
from web_browser import Browser, browser_available, format_violations

_unavailable = browser_available() or oidc_available()
pytestmark = pytest.mark.skipif(_unavailable is not None, reason=f"cannot run: {_unavailable}")

UPLOAD_MB = int(os.environ.get("FERRY_JOURNEY_UPLOAD_MB", "1024"))
CARLA = {"sub": "uni-carla-1", "preferred_username": "carla", "email": "carla@uni.example",
         "email_verified": True, "name": "Carla Castro"}
CARLA_PASSWORD = "carla-uni-password-1"


class World(t.NamedTuple):
    ferry: FerryServer
    uni: OidcProvider
    sink: t.Any


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[World]:
    work = tmp_path_factory.mktemp("journey")
    port = free_port()
    callback = f"http://127.0.0.1:{port}/v2/web/login/callback"
    uni = OidcProvider(work / "uni", accounts={"carla": {"password": CARLA_PASSWORD, "claims": CARLA}},
                       clients=[{"client_id": "ferry", "client_secret": "uni-secret-1",
                                 "redirect_uris": [callback]}]).start()
    try:
        with mail_sink() as sink:
            ferry = start_server(work / "ferry", port=port, config=sink.config() + f"""
[[identity_providers]]
id = "uni"
display_name = "Example University"
issuer = "{uni.issuer}"
client_id = "ferry"
client_secret = "uni-secret-1"
domain = "uni.example"
""")
            try:
                with sdk_pointed_at(ferry.base_url):
                    yield World(ferry, uni, sink)
            finally:
                stop_server(ferry)
    finally:
        uni.stop()

class Person:
    """One person's browser, with a numbered screenshot of every step and axe on every page."""

    def __init__(self, who: str, browser: Browser, shots: Path, counter: list[int]) -> None:
        self.who = who
        self.b = browser
        self.shots = shots
        self.counter = counter

    def step(self, name: str, check: bool = True) -> None:
        self.counter[0] += 1
        self.b.screenshot(self.shots / f"{self.counter[0]:02d}-{self.who}-{name}.png")
        if check:
            found = self.b.axe(min_impact="serious")
            assert not found, f"{self.b.url()}:\n{format_violations(found)}"
            failed = [c for c in self.b.console() if c["type"] == "pageerror"]
            assert not failed, failed


def wait_until(what: str, check: t.Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def kill_and_restart(server: FerryServer, while_down: t.Callable[[], None]) -> None:
    """SIGKILL, look around while it is down, start it again on the same port and data."""
    assert server.proc is not None
    server.fixed_port = server.port
    server.proc.kill()
    server.proc.wait()
    server.proc = None
    while_down()
    server.start()


def blake3_of(path: Path) -> str:
    h = blake3.blake3(max_threads=blake3.blake3.AUTO)
    h.update_mmap(path)
    return h.hexdigest()


def test_the_seeds_journey_in_the_browser(world: World, tmp_path: Path) -> None:
    ferry = world.ferry
    shots = Path(os.environ.get("FERRY_JOURNEY_SHOTS", tmp_path / "shots"))
    shots.mkdir(parents=True, exist_ok=True)
    storage = ferry.data_dir / "storage"
    project = storage / "project"
    (project / "results").mkdir(parents=True)
    (project / "incoming").mkdir()
    (project / "results" / "summary.csv").write_text("sample,value\nA7,0.93\n")
    (project / "notes-for-the-pi.txt").write_text("not shared\n")
    big = tmp_path / "scan-0001.h5"
    with open(big, "wb") as f:
        for _ in range(UPLOAD_MB):
            f.write(os.urandom(1 << 20))
    counter = [0]
    base = ferry.base_url

    with Browser(log_path=tmp_path / "pi.log") as pib, Browser(log_path=tmp_path / "carla.log") as cb:
        pi = Person("pi", pib, shots, counter)
        carla = Person("carla", cb, shots, counter)

        # 1. The PI shares the project folder and invites Carla by e-mail to incoming/.
        pib.open(base + "/file-manager")
        pib.fill("#username", ferry.admin["username"])
        pib.fill("#password", ferry.admin["password"])
        pib.click("button:has-text('Log in')")
        pi.step("collections")
        pib.click("a:has-text('Ferry local storage')")
        pib.fill("#path", "/project/")
        pib.click("button:has-text('Go')")
        pi.step("project-folder")
        pib.click("a:has-text('Share this folder')")
        pib.fill("#display_name", "Beamline 7 project")
        pi.step("make-guest-collection")
        pib.click("button:has-text('Create guest collection')")
        guest = urllib.parse.parse_qs(urllib.parse.urlsplit(pib.url()).query)["origin_id"][0]
        pib.goto(base + f"/file-manager/share?origin_id={guest}&origin_path=/incoming/")
        pib.fill("#who", "carla@uni.example")
        pib.click("input[name=permissions][value=rw]")
        pib.fill("#message", "Please put the raw scans in here.")
        pi.step("invite")
        pib.click("button:has-text('Share')")
        assert "Invitation sent" in pib.text("#notice")
        pi.step("invited")

        # 2. Carla opens the e-mailed link, signs in through her university, accepts.
        mail = email.message_from_string(world.sink.wait_for("carla@uni.example"))
        text = (mail.get_payload(decode=True) or b"").decode() if not mail.is_multipart() else \
            next(p for p in mail.walk() if p.get_content_type() == "text/plain").get_payload(decode=True).decode()
        link = re.search(r"/invitation\?code=[0-9a-f]{64}", text)
        assert link, text
        cb.open(base + link.group(0))
        assert "Beamline 7 project" in cb.text("main") or "incoming" in cb.text("main")
        carla.step("invitation")
        cb.click("#sign-in")
        carla.step("login-choices")
        cb.click("button[name=provider][value=uni]")
        assert urllib.parse.urlsplit(cb.url()).netloc == urllib.parse.urlsplit(world.uni.issuer).netloc
        carla.step("university-login", check=False)  # the provider's page, not Ferry's
        cb.fill("input[name=login]", "carla")
        cb.fill("input[name=password]", CARLA_PASSWORD)
        cb.click("button[type=submit]")
        assert "/invitation" in cb.url(), cb.url()
        carla.step("accept")
        cb.click("button:has-text('Accept')")
        assert "Invitation accepted" in cb.text("h1")
        carla.step("accepted")
        cb.click("#open-shared")
        assert "Beamline 7 project: /incoming/" in cb.text("main h2")
        carla.step("shared-folder")

        # 3. The PI adds read access to results/ by her new username; she browses there and downloads.
        pib.goto(base + f"/file-manager/share?origin_id={guest}&origin_path=/results/")
        pib.fill("#who", "carla@uni.example")
        pib.click("button:has-text('Share')")
        assert "Access added." in pib.text("#notice")
        cb.goto(base + f"/file-manager?origin_id={guest}&origin_path=/results/")
        carla.step("results")
        href = cb.evaluate("document.querySelector('#listing a[download]').getAttribute('href')")
        assert cb.evaluate(f"fetch({href!r}).then(r => r.text())") == "sample,value\nA7,0.93\n"

        # 4. The large upload into incoming/, interrupted by a crash of the server, resumed.
        cb.goto(base + f"/file-manager?origin_id={guest}&origin_path=/incoming/")
        cb.set_input_files("#files", [big])
        # slow at first, so that the crash surely lands mid-upload whatever the size; full speed after
        cb.throttle(upload=32 << 20)
        cb.click("form.upload button[type=submit]")
        size = big.stat().st_size

        def uploaded() -> int:
            return int(cb.evaluate("Number(document.querySelector('.uploads progress')?.value || 0)"))

        wait_until("a quarter uploaded", lambda: uploaded() > size // 4, timeout=300)
        carla.step("uploading", check=False)
        real = project / "incoming" / big.name

        def while_down() -> None:
            assert not real.exists(), "a half-uploaded file stood under the real name"
            parts = [p for p in (project / "incoming").iterdir()]
            assert parts and all(p.name != big.name for p in parts), parts

        kill_and_restart(ferry, while_down)
        assert not real.exists()
        cb.throttle(upload=None)
        cb.wait_for_url("**done=upload**", timeout=600)
        assert f"Uploaded {big.name}." in cb.text("#notice")
        carla.step("uploaded")
        log = cb.evaluate("JSON.parse(sessionStorage.getItem('ferry-upload-log') || '[]')")
        resumed = [e for e in log if e["event"] == "resumed"]
        assert [e for e in log if e["event"] == "retry"], log  # the page saw the fault
        assert resumed and resumed[0]["offset"] > 0, log  # and went on from what had arrived
        assert real.stat().st_size == size
        assert blake3_of(real) == blake3_of(big)
        assert sorted(p.name for p in (project / "incoming").iterdir()) == [big.name]

        # 5. Where the rules do not reach: the collection's root, and an upload into read-only results/.
        cb.goto(base + f"/file-manager?origin_id={guest}&origin_path=/")
        refusal = cb.text("#error")
        assert "permission" in refusal.lower() or "access" in refusal.lower(), refusal
        assert str(storage) not in cb.text("main") and "/project" not in cb.text("main")
        carla.step("refused-root")
        cb.goto(base + f"/file-manager?origin_id={guest}&origin_path=/results/")
        small = tmp_path / "not-allowed.txt"
        small.write_text("x")
        cb.set_input_files("#files", [small])
        cb.click("form.upload button[type=submit]")
        wait_until("the refusal", lambda: "failed" in cb.text(".uploads"), timeout=60)
        assert not (project / "results" / small.name).exists()
        carla.step("refused-upload", check=False)

        # 6. The PI: who has access, a transfer watched on Activity, another cancelled.
        pib.goto(base + f"/file-manager/share?origin_id={guest}&origin_path=/incoming/")
        access = pib.text("main")
        assert "carla@uni.example" in access and "Editor" in access
        pi.step("who-has-access")
        pib.goto(base + "/file-manager")
        mapped = pib.evaluate(
            "new URL(Array.from(document.querySelectorAll('#content a'))"
            ".find(a => a.innerText === 'Ferry local storage').href).searchParams.get('origin_id')")
        (storage / "archive").mkdir()
        with open(project / "results" / "huge.raw", "wb") as f:
            f.truncate(4 << 30)
        pib.goto(base + f"/file-manager?origin_id={mapped}&origin_path=/project/results/"
                 f"&destination_id={mapped}&destination_path=/archive/")
        pi.step("two-panes")
        pib.click("input[name='item:summary.csv']")
        pib.click("#transfer summary")  # the options, folded by default
        pib.fill("#label", "summary to archive")
        pib.click("#transfer button[type=submit]")
        assert "Transfer started" in pib.text("#notice")
        pi.step("transfer-started")
        pib.click("#notice a:has-text('View details')")
        wait_until("the task to succeed", lambda: "Succeeded" in pib.text("#status"), timeout=120)
        pi.step("task-succeeded")
        assert (storage / "archive" / "summary.csv").read_text() == "sample,value\nA7,0.93\n"

        pib.goto(base + f"/file-manager?origin_id={mapped}&origin_path=/project/results/"
                 f"&destination_id={mapped}&destination_path=/archive/")
        pib.click("input[name='item:huge.raw']")
        pib.click("#transfer summary")
        pib.fill("#label", "huge raw to archive")
        pib.click("#transfer button[type=submit]")
        pib.click("#notice a:has-text('View details')")
        assert pib.text("#status").startswith("Active"), pib.text("#status")
        pi.step("task-running")
        pib.click("button:has-text('Cancel this task')")
        assert "cancelled" in pib.text("#notice")
        pi.step("task-cancelled")
        pib.goto(base + "/activity")
        listing = pib.text("table")
        assert "summary to archive" in listing and "huge raw to archive" in listing
        pi.step("activity")
        assert not (storage / "archive" / "huge.raw").exists()
