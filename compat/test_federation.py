"""Signing in with the identity one already has: Ferry as the relying party of real OpenID providers
(oidc-provider 9.13.3 on loopback, compat/oidc), driven as a browser would, then the real globus-cli.

Two providers: "uni" (Example University, identity domain uni.example, only verified @uni.example
addresses) and "orcid" (domain orcid.example). Every refusal is checked to show a page that says why and
to create no identity."""

from __future__ import annotations

import email
import re
import typing as t
import urllib.parse
from pathlib import Path

import pytest
import requests

from ferry_harness import (
    TRANSFER_SCOPE,
    FerryServer,
    LoginResult,
    free_port,
    globus_login,
    mail_sink,
    parse_page,
    sdk_pointed_at,
    start_server,
    stop_server,
)
from oidc_provider import OidcProvider, oidc_available, provider_login

pytestmark = pytest.mark.skipif(oidc_available() is not None, reason=oidc_available() or "")

UNI_ACCOUNTS = {
    "alice": {"password": "alice-pw", "claims": {
        "sub": "uni-alice-1", "preferred_username": "alice", "email": "alice@uni.example",
        "email_verified": True, "name": "Alice Andrade"}},
    "dana": {"password": "dana-pw", "claims": {
        "sub": "uni-dana-1", "preferred_username": "dana", "email": "dana@uni.example",
        "email_verified": True, "name": "Dana Dias"}},
    "carol": {"password": "carol-pw", "claims": {
        "sub": "uni-carol-1", "preferred_username": "carol", "email": "carol@uni.example",
        "email_verified": True, "name": "Carol Costa"}},
    "eve": {"password": "eve-pw", "claims": {
        "sub": "uni-eve-1", "preferred_username": "eve", "email": "eve@gmail.example",
        "email_verified": True, "name": "Eve"}},
    "unverified": {"password": "u-pw", "claims": {
        "sub": "uni-unverified-1", "preferred_username": "unverified", "email": "unverified@uni.example",
        "email_verified": False, "name": "Unverified"}},
}
ORCID_ACCOUNTS = {
    "bob": {"password": "bob-pw", "claims": {
        "sub": "0000-0002-1825-0097", "preferred_username": "0000-0002-1825-0097",
        "name": "Alice A. (ORCID)"}},
}


class Sites(t.NamedTuple):
    ferry: FerryServer
    uni: OidcProvider
    orcid: OidcProvider
    sink: t.Any


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[Sites]:
    work = tmp_path_factory.mktemp("federation")
    port = free_port()
    callback = f"http://127.0.0.1:{port}/v2/web/login/callback"
    client = {"client_id": "ferry-hub", "client_secret": "hub-secret-1", "redirect_uris": [callback]}
    uni = OidcProvider(work / "uni", clients=[client], accounts=UNI_ACCOUNTS).start()
    orcid = OidcProvider(work / "orcid", clients=[client], accounts=ORCID_ACCOUNTS).start()
    config = f"""
[[identity_providers]]
id = "uni"
display_name = "Example University"
issuer = "{uni.issuer}"
client_id = "ferry-hub"
client_secret = "hub-secret-1"
domain = "uni.example"
allowed_email_domains = ["uni.example"]

[[identity_providers]]
id = "closed"
display_name = "Closed Institute"
issuer = "http://127.0.0.1:{free_port()}"
client_id = "ferry-hub"
client_secret = "hub-secret-1"
domain = "closed.example"

[[identity_providers]]
id = "orcid"
display_name = "ORCID"
issuer = "{orcid.issuer}"
client_id = "ferry-hub"
client_secret = "hub-secret-1"
domain = "orcid.example"
"""
    try:
        with mail_sink() as sink:
            ferry = start_server(work / "ferry", config=sink.config() + config, port=port)
            try:
                # The in-process SDK points at this server, as a user's environment would.
                with sdk_pointed_at(ferry.base_url):
                    yield Sites(ferry, uni, orcid, sink)
            finally:
                stop_server(ferry)
    finally:
        uni.stop()
        orcid.stop()


