"""A real OpenID Connect provider on 127.0.0.1 for tests of Ferry as a relying party ("sign in with your
university's account"): compat/oidc/provider.mjs, i.e. the certified oidc-provider 9.13.3 under Node, with
its own login form, automatic consent, persisted keys and a small admin API (rotation, tampering, counts).

    with OidcProvider(tmp_path / "idp", clients=[{"client_id": "ferry", "client_secret": "s3cret",
                      "redirect_uris": [callback]}], accounts={"alice": {"password": "pw",
                      "claims": {"sub": "alice-1", "email": "alice@uni.example"}}}) as idp:
        response = provider_login(session, authorize_url, "alice", "pw")  # the 303 back to the RP
"""

from __future__ import annotations

import functools
import json
import shutil
import signal
import subprocess
import time
import typing as t
import urllib.parse
from pathlib import Path

import requests

from ferry_harness import STARTUP_TIMEOUT, Form, free_port, parse_page

OIDC_DIR = Path(__file__).resolve().parent / "oidc"


@functools.cache
def oidc_available() -> str | None:
    """Why the provider cannot run here, or None when it can (for `pytest.skip`)."""
    node = shutil.which("node")
    if node is None:
        return "node is not on PATH (compat/oidc needs Node.js 20.12 or later)"
    if not (OIDC_DIR / "node_modules" / "oidc-provider").is_dir():
        return "compat/oidc/node_modules is missing: run compat/oidc/install.sh"
    version = subprocess.run(
        [node, "-p", "process.versions.node"], capture_output=True, text=True, timeout=30
    ).stdout.strip()
    # oidc-provider 9 calls crypto.hash(), which Node has since 20.12
    if tuple(int(p) for p in version.split(".")[:2]) < (20, 12):
        return f"node {version} is too old for oidc-provider 9 (needs 20.12 or later)"
    return None


class OidcProviderError(RuntimeError):
    pass


class OidcProvider:
    """The provider as a process. Configuration, keys (state/jwks.json) and the log live in `workdir`;
    the port, hence the issuer, stays the same across restarts."""

    def __init__(
        self, workdir: Path, *, clients: list[dict], accounts: dict, port: int | None = None
    ) -> None:
        self.workdir = Path(workdir)
        self.clients = [dict(c) for c in clients]
        self.accounts = dict(accounts)
        self.port = port or free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.log_path = self.workdir / "provider.log"
        self.config_path = self.workdir / "config.json"
        self._proc: subprocess.Popen[bytes] | None = None
        self._http = requests.Session()
        self._http.trust_env = False  # loopback: never through a proxy from the environment

    @property
    def discovery_url(self) -> str:
        return self.issuer + "/.well-known/openid-configuration"

    def __enter__(self) -> OidcProvider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> OidcProvider:
        if self._proc is not None:
            raise OidcProviderError(f"the provider at {self.issuer} is already running")
        reason = oidc_available()
        if reason is not None:
            raise OidcProviderError(reason)
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = {
            "port": self.port,
            "issuer": self.issuer,
            "state_dir": str(self.workdir / "state"),
            "clients": self.clients,
            "accounts": self.accounts,
        }
        self.config_path.write_text(json.dumps(config, indent=2))
        # It starts in about a second. Once (1 run in ~40 of the whole suite, on CI) a process stalled
        # after loading without ever listening: a stalled one leaves a Node diagnostic report (its JS stack
        # and libuv handles) in the log and gives way to a second process.
        failures = []
        for _attempt in range(2):
            failure = self._start_once()
            if failure is None:
                return self
            failures.append(failure)
        raise OidcProviderError(
            "the OIDC provider did not start: " + "; ".join(failures)
            + f"; log {self.log_path}:\n{self.log_tail()}"
        )

    def _start_once(self) -> str | None:
        """Starts one process and waits for its 'ready' line: None when it came, else why not."""
        log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            # stdin stays a pipe we hold: the provider exits when it closes, so no orphan outlives us
            self._proc = subprocess.Popen(
                [t.cast(str, shutil.which("node")), "--report-on-signal", "--report-signal=SIGUSR2",
                 "--report-compact", f"--report-directory={self.workdir}",
                 "provider.mjs", str(self.config_path)],
                cwd=OIDC_DIR, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT,
            )
        started = time.monotonic()
        deadline = started + min(STARTUP_TIMEOUT, 45.0)
        ready = f"ready {self.issuer}".encode()
        while time.monotonic() < deadline:
            with open(self.log_path, "rb") as log:
                log.seek(log_start)
                if ready in log.read().splitlines():
                    return None
            if self._proc.poll() is not None:
                break
            time.sleep(0.05)
        code = self._proc.poll()
        if code is None:
            self._report_stall()
        self.stop()
        why = f"exit code {code}" if code is not None else "no 'ready' line"
        return f"{why} after {time.monotonic() - started:.1f} s"

    def _report_stall(self) -> None:
        """Asks the stalled process for a Node diagnostic report and appends its gist to the log."""
        assert self._proc is not None
        before = set(self.workdir.glob("report.*.json"))
        self._proc.send_signal(signal.SIGUSR2)
        for _ in range(100):
            reports = set(self.workdir.glob("report.*.json")) - before
            if reports:
                time.sleep(0.2)  # written in one go, but give it time to close
                try:
                    report = json.loads(next(iter(reports)).read_text())
                except (OSError, ValueError) as err:
                    gist = f"unreadable report: {err}"
                else:
                    gist = json.dumps({
                        "javascriptStack": report.get("javascriptStack"),
                        "nativeStack": [f.get("symbol") for f in report.get("nativeStack", [])][:15],
                        "libuv": [(h.get("type"), h.get("is_active"), h.get("localEndpoint"))
                                  for h in report.get("libuv", [])],
                    }, indent=1)
                break
            time.sleep(0.1)
        else:
            gist = "no report within 10 s (its main thread is busy or blocked: reports are written from the event loop)"
        with open(self.log_path, "a") as log:
            log.write(f"\n[harness] the provider stalled before listening; diagnostic report:\n{gist}\n")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        assert proc.stdin is not None
        proc.stdin.close()

    def restart(self) -> None:
        """A new process with the current clients and accounts. Keys persist; sessions, pending
        tampering and request counts do not."""
        self.stop()
        self.start()

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return "(no log)"

    def add_client(self, client: dict) -> None:
        """client: {client_id, client_secret, redirect_uris, token_endpoint_auth_method?}.
        Restarts a running provider (clients are fixed at its start)."""
        self.clients.append(dict(client))
        if self._proc is not None:
            self.restart()

    def add_account(self, login: str, password: str, claims: dict) -> None:
        """claims["sub"] is the account id. Restarts a running provider."""
        self.accounts[login] = {"password": password, "claims": dict(claims)}
        if self._proc is not None:
            self.restart()

    def _admin(self, method: str, what: str, body: dict | None = None) -> t.Any:
        if self._proc is None:
            raise OidcProviderError(f"the provider at {self.issuer} is not running")
        resp = self._http.request(method, f"{self.issuer}/__admin/{what}", json=body, timeout=30)
        if resp.status_code != 200:
            raise OidcProviderError(f"/__admin/{what}: HTTP {resp.status_code} {resp.text}")
        return resp.json()

    def rotate_keys(self) -> str:
        """A new RS256 key signs from now on (no restart); the old ones stay in the JWKS.
        Returns the new key's kid."""
        return t.cast(str, self._admin("POST", "rotate")["kid"])

    def tamper_next_id_token(self, **overrides: t.Any) -> None:
        """Changes the next ID token the token endpoint returns (once), re-signed with the current key:
        claims (iss="...", aud="...", nonce="...", email=...; None removes one), exp_offset=seconds
        (exp = now + offset, iat moved with it), sign_with="foreign" (a key outside the JWKS, same kid)."""
        self._admin("POST", "tamper", overrides)

    def requests_seen(self) -> dict[str, int]:
        """Requests per path since the process started (the admin API's own excluded)."""
        return t.cast(dict, self._admin("GET", "requests"))


