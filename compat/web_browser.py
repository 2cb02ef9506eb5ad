"""A real browser for tests of Ferry's web pages: Debian's headless Chromium driven by playwright-core through
web-tests/browser.mjs, a Node process that answers one JSON line per request. Tests stay in Python.

    with Browser(log_path=tmp_path / "browser.log", zoom=2) as browser:
        browser.open(server.base_url + "/v2/web/login?next=/")
        browser.fill("#username", admin["username"])
        browser.click("button[type=submit]")
        browser.screenshot(tmp_path / "signed-in.png")
        assert not browser.axe(min_impact="serious"), format_violations(browser.axe())

Selectors are Playwright's (CSS, `text=…`, `role=button[name="Log in"]`), strict: one that matches two
elements is an error. Every call has a timeout; a failure raises BrowserError with the driver log's tail.
"""

from __future__ import annotations

import functools
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
import typing as t
from pathlib import Path

from ferry_harness import REPO_ROOT, tail

WEB_TESTS = REPO_ROOT / "web-tests"
CHROMIUM = Path("/usr/bin/chromium")  # Debian's package (web-tests/install.sh installs it)
IMPACTS = ("minor", "moderate", "serious", "critical")  # axe-core's, least to most severe


@functools.cache
def browser_available() -> str | None:
    """Why no browser can run here, or None when it can (for `pytest.skip`)."""
    if not os.access(CHROMIUM, os.X_OK):
        return f"{CHROMIUM} is missing: run web-tests/install.sh (Debian's chromium)"
    if shutil.which("node") is None:
        return "node is not on PATH (web-tests needs Node.js 20 or later)"
    for package in ("playwright-core", "axe-core"):
        if not (WEB_TESTS / "node_modules" / package).is_dir():
            return f"web-tests/node_modules/{package} is missing: run web-tests/install.sh"
    return None


class BrowserError(AssertionError):
    pass