class Browser:
    """One person's browser: a cookie jar shared by Ferry's pages and the providers'."""

    def __init__(self, ferry: FerryServer) -> None:
        self.ferry = ferry
        self.origin = urllib.parse.urlsplit(ferry.base_url).netloc
        self.s = requests.Session()
        self.s.trust_env = False
        self.history: list[str] = []
        self.code: tuple[str, str | None, str] | None = None

    def go(self, method: str, url: str, data: t.Any = None) -> requests.Response:
        """Follows redirects while they stay on Ferry; returns the page, or the redirect that leaves."""
        url = urllib.parse.urljoin(self.ferry.base_url, url)
        for _hop in range(15):
            resp = self.s.request(method, url, data=data, allow_redirects=False, timeout=30)
            self.history.append(f"{method} {url} -> {resp.status_code}")
            if not resp.is_redirect:
                return resp
            url = urllib.parse.urljoin(resp.url, resp.headers["Location"])
            parts = urllib.parse.urlsplit(url)
            if parts.netloc != self.origin:
                return resp
            query = urllib.parse.parse_qs(parts.query)
            if "code" in query:
                self.code = (query["code"][0], query.get("state", [None])[0], url)
            method, data = "GET", None
        raise AssertionError("too many redirects:\n" + "\n".join(self.history))

    def choose(self, page: requests.Response, provider: str) -> requests.Response:
        """Clicks the provider's button on a page that offers them (login, or link another identity)."""
        form = next(f for f in parse_page(page).forms if f.has_control("provider", provider))
        body = form.submission({}, clicked=("provider", provider))
        if form.method == "post":
            return self.go("POST", form.action, body)
        return self.go("GET", form.action + "?" + urllib.parse.urlencode(body))

    def through_provider(self, leaving: requests.Response, login: str, password: str) -> requests.Response:
        assert leaving.is_redirect, leaving.text
        back = provider_login(self.s, leaving.headers["Location"], login, password)
        return self.go("GET", back.headers["Location"])

    def sign_in(self, start: str, provider: str, login: str, password: str) -> requests.Response:
        """From a page that asks to log in (or redirects to the login page), through the provider, back."""
        return self.through_provider(self.choose(self.go("GET", start), provider), login, password)

    def authorize(self, url: str, provider: str, login: str, password: str) -> LoginResult:
        """An application's authorization request: sign in through the provider, then consent."""
        page = self.sign_in(url, provider, login, password)
        consent = next(f for f in parse_page(page).forms if f.has_control("decision", "allow"))
        done = self.go("POST", consent.action, consent.submission({}, clicked=("decision", "allow")))
        assert self.code is not None, "\n".join(self.history)
        code, state, redirect = self.code
        return LoginResult(code, state, redirect, parse_page(done).auth_code, self.history)


def identities(ferry: FerryServer) -> list[dict[str, t.Any]]:
    return t.cast(list, ferry.admin_command("identity", "list"))


def usernames(ferry: FerryServer) -> list[str]:
    return sorted(i["username"] for i in identities(ferry))


