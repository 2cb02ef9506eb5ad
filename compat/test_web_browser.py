"""Tests of the browser kit (compat/web_browser.py, web-tests/browser.mjs) itself, on Ferry's existing login
page: what the web app's tests will rely on (a real Chromium, screenshots, cookies, axe-core, 200% zoom)."""

from __future__ import annotations

import typing as t
from pathlib import Path

import pytest

from ferry_harness import FerryServer
from web_browser import IMPACTS, Browser, BrowserError, browser_available, format_violations

_unavailable = browser_available()
pytestmark = pytest.mark.skipif(_unavailable is not None, reason=f"no browser: {_unavailable}")

LOGIN = "/v2/web/login?next=/"


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[Browser]:
    with Browser(log_path=tmp_path_factory.mktemp("browser") / "browser.log") as b:
        yield b


def sign_in(browser: Browser, server: FerryServer) -> dict[str, t.Any]:
    browser.fill("#username", server.admin["username"])
    browser.fill("#password", server.admin["password"])
    return browser.click("button[type=submit]")


def test_login_screenshot_and_sign_in_give_a_session_cookie(
    browser: Browser, ferry: FerryServer, tmp_path: Path
) -> None:
    opened = browser.open(ferry.base_url + LOGIN)
    assert opened == {"url": ferry.base_url + LOGIN, "status": 200}
    assert "Log in to Ferry" in browser.text("h1")
    shot = browser.screenshot(tmp_path / "login.png")
    png = shot.read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000, len(png)
    width = int.from_bytes(png[16:20], "big")  # the IHDR chunk: 1280 CSS pixels at scale 1
    assert width == 1280, width
    assert not any(c["name"] == "ferry_session" for c in browser.cookies())

    landed = sign_in(browser, ferry)
    # "/" sends a signed-in person to the file manager
    assert landed["url"] == browser.url() == ferry.base_url + "/file-manager"
    session = [c for c in browser.cookies() if c["name"] == "ferry_session"]
    assert len(session) == 1 and session[0]["httpOnly"] and session[0]["domain"] == "127.0.0.1", session
    # no script failed (/favicon.ico answers 404, which the console logs)
    assert not [c for c in browser.console() if c["type"] == "pageerror"], browser.console()


def test_axe_reports_the_login_pages_violations(
    browser: Browser, ferry: FerryServer, capsys: pytest.CaptureFixture[str]
) -> None:
    browser.open(ferry.base_url + LOGIN)
    report = browser.axe_run()
    assert report["url"] == ferry.base_url + LOGIN and report["passes"] > 0, report
    for v in report["violations"]:
        assert v["impact"] in IMPACTS and v["id"] and v["help"] and v["description"], v
        assert v["nodes"] and all(n["target"] and all(isinstance(s, str) for s in n["target"])
                                  for n in v["nodes"]), v
    with capsys.disabled():  # in the suite's output: the web app's to-do list, not a failure of this kit
        print(f"\naxe-core on {LOGIN}: {len(report['violations'])} violation(s), "
              f"incomplete {report['incomplete']}\n{format_violations(report['violations'])}")

    # axe runs despite the page's CSP (no scripts), finds what is there, and min_impact filters it
    # inside <main> when there is one, so that the image breaks exactly one rule
    browser.evaluate("(document.querySelector('main') || document.body)"
                     ".append(Object.assign(document.createElement('img'), {id: 'no-alt'}))")
    added = [v for v in browser.axe(min_impact="critical") if v["id"] == "image-alt"]
    assert added and added[0]["nodes"][0]["target"] == ["#no-alt"], added
    assert all(v["impact"] == "critical" for v in browser.axe(min_impact="critical"))
    assert len(browser.axe(min_impact=None)) == len(report["violations"]) + 1


def test_at_200_percent_zoom_the_login_form_still_works(ferry: FerryServer, tmp_path: Path) -> None:
    with Browser(log_path=tmp_path / "browser.log", zoom=2) as browser:
        assert browser.info["viewport"] == {"width": 640, "height": 400}, browser.info
        browser.open(ferry.base_url + LOGIN)
        assert browser.evaluate("[innerWidth, devicePixelRatio]") == [640, 2]
        # no sideways scrolling at 200%
        assert browser.evaluate("document.documentElement.scrollWidth <= innerWidth")
        assert browser.visible("button[type=submit]")
        png = browser.screenshot(tmp_path / "login-200.png").read_bytes()
        assert int.from_bytes(png[16:20], "big") == 1280  # the same window, twice the pixels per CSS pixel
        assert sign_in(browser, ferry)["url"] == ferry.base_url + "/file-manager"
        assert any(c["name"] == "ferry_session" for c in browser.cookies())
        # the app's pages reflow too: no sideways scrolling on the file manager at 200%
        assert browser.evaluate("document.documentElement.scrollWidth <= innerWidth")
        browser.screenshot(tmp_path / "file-manager-200.png")


def test_errors_carry_playwrights_message_and_the_driver_goes_on(browser: Browser, ferry: FerryServer) -> None:
    browser.open(ferry.base_url + LOGIN)
    with pytest.raises(BrowserError, match=r"click .*#no-such-button.*Timeout 500ms") as raised:
        browser.click("#no-such-button", timeout=0.5)
    assert "browser log" in str(raised.value)
    with pytest.raises(BrowserError, match="strict mode violation"):
        browser.text("input")  # several inputs: a selector must name one element
    with pytest.raises(BrowserError, match="unknown command"):
        browser.call("fly")
    with pytest.raises(BrowserError, match="ReferenceError"):
        browser.evaluate("no_such_variable")
    assert browser.url() == ferry.base_url + LOGIN
    browser.close()
    with pytest.raises(BrowserError, match="send 'open' first"):
        browser.url()