class Browser:
    """One Chromium with one page at a time (`open` starts a fresh context: no cookies, no storage).

    viewport: the window in CSS pixels at 100%; device_scale_factor: device pixels per CSS pixel (screen
    density); zoom: browser zoom, 2 for 200% (the viewport seen by the page is divided by it, the density
    multiplied, as Chromium's own zoom does). timeout: seconds for each call unless one is given to it."""

    def __init__(
        self,
        *,
        log_path: Path | None = None,
        viewport: tuple[int, int] = (1280, 800),
        device_scale_factor: float = 1,
        zoom: float = 1,
        timeout: float = 30,
    ) -> None:
        if log_path is None:
            log_path = Path(tempfile.mkdtemp(prefix="ferry-browser-")) / "browser.log"
        self.log_path = Path(log_path)
        self.options = {
            "executable": str(CHROMIUM),
            "viewport": list(viewport),
            "device_scale_factor": device_scale_factor,
            "zoom": zoom,
        }
        self.timeout = timeout
        self.info: dict[str, t.Any] = {}  # chromium's version, the viewport and scale the page sees
        self._proc: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._next_id = 0
        self._ended = ""  # why the driver is gone, once it is

    def __enter__(self) -> Browser:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> Browser:
        reason = browser_available()
        if reason is not None:
            raise BrowserError(reason)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, DEBUG="pw:browser")  # Chromium's own output into the log, for crashes
        with open(self.log_path, "a") as log:
            self._proc = subprocess.Popen(
                [t.cast(str, shutil.which("node")), "browser.mjs", json.dumps(self.options)],
                cwd=WEB_TESTS, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                text=True, env=env,
            )
        # a thread reads the answers, so that waiting for one can time out
        self._lines = queue.Queue()
        threading.Thread(target=self._read, args=(self._proc, self._lines), daemon=True).start()
        self.info = self._answer(0, time.monotonic() + 90, "start")
        return self

    @staticmethod
    def _read(proc: subprocess.Popen[str], lines: queue.Queue[str | None]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    def stop(self, grace: float = 20) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        assert proc.stdin is not None
        try:
            proc.stdin.close()  # the driver closes Chromium and exits (Chromium also ends with its pipe)
            proc.wait(timeout=grace)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()

    def log_tail(self, chars: int = 4000) -> str:
        return tail(self.log_path, chars)

    def _fail(self, message: str) -> t.NoReturn:
        raise BrowserError(f"{message}\nbrowser log {self.log_path}:\n{self.log_tail()}")

    def _answer(self, want: int, deadline: float, what: str) -> t.Any:
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.stop(grace=2)  # a driver that missed its deadline is in no known state
                self._ended = f"stopped: no answer to {what} in time"
                self._fail(f"browser: {self._ended}")
            if line is None:
                code = self._proc.poll() if self._proc else None
                self._proc = None
                self._ended = f"the driver ended (exit code {code}) during {what}"
                self._fail(f"browser: {self._ended}")
            answer = json.loads(line)
            if answer.get("id") != want:
                continue  # not this request's (a line the driver could not read has id null)
            if not answer["ok"]:
                self._fail(f"browser: {what}: {answer['error']}")
            return answer["result"]

    def call(self, cmd: str, timeout: float | None = None, **args: t.Any) -> t.Any:
        """Sends one request; returns its result. Playwright's own timeout is this call's, so that its
        message (what it waited for) comes first; a driver silent for 10 s more is killed."""
        if self._proc is None or self._proc.stdin is None:
            self._fail(f"browser: not running ({self._ended or 'use `with Browser() as browser`'})")
        seconds = self.timeout if timeout is None else timeout
        self._next_id += 1
        request = {"id": self._next_id, "cmd": cmd, "timeout_ms": int(seconds * 1000), **args}
        try:
            self._proc.stdin.write(json.dumps(request) + "\n")
            self._proc.stdin.flush()
        except OSError as err:
            self._fail(f"browser: the driver is gone ({err})")
        shown = {k: v for k, v in args.items() if k != "value"}  # a filled value may be a password
        what = f"{cmd} {json.dumps(shown)[:200]}"
        return self._answer(self._next_id, time.monotonic() + seconds + 10, what)

    # -- pages -------------------------------------------------------------------------------------

    def open(self, url: str, **kw: t.Any) -> dict[str, t.Any]:
        """A new page in a fresh context (no cookies); returns {url, status} of the response."""
        return t.cast(dict, self.call("open", url=url, **kw))

    def goto(self, url: str, **kw: t.Any) -> dict[str, t.Any]:
        return t.cast(dict, self.call("goto", url=url, **kw))

    def click(self, selector: str, **kw: t.Any) -> dict[str, t.Any]:
        """Clicks, then waits for a page the click led to; returns {url}."""
        return t.cast(dict, self.call("click", selector=selector, **kw))

    def fill(self, selector: str, value: str, **kw: t.Any) -> None:
        self.call("fill", selector=selector, value=value, **kw)

    def press(self, selector: str, key: str, **kw: t.Any) -> None:
        """key: Playwright's names ("Enter", "Tab", "Shift+Tab", "a")."""
        self.call("press", selector=selector, key=key, **kw)

    def text(self, selector: str, **kw: t.Any) -> str:
        """The element's text as rendered (innerText)."""
        return t.cast(str, self.call("text", selector=selector, **kw))

    def html(self, **kw: t.Any) -> str:
        return t.cast(str, self.call("html", **kw))

    def url(self, **kw: t.Any) -> str:
        return t.cast(str, self.call("url", **kw))

    def screenshot(self, path: Path, **kw: t.Any) -> Path:
        """The full page as a PNG."""
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.call("screenshot", path=str(Path(path).resolve()), **kw)
        return Path(path)

    def set_input_files(self, selector: str, paths: t.Sequence[Path], **kw: t.Any) -> None:
        self.call("set_input_files", selector=selector, paths=[str(Path(p).resolve()) for p in paths], **kw)

    def wait_for(self, selector: str, state: str = "visible", timeout: float | None = None) -> None:
        """state: attached, detached, visible or hidden."""
        self.call("wait_for", selector=selector, state=state, timeout=timeout)

    def wait_for_url(self, url: str, timeout: float | None = None) -> str:
        """url: exact or a glob (`**/v2/web/consent*`)."""
        return t.cast(str, self.call("wait_for_url", url=url, timeout=timeout))

    def evaluate(self, expression: str, **kw: t.Any) -> t.Any:
        """A JavaScript expression in the page (a Promise is awaited); its value as JSON."""
        return self.call("evaluate", expression=expression, **kw)

    def visible(self, selector: str, **kw: t.Any) -> bool:
        """Scrolled to, the element lies within the viewport's width and nothing covers it."""
        return t.cast(bool, self.call("visible", selector=selector, **kw))

    def throttle(self, upload: int | None, **kw: t.Any) -> None:
        """Limits what the page sends to `upload` bytes per second (Chromium's network emulation); None
        lifts the limit."""
        self.call("throttle", upload=upload, **kw)

    def cookies(self, **kw: t.Any) -> list[dict[str, t.Any]]:
        """The context's cookies as Playwright gives them: name, value, domain, path, httpOnly, ..."""
        return t.cast(list, self.call("cookies", **kw))

    def console(self, **kw: t.Any) -> list[dict[str, str]]:
        """The page's console messages and uncaught errors since `open`: [{type, text, url}]."""
        return t.cast(list, self.call("console", **kw))

    def close(self, **kw: t.Any) -> None:
        """Closes the page and its context; the browser stays for the next `open`."""
        self.call("close", **kw)

    # -- accessibility ----------------------------------------------------------------------------

    def axe_run(self, tags: t.Sequence[str] | None = None, **kw: t.Any) -> dict[str, t.Any]:
        """axe-core on the current page: {url, passes (a count), incomplete (rule ids), violations:
        [{id, impact, description, help, helpUrl, tags, nodes: [{target, html, summary}]}]}.
        tags: only the rules with these (e.g. ["wcag2a", "wcag2aa", "wcag21aa", "wcag22aa"])."""
        return t.cast(dict, self.call("axe", tags=list(tags) if tags else None, **kw))

    def axe(self, min_impact: str | None = "serious", tags: t.Sequence[str] | None = None,
            **kw: t.Any) -> list[dict[str, t.Any]]:
        """The violations at least as severe as min_impact (None: all of them)."""
        floor = IMPACTS.index(min_impact) if min_impact else 0
        return [
            v for v in self.axe_run(tags, **kw)["violations"]
            if v["impact"] is None or IMPACTS.index(v["impact"]) >= floor
        ]


def format_violations(violations: list[dict[str, t.Any]]) -> str:
    """One line per violation and one per element it names, for a test's message or output."""
    lines = []
    for v in violations:
        lines.append(f"{v['impact']}: {v['id']}: {v['help']} ({v['helpUrl']})")
        lines += [f"    {' '.join(n['target'])}: {n['html'][:160]}" for n in v["nodes"]]
    return "\n".join(lines) or "no violations"