def test_first_sign_in_makes_the_identity_and_the_next_finds_it(sites: Sites) -> None:
    before = usernames(sites.ferry)
    page = Browser(sites.ferry).sign_in("/v2/web/identities", "uni", "alice", "alice-pw")
    assert page.status_code == 200 and "alice@uni.example" in page.text, page.text
    assert "Example University" in page.text
    made = [u for u in usernames(sites.ferry) if u not in before]
    assert made == ["alice@uni.example"]
    # Again, in a new browser: found, not made twice.
    page = Browser(sites.ferry).sign_in("/v2/web/identities", "uni", "alice", "alice-pw")
    assert page.status_code == 200 and "alice@uni.example" in page.text
    assert usernames(sites.ferry).count("alice@uni.example") == 1
    # The Globus identity fields: the provider's own id and name, the organization.
    import globus_sdk

    admin = sites.ferry.admin
    auth = globus_sdk.ConfidentialAppAuthClient(admin["client_id"], admin["client_secret"])
    tokens = auth.oauth2_client_credentials_tokens(requested_scopes="openid profile email")
    ac = globus_sdk.AuthClient(authorizer=globus_sdk.AccessTokenAuthorizer(
        tokens.by_resource_server["auth.globus.org"]["access_token"]))
    doc = ac.get_identities(usernames="alice@uni.example")["identities"][0]
    assert doc["organization"] == "Example University" and doc["status"] == "used", doc
    assert doc["email"] == "alice@uni.example" and doc["name"] == "Alice Andrade", doc
    local = ac.get_identities(usernames=admin["username"])["identities"][0]
    assert doc["identity_provider"] != local["identity_provider"], (doc, local)
    # No password works for it: it signs in only through its provider.
    login_page = Browser(sites.ferry).go("GET", "/v2/web/login?next=/v2/web/identities")
    assert "Example University" in login_page.text and "ORCID" in login_page.text


