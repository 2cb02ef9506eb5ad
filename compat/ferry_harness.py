"""Helpers for the compat suite: run a real Ferry server, drive its admin commands,
run the real Globus CLI against it and click through its browser login pages."""

from __future__ import annotations

import contextlib
import html.parser
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
import typing as t
import urllib.parse
from pathlib import Path

import requests

REPO_ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent

# How long a freshly started server may take to answer its discovery document.
STARTUP_TIMEOUT = float(os.environ.get("FERRY_COMPAT_STARTUP_TIMEOUT", "120"))
# Upper bound for any single admin command or CLI invocation.
COMMAND_TIMEOUT = float(os.environ.get("FERRY_COMPAT_COMMAND_TIMEOUT", "120"))

# Globus SDK service names (GLOBUS_SDK_SERVICE_URL_<NAME>) that are pointed at Ferry.
# The brief's list plus the SDK's own spelling for timers ("timer").
SERVICE_NAMES = ("AUTH", "TRANSFER", "GROUPS", "SEARCH", "TIMER", "TIMERS", "FLOWS")


def ferry_binary() -> Path:
    configured = os.environ.get("FERRY_BIN")
    path = Path(configured).resolve() if configured else REPO_ROOT / "target" / "debug" / "ferry"
    if not path.is_file() or not os.access(path, os.X_OK):
        raise RuntimeError(
            f"Ferry binary not found at {path}; build it with `cargo build -p ferry-cli` "
            "or point FERRY_BIN at it"
        )
    return path


def ferry_env() -> dict[str, str]:
    """Environment for `ferry` processes: Ferry reads FERRY_* variables as configuration
    and rejects unknown ones, so none of the caller's (FERRY_BIN, ...) leak through."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_")}
    env.setdefault("RUST_BACKTRACE", "1")
    return env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tail(path: Path, limit: int = 8000) -> str:
    try:
        data = path.read_bytes()
    except OSError as err:
        return f"<unable to read {path}: {err}>"
    text = data[-limit:].decode("utf-8", errors="replace")
    return ("...\n" if len(data) > limit else "") + text


def globus_env(
    base_url: str,
    home: Path,
    *,
    client_id: str | None = None,
    client_secret: str | None = None,
) -> dict[str, str]:
    """The environment a user would set to point the Globus SDK/CLI at Ferry."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GLOBUS_")}
    for var in ("SSH_TTY", "SSH_CONNECTION"):
        env.pop(var, None)
    root = base_url.rstrip("/") + "/"
    env["GLOBUS_SDK_ENVIRONMENT"] = "ferry"
    for name in SERVICE_NAMES:
        env[f"GLOBUS_SDK_SERVICE_URL_{name}"] = root
    env["GLOBUS_SDK_HTTP_TIMEOUT"] = "30"
    env["HOME"] = str(home)
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env["PYTHONUNBUFFERED"] = "1"
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    if client_id is not None:
        env["GLOBUS_CLI_CLIENT_ID"] = client_id
    if client_secret is not None:
        env["GLOBUS_CLI_CLIENT_SECRET"] = client_secret
    return env


@contextlib.contextmanager
def sdk_pointed_at(base_url: str, **extra: str) -> t.Iterator[None]:
    """While the block runs, the process environment points the in-process Globus SDK at `base_url`, as a
    user's would (plus `extra` variables); afterwards it is as it was."""
    touched = [k for k in os.environ if k.startswith("GLOBUS_")] + list(extra) + ["NO_PROXY"]
    saved = {k: os.environ[k] for k in touched if k in os.environ}
    for k in touched:
        os.environ.pop(k, None)
    os.environ["GLOBUS_SDK_ENVIRONMENT"] = "ferry"
    os.environ["GLOBUS_SDK_HTTP_TIMEOUT"] = "30"
    for name in SERVICE_NAMES:
        os.environ[f"GLOBUS_SDK_SERVICE_URL_{name}"] = base_url.rstrip("/") + "/"
    os.environ["NO_PROXY"] = "127.0.0.1,localhost"
    os.environ.update(extra)
    try:
        yield
    finally:
        for k in [k for k in os.environ if k.startswith("GLOBUS_")] + list(extra) + ["NO_PROXY"]:
            os.environ.pop(k, None)
        os.environ.update(saved)


