"""Site accounts: a Unix account made here (`useradd`, a password set) signs in through the host's PAM stack as
`<account>@<domain>` (`ferry oidc create`), and `globus ls` on a mapped collection rooted at `$HOME` then acts
as that account; a wrong password, a locked and an expired account are refused. Needs root (useradd, and
pam_unix reads /etc/shadow)."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import typing as t
from pathlib import Path

import pytest
import requests

from ferry_harness import (
    FerryServer,
    globus_login,
    parse_page,
    run,
    ferry_env,
    start_server,
    stop_server,
)

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("useradd") is None,
    reason="site accounts need root (useradd; pam_unix reads /etc/shadow)",
)

DOMAIN = "lab.example"


class Account(t.NamedTuple):
    name: str
    password: str
    home: Path


@pytest.fixture(scope="module")
def account() -> t.Iterator[Account]:
    name = "ferrysite" + secrets.token_hex(3)
    password = "Site-" + secrets.token_urlsafe(12)
    subprocess.run(["useradd", "-m", "-s", "/bin/sh", name], check=True)
    try:
        subprocess.run(["chpasswd"], input=f"{name}:{password}\n", text=True, check=True)
        home = Path(f"/home/{name}")
        (home / "notes.txt").write_text("mine\n")
        shutil.chown(home / "notes.txt", name, name)
        yield Account(name, password, home)
    finally:
        subprocess.run(["userdel", "-r", name], check=False, capture_output=True)


@pytest.fixture(scope="module")
def ferry(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[FerryServer]:
    server = start_server(tmp_path_factory.mktemp("site-accounts"))
    try:
        yield server
    finally:
        stop_server(server)


def cli(server: FerryServer, *args: str) -> t.Any:
    return server.admin_command(*args)


def sign_in(server: FerryServer, username: str, password: str) -> requests.Response:
    """The login page's site-account form, as a browser fills it."""
    s = requests.Session()
    s.trust_env = False
    page = s.get(f"{server.base_url}/v2/web/login?next=/v2/web/identities", timeout=30)
    form = next(f for f in parse_page(page).forms if f.has_control("method", "site"))
    return s.post(f"{server.base_url}{form.action}",
                  data=form.submission({"username": username, "password": password}), timeout=60)


def test_a_unix_account_signs_in_through_pam_and_globus_ls_acts_as_it(
    ferry: FerryServer, account: Account, tmp_path: Path
) -> None:
    made = cli(ferry, "oidc", "create", "--domain", DOMAIN, "--display-name", "Example Lab")
    assert made["domain"] == DOMAIN and made["pam_service"] == "ferry", made
    assert Path("/etc/pam.d/ferry").exists()
    shown = cli(ferry, "oidc", "show")
    assert shown == made
    again = run([str(ferry.binary), "oidc", "create", "--domain", DOMAIN, "--data-dir", str(ferry.data_dir)],
                env=ferry_env())
    assert again.returncode != 0 and "already set up" in again.stderr, again.describe()

    # A gateway over the host's home folders that admits the site domain; its accounts are the host's.
    gateway = cli(ferry, "storage-gateway", "create", "posix", "Lab homes", "--root", "/", "--domain", DOMAIN,
                  "--restrict-paths", '{"DATA_TYPE": "path_restrictions#1.0.0", "read_write": ["$HOME"]}')
    collection = cli(ferry, "collection", "create", gateway["id"], "$HOME", "Lab home folders")

    page = sign_in(ferry, account.name, account.password)
    assert page.status_code == 200 and f"{account.name}@{DOMAIN}" in page.text, page.text
    assert "Example Lab" in page.text

    home = tmp_path / "globus-home"
    home.mkdir()
    done = globus_login(ferry, home, {"username": account.name, "password": account.password})
    assert done.returncode == 0, done.describe()
    who = ferry.globus(home, "whoami")
    assert who.stdout.strip() == f"{account.name}@{DOMAIN}", who.describe()
    listing = ferry.globus(home, "ls", f"{collection['id']}:/")
    assert listing.returncode == 0 and "notes.txt" in listing.stdout, listing.describe()
    # One identity, however often the account signs in.
    sign_in(ferry, account.name, account.password)
    names = [i["username"] for i in cli(ferry, "identity", "list")]
    assert names.count(f"{account.name}@{DOMAIN}") == 1


def test_wrong_password_locked_and_expired_accounts_are_refused(ferry: FerryServer, account: Account) -> None:
    shown = run([str(ferry.binary), "oidc", "show", "--data-dir", str(ferry.data_dir)], env=ferry_env())
    if shown.returncode != 0:  # run alone
        cli(ferry, "oidc", "create", "--domain", DOMAIN, "--display-name", "Example Lab")
    before = [i["username"] for i in cli(ferry, "identity", "list")]
    wrong = sign_in(ferry, account.name, account.password + "x")
    assert wrong.status_code == 401 and "incorrect" in wrong.text, wrong.text
    unknown = sign_in(ferry, "nosuchuser" + secrets.token_hex(2), "whatever-it-is")
    assert unknown.status_code == 401 and "incorrect" in unknown.text, unknown.text

    subprocess.run(["usermod", "-L", account.name], check=True)
    try:
        locked = sign_in(ferry, account.name, account.password)
        # pam_unix refuses a locked password like a wrong one: nothing tells an outsider it exists.
        assert locked.status_code == 401 and "incorrect" in locked.text, locked.text
    finally:
        subprocess.run(["usermod", "-U", account.name], check=True)

    subprocess.run(["chage", "-E", "0", account.name], check=True)
    try:
        expired = sign_in(ferry, account.name, account.password)
        assert expired.status_code == 403 and "cannot sign in now" in expired.text, expired.text
    finally:
        subprocess.run(["chage", "-E", "-1", account.name], check=True)
    # A system account (uid below 1000, as root's) never signs in, even with its right password.
    system = "ferrysys" + secrets.token_hex(2)
    subprocess.run(["useradd", "-r", "-M", "-s", "/usr/sbin/nologin", system], check=True)
    try:
        subprocess.run(["chpasswd"], input=f"{system}:{account.password}\n", text=True, check=True)
        refused = sign_in(ferry, system, account.password)
        assert refused.status_code == 403 and "system accounts cannot sign in" in refused.text, refused.text
    finally:
        subprocess.run(["userdel", system], check=False, capture_output=True)
    after = [i["username"] for i in cli(ferry, "identity", "list")]
    assert sorted(after) == sorted(before)

    # Switched off: the form is gone and nobody signs in with a site account.
    run([str(ferry.binary), "oidc", "delete", "--data-dir", str(ferry.data_dir)], env=ferry_env())
    page = requests.get(f"{ferry.base_url}/v2/web/login?next=/", timeout=30)
    assert 'value="site"' not in page.text