def test_globus_login_through_the_provider_then_linked_identities(sites: Sites, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    browser = Browser(sites.ferry)
    done = globus_login(sites.ferry, home, {}, browse=lambda url: browser.authorize(url, "uni", "carol", "carol-pw"))
    assert done.returncode == 0, done.describe()
    who = sites.ferry.globus(home, "whoami")
    assert who.returncode == 0 and who.stdout.strip() == "carol@uni.example", who.describe()

    # Link Carol's ORCID identity: from her identities page, signed in (recently) as carol@uni.example.
    page = browser.go("GET", "/v2/web/identities")
    assert "carol@uni.example" in page.text and "Link another identity" in page.text, page.text
    page = browser.through_provider(browser.choose(page, "orcid"), "bob", "bob-pw")
    assert page.status_code == 200, page.text
    assert "carol@uni.example" in page.text and "0000-0002-1825-0097@orcid.example" in page.text, page.text

    linked = sites.ferry.globus(home, "whoami", "--linked-identities")
    assert linked.returncode == 0, linked.describe()
    assert "carol@uni.example" in linked.stdout and "0000-0002-1825-0097@orcid.example" in linked.stdout, linked.stdout
    shown = sites.ferry.globus(home, "whoami", "--linked-identities", "-F", "json")
    data = shown.json()
    ids = {i["username"]: i for i in (data if isinstance(data, list) else data["identity_set"])}
    assert ids["0000-0002-1825-0097@orcid.example"]["identity_provider_display_name"] == "ORCID", ids
    assert ids["carol@uni.example"]["organization"] == "Example University", ids

    # Signing in later through ORCID finds the same person's set.
    other = Browser(sites.ferry)
    page = other.sign_in("/v2/web/identities", "orcid", "bob", "bob-pw")
    assert "carol@uni.example" in page.text and "0000-0002-1825-0097@orcid.example" in page.text

    # Linking an identity already linked elsewhere is refused; so is linking after the sign-in is old.
    assert usernames(sites.ferry).count("0000-0002-1825-0097@orcid.example") == 1


@pytest.mark.parametrize(
    "case, tamper, expected",
    [
        ("another issuer", {"iss": "http://127.0.0.1:9/evil"}, "issued by"),
        ("another audience", {"aud": "someone-else"}, "another application"),
        ("a wrong nonce", {"nonce": "not-the-nonce"}, "nonce"),
        ("an expired token", {"exp_offset": -3600}, "expired"),
        ("a forged signature", {"sign_with": "foreign"}, "signature"),
    ],
)
def test_a_bad_id_token_is_refused_and_makes_nothing(
    sites: Sites, case: str, tamper: dict[str, t.Any], expected: str
) -> None:
    before = usernames(sites.ferry)
    browser = Browser(sites.ferry)
    leaving = browser.choose(browser.go("GET", "/v2/web/identities"), "uni")
    sites.uni.tamper_next_id_token(**tamper)
    page = browser.through_provider(leaving, "dana", "dana-pw")
    assert page.status_code == 403, (case, page.status_code, page.text)
    assert expected in page.text and "ID token was refused" in page.text, (case, page.text)
    assert "ferry_session" not in browser.s.cookies
    assert usernames(sites.ferry) == before, case


def test_a_wrong_or_replayed_state_and_another_browser_are_refused(sites: Sites) -> None:
    before = usernames(sites.ferry)
    browser = Browser(sites.ferry)
    leaving = browser.choose(browser.go("GET", "/v2/web/identities"), "uni")
    back = provider_login(browser.s, leaving.headers["Location"], "dana", "dana-pw")
    callback = back.headers["Location"]
    # A forged state.
    forged = re.sub(r"state=[^&]+", "state=forged", callback)
    page = browser.go("GET", forged)
    assert page.status_code == 403 and "expired or was already used" in page.text, page.text
    # The real answer in another browser (a login CSRF): refused, and the sign-in is spent.
    thief = Browser(sites.ferry)
    page = thief.go("GET", callback)
    assert page.status_code == 403 and "another browser" in page.text, page.text
    page = browser.go("GET", callback)
    assert page.status_code == 403 and "expired or was already used" in page.text, page.text
    # The provider's own refusal comes through as a page.
    leaving = browser.choose(browser.go("GET", "/v2/web/identities"), "uni")
    state = urllib.parse.parse_qs(urllib.parse.urlsplit(leaving.headers["Location"]).query)["state"][0]
    page = browser.go("GET", f"/v2/web/login/callback?state={state}&error=access_denied&error_description=no+thanks")
    assert page.status_code == 403 and "access_denied" in page.text and "no thanks" in page.text, page.text
    assert usernames(sites.ferry) == before


@pytest.mark.parametrize("who, expected", [("eve", "eve@gmail.example is not"), ("unverified", "verified")])
def test_an_email_domain_the_configuration_does_not_allow_is_refused(sites: Sites, who: str, expected: str) -> None:
    before = usernames(sites.ferry)
    page = Browser(sites.ferry).sign_in("/v2/web/identities", "uni", who, UNI_ACCOUNTS[who]["password"])
    assert page.status_code == 403 and "only people with a verified e-mail address at uni.example" in page.text, page.text
    assert expected in page.text, page.text
    assert usernames(sites.ferry) == before


def test_a_key_rotation_at_the_provider_is_followed(sites: Sites) -> None:
    Browser(sites.ferry).sign_in("/v2/web/identities", "uni", "dana", "dana-pw")
    kid = sites.uni.rotate_keys()
    page = Browser(sites.ferry).sign_in("/v2/web/identities", "uni", "dana", "dana-pw")
    assert page.status_code == 200 and "dana@uni.example" in page.text, (kid, page.text)
    assert usernames(sites.ferry).count("dana@uni.example") == 1


def test_a_provider_that_is_down_gets_a_clear_page(sites: Sites) -> None:
    before = usernames(sites.ferry)
    # Down before anything was fetched from it: the sign-in cannot start.
    browser = Browser(sites.ferry)
    page = browser.choose(browser.go("GET", "/v2/web/login?next=/v2/web/identities"), "closed")
    assert page.status_code == 502, page.text
    assert "Closed Institute" in page.text and "cannot be reached" in page.text, page.text
    # Down while the person was at its login page: the answer cannot be redeemed, and says so.
    leaving = browser.choose(browser.go("GET", "/v2/web/login?next=/v2/web/identities"), "orcid")
    back = provider_login(browser.s, leaving.headers["Location"], "bob", "bob-pw")
    sites.orcid.stop()
    try:
        page = browser.go("GET", back.headers["Location"])
        assert page.status_code == 502, page.text
        assert "ORCID" in page.text and "cannot be reached" in page.text and "Try again later" in page.text, page.text
    finally:
        sites.orcid.start()
    assert "ferry_session" not in browser.s.cookies
    assert usernames(sites.ferry) == before


def test_an_invitee_with_no_account_signs_in_accepts_and_reads_with_globus_cli(sites: Sites, tmp_path: Path) -> None:
    import globus_sdk

    ferry = sites.ferry
    admin = ferry.admin
    (ferry.data_dir / "storage" / "shared-with-frank").mkdir(parents=True)
    (ferry.data_dir / "storage" / "shared-with-frank" / "results.csv").write_text("a,b\n1,2\n")
    auth = globus_sdk.ConfidentialAppAuthClient(admin["client_id"], admin["client_secret"])
    tok = auth.oauth2_client_credentials_tokens(requested_scopes=[TRANSFER_SCOPE])
    tc = globus_sdk.TransferClient(authorizer=globus_sdk.AccessTokenAuthorizer(
        tok.by_resource_server["transfer.api.globus.org"]["access_token"]))
    mapped = list(tc.endpoint_search(filter_entity_type="GCSv5_mapped_collection"))[0]
    guest = tc.create_shared_endpoint({"DATA_TYPE": "shared_endpoint", "host_endpoint": mapped["id"],
                                       "host_path": "/shared-with-frank/", "display_name": "For Frank"})["id"]
    rule = tc.add_endpoint_acl_rule(guest, {"DATA_TYPE": "access", "principal_type": "invitation",
                                            "principal": "frank@uni.example", "path": "/",
                                            "permissions": "r"})
    mail = email.message_from_string(sites.sink.wait_for("frank@uni.example")).get_payload(decode=True).decode()
    code = re.search(r"/invitation\?code=([0-9a-f]{64})", mail)
    assert code, mail
    link = f"/invitation?code={code.group(1)}"

    # Frank has no account anywhere here: the university's provider knows him, Ferry does not yet.
    sites.uni.add_account("frank", "frank-pw", {"sub": "uni-frank-1", "preferred_username": "frank",
                                                "email": "frank@uni.example", "email_verified": True,
                                                "name": "Frank Fonseca"})
    assert "frank@uni.example" not in usernames(ferry)
    browser = Browser(ferry)
    page = browser.go("GET", link)
    # The invitation may explain itself first; then it leads to the login page.
    if not any(f.has_control("provider") for f in parse_page(page).forms):
        target = re.search(r'href="(/v2/web/login\?next=[^"]+)"', page.text)
        assert target, page.text
        page = browser.go("GET", target.group(1).replace("&amp;", "&"))
    page = browser.through_provider(browser.choose(page, "uni"), "frank", "frank-pw")
    assert page.status_code == 200 and "Accept" in page.text, page.text
    accept = next(f for f in parse_page(page).forms if f.has_control("code"))
    done = browser.go("POST", accept.action, accept.submission({}))
    assert done.status_code == 200 and "Invitation accepted" in done.text, done.text
    frank = next(i for i in identities(ferry) if i["username"] == "frank@uni.example")
    bound = tc.get_endpoint_acl_rule(guest, rule["access_id"])
    assert (bound["principal_type"], bound["principal"]) == ("identity", frank["id"]), bound

    # Frank reads the shared folder with the real globus-cli, signed in through his university.
    home = tmp_path / "frank"
    home.mkdir()
    cli_browser = Browser(ferry)
    login = globus_login(ferry, home, {}, browse=lambda url: cli_browser.authorize(url, "uni", "frank", "frank-pw"))
    assert login.returncode == 0, login.describe()
    listing = ferry.globus(home, "ls", f"{guest}:/")
    assert listing.returncode == 0 and "results.csv" in listing.stdout, listing.describe()

    # The code is spent.
    again = Browser(ferry).go("GET", link)
    assert again.status_code in (404, 410) or "already been redeemed" in again.text or "used" in again.text, again.text


def test_local_accounts_can_be_switched_off(tmp_path: Path) -> None:
    # Without any provider that would leave nobody able to sign in: refused at start.
    bad = FerryServer(tmp_path / "bad", config="[auth]\nlocal_accounts = false\n")
    with pytest.raises(RuntimeError, match="nobody could sign in"):
        bad.start()
    uni = OidcProvider(tmp_path / "uni", clients=[], accounts={}).start()
    try:
        ferry = start_server(tmp_path / "off", config=f"""
[auth]
local_accounts = false

[[identity_providers]]
id = "uni"
display_name = "Example University"
issuer = "{uni.issuer}"
client_id = "x"
client_secret = "y"
domain = "uni.example"
""")
        try:
            page = Browser(ferry).go("GET", "/v2/web/login?next=/")
            assert "Example University" in page.text and 'name="password"' not in page.text, page.text
        finally:
            stop_server(ferry)
    finally:
        uni.stop()


def test_the_configuration_names_what_is_wrong(tmp_path: Path) -> None:
    for config, expected in [
        ('[[identity_providers]]\nid = "u"\ndisplay_name = "U"\nissuer = "http://idp.example"\n'
         'client_id = "x"\nclient_secret = "y"\ndomain = "u.example"\n', "must be an https URL"),
        ('[[identity_providers]]\nid = "u"\ndisplay_name = "U"\nissuer = "https://idp.example"\n'
         'client_id = "x"\nclient_secret = "y"\ndomain = "ferry.local"\n', "this server's own"),
        ('[[identity_providers]]\nid = "u"\ndisplay_name = "U"\nissuer = "https://idp.example"\n'
         'client_id = "x"\nclient_secret = "y"\ndomain = "u.example"\nusername_clam = "sub"\n', "username_clam"),
    ]:
        server = FerryServer(tmp_path / f"c{abs(hash(config))}", config=config)
        with pytest.raises(RuntimeError, match=re.escape(expected)):
            server.start()


def test_unlinking_needs_the_session_and_its_form(sites: Sites) -> None:
    browser = Browser(sites.ferry)
    browser.sign_in("/v2/web/identities", "uni", "alice", "alice-pw")
    # Alice links a fresh ORCID identity of her own.
    sites.orcid.add_account("alice-orcid", "ao-pw", {"sub": "0000-0001-0000-0001",
                                                     "preferred_username": "0000-0001-0000-0001"})
    page = browser.go("GET", "/v2/web/identities")
    page = browser.through_provider(browser.choose(page, "orcid"), "alice-orcid", "ao-pw")
    assert "0000-0001-0000-0001@orcid.example" in page.text, page.text
    other = next(i for i in identities(sites.ferry) if i["username"] == "0000-0001-0000-0001@orcid.example")
    # Another browser, without Alice's session: sent to log in, nothing changes.
    stranger = Browser(sites.ferry)
    answer = stranger.go("POST", "/v2/web/identities/unlink", {"identity": other["id"], "csrf": "x"})
    assert "Log in to Ferry" in answer.text, answer.text
    # Alice's session without the form's token (a cross-site post): refused.
    answer = browser.go("POST", "/v2/web/identities/unlink", {"identity": other["id"], "csrf": "forged"})
    assert answer.status_code == 400 and "expired" in answer.text, answer.text
    assert "0000-0001-0000-0001@orcid.example" in browser.go("GET", "/v2/web/identities").text
    # Bob's ORCID identity is Carol's: linking it to Alice is refused. (Alice's browser first leaves her
    # ORCID session, as a person switching accounts at the provider would.)
    for c in [c for c in browser.s.cookies if not c.name.startswith("ferry_")]:
        browser.s.cookies.clear(c.domain, c.path, c.name)
    page = browser.through_provider(browser.choose(browser.go("GET", "/v2/web/identities"), "orcid"),
                                    "bob", "bob-pw")
    assert page.status_code == 409 and "already linked with another account" in page.text, page.text
    # With the form: unlinked.
    page = browser.go("GET", "/v2/web/identities")
    form = next(f for f in parse_page(page).forms if f.has_control("identity", other["id"]))
    page = browser.go("POST", form.action, form.submission({}))
    assert page.status_code == 200 and "0000-0001-0000-0001@orcid.example" not in page.text, page.text