class ProviderLoginError(AssertionError):
    def __init__(self, message: str, response: requests.Response | None, history: list[str]) -> None:
        super().__init__(message + "\nrequests:\n  " + "\n  ".join(history)
                         + (f"\nlast page:\n{response.text[:2000]}" if response is not None else ""))
        self.response = response
        self.history = history


def provider_login(
    session: requests.Session, authorize_url: str, login: str, password: str
) -> requests.Response:
    """Signs in at the provider as a browser would, from the authorization URL an RP produced: follows
    the provider's redirects, fills its login form, and returns the response that redirects back to the
    RP (not followed: its Location carries code and state, or error). Raises ProviderLoginError when the
    provider shows its login form again (wrong password) or an error page."""
    origin = urllib.parse.urlsplit(authorize_url).netloc
    history: list[str] = []
    method, url, data = "GET", authorize_url, None
    submitted = False
    for _hop in range(20):
        resp = session.request(method, url, data=data, allow_redirects=False, timeout=30)
        history.append(f"{method} {url} -> {resp.status_code}")
        if resp.is_redirect:
            url = urllib.parse.urljoin(resp.url, resp.headers["Location"])
            if urllib.parse.urlsplit(url).netloc != origin:
                return resp  # leaving the provider: the redirect to the RP
            method, data = "GET", None
            continue
        page = parse_page(resp)
        if page.status >= 400:
            raise ProviderLoginError(f"the provider answered HTTP {page.status}", resp, history)
        form: Form | None = next(
            (f for f in page.forms if f.has_control("password", kind="password")), None
        )
        if form is None:
            raise ProviderLoginError("the provider's page has no login form", resp, history)
        if submitted:
            raise ProviderLoginError(
                "the provider showed its login form again (wrong login or password?)", resp, history
            )
        submitted = True
        url = urllib.parse.urljoin(page.url, form.action)
        body = form.submission({"login": login, "password": password})
        if form.method == "post":
            method, data = "POST", body
        else:
            method, data = "GET", None
            url += ("&" if urllib.parse.urlsplit(url).query else "?") + urllib.parse.urlencode(body)
    raise ProviderLoginError("too many redirects", None, history)