class Sink:
    """A real SMTP server on loopback (aiosmtpd) that keeps every message it receives."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.messages: list[tuple[list[str], str]] = []

    async def handle_DATA(self, server: t.Any, session: t.Any, envelope: t.Any) -> str:
        self.messages.append((list(envelope.rcpt_tos), envelope.content.decode("utf-8", "replace")))
        return "250 OK"

    def wait_for(self, to: str, timeout: float = 30, containing: str = "") -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for rcpts, body in self.messages:
                if to in rcpts and containing in body:
                    return body
            time.sleep(0.1)
        raise AssertionError(f"no message to {to}; got {self.messages}")

    def config(self) -> str:
        """The `[smtp]` section of a server configuration that sends its mail here."""
        return (f'[smtp]\nhost = "127.0.0.1"\nport = {self.port}\nsecurity = "none"\n'
                'from = "Ferry <ferry@example.org>"\n')


@contextlib.contextmanager
def mail_sink() -> t.Iterator[Sink]:
    """A `Sink` listening on a free loopback port while the block runs."""
    from aiosmtpd.controller import Controller

    sink = Sink(free_port())
    controller = Controller(sink, hostname="127.0.0.1", port=sink.port)
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()


def globus_executable() -> str:
    exe = VENV_BIN / "globus"
    if exe.exists():
        return str(exe)
    found = shutil.which("globus")
    if not found:
        raise RuntimeError("the `globus` CLI is not installed; run compat/install.sh")
    return found


class CommandResult(t.NamedTuple):
    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    def describe(self) -> str:
        return (
            f"$ {' '.join(self.args)}\nexit status: {self.returncode}\n"
            f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"
        )

    def json(self) -> t.Any:
        try:
            return json.loads(self.stdout)
        except ValueError as err:
            raise AssertionError(f"output is not JSON ({err}):\n{self.describe()}")


def run(
    args: t.Sequence[str],
    *,
    env: dict[str, str] | None = None,
    input: str | None = None,
    timeout: float = COMMAND_TIMEOUT,
    cwd: Path | None = None,
) -> CommandResult:
    argv = [str(a) for a in args]
    proc = subprocess.run(
        argv,
        env=env,
        input=input if input is not None else "",
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )
    return CommandResult(argv, proc.returncode, proc.stdout, proc.stderr)


def run_ok(args: t.Sequence[str], **kwargs: t.Any) -> CommandResult:
    result = run(args, **kwargs)
    assert result.returncode == 0, result.describe()
    return result


class FerryServer:
    """One `ferry serve` process with its own data directory."""

    def __init__(
        self,
        workdir: Path,
        *,
        env: dict[str, str] | None = None,
        config: str | None = None,
        tls: bool = False,
        role: str | None = None,
        port: int | None = None,
        ca_file: Path | None = None,
    ) -> None:
        self.binary = ferry_binary()
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.log_path = workdir / "server.log"
        self.extra_env = dict(env or {})
        self.config = config
        self.tls = tls
        # hub or endpoint (`ferry serve --role`); an endpoint's port is fixed by its setup (its public URL)
        self.role = role
        self.fixed_port = port
        # the CA of a certificate given in the configuration (otherwise the one `--tls` generates)
        self.given_ca = ca_file
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.base_url = ""
        self.admin: dict[str, str] = {}

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> FerryServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        last_error = ""
        for _attempt in range(3):
            self.port = self.fixed_port or free_port()
            scheme = "https" if self.tls else "http"
            self.base_url = f"{scheme}://127.0.0.1:{self.port}"
            argv = [
                str(self.binary),
                "serve",
                "--listen",
                f"127.0.0.1:{self.port}",
                "--data-dir",
                str(self.data_dir),
            ]
            if self.tls:
                argv.append("--tls")
            if self.role is not None:
                argv += ["--role", self.role]
            if self.config is not None:
                config_path = self.workdir / "ferry.toml"
                config_path.write_text(self.config)
                argv += ["--config", str(config_path)]
            env = ferry_env()
            env["FERRY_LOG"] = os.environ.get("FERRY_LOG", "info,tower_http=debug")
            env.update(self.extra_env)
            with open(self.log_path, "ab") as log:
                log.write(f"\n=== {' '.join(argv)}\n".encode())
                log.flush()
                self.proc = subprocess.Popen(
                    argv,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=env,
                    cwd=self.workdir,
                )
            if self._wait_ready():
                # An endpoint's administrators are the hub's people: it makes no administrator of its own.
                if self.role != "endpoint":
                    self.admin = self._read_admin_credentials()
                return self
            last_error = tail(self.log_path)
            self.stop()
            if "in use" not in last_error.lower():
                break
        raise RuntimeError(f"ferry serve did not become ready; server log:\n{last_error}")

    def _wait_ready(self) -> bool:
        assert self.proc is not None
        ready = "/api/info" if self.role == "endpoint" else "/.well-known/openid-configuration"
        url = f"{self.base_url}{ready}"
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                if self.tls and not self.ca_path.exists():
                    time.sleep(0.2)
                    continue
                verify: bool | str = str(self.ca_path) if self.tls else True
                if requests.get(url, timeout=5, verify=verify).status_code == 200:
                    return True
            except requests.RequestException:
                pass
            time.sleep(0.2)
        return False

    @property
    def ca_path(self) -> Path:
        """The CA to trust: the one given, or the one Ferry generated for its certificate (with --tls)."""
        return self.given_ca or self.data_dir / "tls" / "ca.pem"

    def _read_admin_credentials(self) -> dict[str, str]:
        path = self.data_dir / "admin-credentials.json"
        deadline = time.monotonic() + 10
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        if not path.exists():
            raise RuntimeError(
                f"ferry serve is ready but did not write {path}; server log:\n"
                + tail(self.log_path)
            )
        return json.loads(path.read_text())

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)

    def log_tail(self, limit: int = 8000) -> str:
        return tail(self.log_path, limit)

    # -- admin commands --------------------------------------------------------

    def admin_command(self, *args: str) -> t.Any:
        argv = [str(self.binary), *args, "--data-dir", str(self.data_dir), "--format", "json"]
        result = run(argv, cwd=self.workdir, env=ferry_env())
        assert result.returncode == 0, result.describe()
        return result.json()

    def create_identity(
        self,
        username: str,
        *,
        password: str | None = None,
        name: str | None = None,
        email: str | None = None,
    ) -> dict[str, t.Any]:
        args = ["identity", "create", username]
        if password is not None:
            args += ["--password", password]
        if name is not None:
            args += ["--name", name]
        if email is not None:
            args += ["--email", email]
        return t.cast(dict, self.admin_command(*args))

    def create_client(
        self,
        name: str,
        *,
        native: bool = False,
        redirect_uris: t.Sequence[str] = (),
    ) -> dict[str, t.Any]:
        args = ["client", "create", "--name", name]
        if native:
            args.append("--native")
        for uri in redirect_uris:
            args += ["--redirect-uri", uri]
        return t.cast(dict, self.admin_command(*args))

    # -- Globus CLI ------------------------------------------------------------

    def env_for(self, home: Path, **kwargs: t.Any) -> dict[str, str]:
        return globus_env(self.base_url, home, **kwargs)

    def globus(self, home: Path, *args: str, **kwargs: t.Any) -> CommandResult:
        """Run the Globus CLI as a user (tokens kept under `home`)."""
        env_kwargs = {k: kwargs.pop(k) for k in ("client_id", "client_secret") if k in kwargs}
        return run([globus_executable(), *args], env=self.env_for(home, **env_kwargs), **kwargs)


# every server started by the suite, so failing tests can show the server's log
RUNNING_SERVERS: list[FerryServer] = []

AUTH_SCOPES = (
    "openid profile email urn:globus:auth:scope:auth.globus.org:view_identity_set"
)
TRANSFER_SCOPE = "urn:globus:auth:scope:transfer.api.globus.org:all"


def start_server(workdir: Path, **kwargs: t.Any) -> FerryServer:
    server = FerryServer(workdir, **kwargs)
    RUNNING_SERVERS.append(server)
    try:
        server.start()
    except BaseException:
        stop_server(server)
        raise
    return server


def stop_server(server: FerryServer) -> None:
    server.stop()
    if server in RUNNING_SERVERS:
        RUNNING_SERVERS.remove(server)


def new_person(server: FerryServer, label: str) -> dict[str, str]:
    """Create a person identity with a known password; returns id/username/password/
    name/email."""
    short = f"{label}-{secrets.token_hex(4)}"
    password = "pw-" + secrets.token_urlsafe(12)
    name = f"Compat {label.title()} {short[-8:]}"
    email = f"{short}@example.org"
    created = server.create_identity(short, password=password, name=name, email=email)
    assert created.get("username") == f"{short}@ferry.local", created
    assert created.get("id"), created
    return {
        "id": created["id"],
        "username": created["username"],
        "password": password,
        "name": name,
        "email": email,
    }


def expect_auth_error(
    call: t.Callable[[], t.Any],
    what: str,
    *,
    error: str | None = None,
    statuses: t.Collection[int] = (400, 401),
) -> t.Any:
    """Run an SDK call that Ferry must refuse with an AuthAPIError (HTTP status in
    `statuses`, OAuth `error` code if given); describe what happened otherwise."""
    import globus_sdk

    try:
        response = call()
    except globus_sdk.AuthAPIError as err:
        detail = f"{what}: got HTTP {err.http_status} {err.text}"
        assert err.http_status in statuses, f"{detail}; expected a status in {statuses}"
        if error is not None:
            body = err.raw_json or {}
            assert body.get("error") == error, f"{detail}; expected {{'error': {error!r}}}"
        return err
    data = getattr(response, "data", response)
    raise AssertionError(
        f"{what}: Ferry accepted it (HTTP {getattr(response, 'http_status', '?')}, body "
        f"{json.dumps(data)[:1500]}); expected an error"
        + (f" {{'error': {error!r}}}" if error else "")
    )


# ---------------------------------------------------------------------------
# Browser-login automation
# ---------------------------------------------------------------------------


class Form(t.NamedTuple):
    action: str
    method: str
    # (name, value, type, checked) for every named control, in document order
    controls: list[tuple[str, str, str, bool]]

    def has_control(self, name: str, value: str | None = None, kind: str | None = None) -> bool:
        return any(
            n == name and (value is None or v == value) and (kind is None or k == kind)
            for n, v, k, _ in self.controls
        )

    def submission(
        self, overrides: dict[str, str], *, clicked: tuple[str, str] | None = None
    ) -> list[tuple[str, str]]:
        """Form data set as a browser builds it: every named input (checkboxes and
        radios only when checked, submit buttons only when clicked), with values in
        `overrides` substituted."""
        data: list[tuple[str, str]] = []
        seen: set[str] = set()
        for name, value, kind, checked in self.controls:
            if kind in ("submit", "button", "image", "reset"):
                continue
            if kind in ("checkbox", "radio") and not checked:
                continue
            if name in overrides:
                if name in seen:
                    continue
                value = overrides[name]
            seen.add(name)
            data.append((name, value))
        for name, value in overrides.items():
            if name not in seen:
                data.append((name, value))
        if clicked is not None:
            data.append(clicked)
        return data


class _PageParser(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []
        self._form: Form | None = None
        self._button: dict[str, str] | None = None
        self._textarea: dict[str, str] | None = None
        self._code_depth = 0
        self.auth_code_parts: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): (v or "") for k, v in attrs}
        if tag == "form":
            self._form = Form(a.get("action", ""), (a.get("method") or "get").lower(), [])
            self.forms.append(self._form)
        elif tag == "input" and self._form is not None and a.get("name"):
            kind = (a.get("type") or "text").lower()
            self._form.controls.append((a["name"], a.get("value", ""), kind, "checked" in a))
        elif tag == "button" and self._form is not None:
            self._button = a
        elif tag == "textarea" and self._form is not None and a.get("name"):
            self._textarea = {"name": a["name"], "text": ""}
        elif tag == "code" and a.get("id") == "auth-code":
            self._code_depth = 1
            self.auth_code_parts = []
        elif tag == "code" and self._code_depth:
            self._code_depth += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        elif tag == "button" and self._button is not None:
            b = self._button
            self._button = None
            if self._form is not None and b.get("name"):
                kind = (b.get("type") or "submit").lower()
                self._form.controls.append((b["name"], b.get("value", ""), kind, False))
        elif tag == "textarea" and self._textarea is not None:
            if self._form is not None:
                tx = self._textarea
                self._form.controls.append((tx["name"], tx["text"], "textarea", False))
            self._textarea = None
        elif tag == "code" and self._code_depth:
            self._code_depth -= 1

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self._textarea["text"] += data
        if self._code_depth and self.auth_code_parts is not None:
            self.auth_code_parts.append(data)


class Page(t.NamedTuple):
    url: str
    status: int
    text: str
    forms: list[Form]
    auth_code: str | None


def parse_page(response: requests.Response) -> Page:
    parser = _PageParser()
    parser.feed(response.text)
    parser.close()
    code = "".join(parser.auth_code_parts).strip() if parser.auth_code_parts is not None else None
    return Page(response.url, response.status_code, response.text, parser.forms, code)


class LoginResult(t.NamedTuple):
    code: str
    state: str | None
    # URL the consent step redirected to (the client's redirect_uri + query)
    redirect_url: str
    # the code displayed on the final page (the default auth-code page), if any
    displayed_code: str | None
    history: list[str]


class BrowserLoginError(AssertionError):
    pass


def browser_login(authorize_url: str, username: str, password: str) -> LoginResult:
    """Log in and consent through Ferry's HTML pages like a browser user would, and
    return the authorization code delivered to the redirect URI."""
    session = requests.Session()
    history: list[str] = []
    code: str | None = None
    state: str | None = None
    redirect_url = ""

    def describe(page: Page | None = None) -> str:
        out = "request history:\n  " + "\n  ".join(history)
        if page is not None:
            out += f"\nlast page ({page.status} {page.url}):\n{page.text[:3000]}"
        return out

    def fetch(method: str, url: str, data: list[tuple[str, str]] | None = None) -> Page:
        nonlocal code, state, redirect_url
        for _hop in range(15):
            resp = session.request(method, url, data=data, allow_redirects=False, timeout=30)
            history.append(f"{method} {url} -> {resp.status_code}")
            if resp.is_redirect or resp.status_code in (301, 302, 303, 307, 308):
                location = resp.headers.get("Location")
                if not location:
                    raise BrowserLoginError(f"redirect without Location\n{describe()}")
                url = urllib.parse.urljoin(resp.url, location)
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
                if "error" in query:
                    raise BrowserLoginError(
                        f"authorization redirected with an error: {url}\n{describe()}"
                    )
                if "code" in query:
                    code = query["code"][0]
                    state = query.get("state", [None])[0]
                    redirect_url = url
                    if urllib.parse.urlsplit(url).netloc != origin:
                        # a redirect URI outside Ferry: the code is all we need
                        return Page(url, 0, "", [], None)
                if resp.status_code in (301, 302, 303):
                    method, data = "GET", None
                continue
            return parse_page(resp)
        raise BrowserLoginError(f"too many redirects\n{describe()}")

    origin = urllib.parse.urlsplit(authorize_url).netloc
    page = fetch("GET", authorize_url)
    logged_in = False
    for _step in range(6):
        if code is not None:
            break
        if page.status >= 400:
            raise BrowserLoginError(f"server answered {page.status}\n{describe(page)}")
        login_form = next(
            (f for f in page.forms if any(k == "password" for _, _, k, _ in f.controls)), None
        )
        consent_form = next(
            (f for f in page.forms if f.has_control("decision", "allow")), None
        )
        if login_form is not None:
            if logged_in:
                raise BrowserLoginError(
                    f"the login form came back after submitting credentials\n{describe(page)}"
                )
            logged_in = True
            form = login_form
            body = form.submission({"username": username, "password": password})
        elif consent_form is not None:
            form = consent_form
            body = form.submission({}, clicked=("decision", "allow"))
        else:
            raise BrowserLoginError(
                f"page has neither a login form nor a consent form\n{describe(page)}"
            )
        target = urllib.parse.urljoin(page.url, form.action) if form.action else page.url
        if form.method == "post":
            page = fetch("POST", target, body)
        else:
            sep = "&" if urllib.parse.urlsplit(target).query else "?"
            page = fetch("GET", target + sep + urllib.parse.urlencode(body))
    if code is None:
        raise BrowserLoginError(f"no authorization code was issued\n{describe(page)}")
    return LoginResult(code, state, redirect_url, page.auth_code, history)


def ferry_login(
    argv: t.Sequence[str], env: dict[str, str], username: str, password: str, cwd: Path | None = None
) -> CommandResult:
    """Runs a `ferry login …` command line and does its browser part as `username`: waits for the URL it prints,
    logs in and consents through the pages, and pastes the code shown into the command."""
    argv = [str(a) for a in argv]
    proc = subprocess.Popen(
        argv, cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdin and proc.stdout and proc.stderr
    err = bytearray()
    stderr = proc.stderr
    reader = threading.Thread(
        target=lambda: [err.extend(c) for c in iter(lambda: os.read(stderr.fileno(), 4096), b"")],
        daemon=True,
    )
    reader.start()
    url = None
    deadline = time.monotonic() + COMMAND_TIMEOUT
    while time.monotonic() < deadline and proc.poll() is None:
        text = err.decode(errors="replace")
        m = re.search(r"(https?://\S+/v2/oauth2/authorize\S+)", text)
        if m and "Code:" in text:
            url = m.group(1)
            break
        time.sleep(0.05)
    assert url, err.decode(errors="replace")
    done = browser_login(url, username, password)
    assert done.displayed_code
    out, _ = proc.communicate(done.displayed_code.encode() + b"\n", timeout=COMMAND_TIMEOUT)
    reader.join(timeout=5)
    return CommandResult(argv, proc.returncode or 0, out.decode(), err.decode(errors="replace"))


def globus_login(
    server: FerryServer,
    home: Path,
    user: dict[str, str],
    *extra: str,
    browse: t.Callable[[str], LoginResult] | None = None,
) -> CommandResult:
    """`globus login --no-local-server`, answering its prompt with the code shown on
    Ferry's auth-code page after logging in and consenting as `user` (or as `browse(url)` does: signing
    in through an upstream provider)."""
    argv = [globus_executable(), "login", "--no-local-server", *extra]
    proc = subprocess.Popen(
        argv,
        env=server.env_for(home),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None and proc.stdin is not None
    out = bytearray()
    err = bytearray()

    def pump(stream: t.IO[bytes], sink: bytearray) -> None:
        while chunk := os.read(stream.fileno(), 4096):
            sink.extend(chunk)

    readers = [
        threading.Thread(target=pump, args=(proc.stdout, out), daemon=True),
        threading.Thread(target=pump, args=(proc.stderr, err), daemon=True),
    ]
    for reader in readers:
        reader.start()

    def result() -> CommandResult:
        return CommandResult(
            argv,
            proc.returncode if proc.returncode is not None else -1,
            out.decode(errors="replace"),
            err.decode(errors="replace"),
        )

    try:
        deadline = time.monotonic() + COMMAND_TIMEOUT
        url = None
        while time.monotonic() < deadline and proc.poll() is None:
            text = out.decode(errors="replace")
            match = re.search(r"^(https?://\S+)$", text, re.MULTILINE)
            if match and "Enter the resulting Authorization Code here" in text:
                url = match.group(1)
                break
            time.sleep(0.05)
        assert url is not None, "globus login printed no authorize URL/prompt\n" + (
            result().describe()
        )
        assert url.startswith(f"{server.base_url}/v2/oauth2/authorize?"), url

        if browse is not None:
            login = browse(url)
        else:
            login = browser_login(url, user["username"], user["password"])
        assert login.displayed_code == login.code, login
        proc.stdin.write(login.displayed_code.encode() + b"\n")
        proc.stdin.close()
        proc.wait(timeout=COMMAND_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for reader in readers:
            reader.join(timeout=5)
    return result()


def make_site_certificate(folder: Path) -> tuple[Path, Path, Path]:
    """A private CA and a certificate for 127.0.0.1 signed by it (ca.pem, cert.pem, key.pem in `folder`): what
    a site's administrator would get from their own CA, so that a hub, an endpoint and the Globus CLI can all be
    told the one CA to trust before any of them starts."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    folder.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "compat sites CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                    x509.DNSName("localhost")]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = (folder / "ca.pem", folder / "cert.pem", folder / "key.pem")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    paths[2].chmod(0o600)
    return paths
