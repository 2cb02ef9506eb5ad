"""Tests of the OpenID Connect provider harness (compat/oidc_provider.py) itself, by a minimal relying
party written here with requests + PyJWT: what Ferry's federated sign-in tests will rely on."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import socket
import time
import typing as t
import urllib.parse
from pathlib import Path

import jwt
import pytest
import requests

from ferry_harness import free_port
from oidc_provider import OidcProvider, ProviderLoginError, oidc_available, provider_login

_unavailable = oidc_available()
pytestmark = pytest.mark.skipif(_unavailable is not None, reason=f"no OIDC provider: {_unavailable}")

# Nothing listens there: the RP's callback is only read from the provider's redirect.
CALLBACK = f"http://127.0.0.1:{free_port()}/callback"
CLIENT = {"client_id": "ferry-test", "client_secret": secrets.token_urlsafe(16), "redirect_uris": [CALLBACK]}
ALICE = {
    "sub": "alice-0001",
    "preferred_username": "alice",
    "email": "alice@uni.example",
    "email_verified": True,
    "name": "Alice Example",
}
ACCOUNTS = {"alice": {"password": "correct horse", "claims": ALICE}}


class NonceMismatch(Exception):
    pass


class RelyingParty:
    """Just enough of an OIDC client: discovery, PKCE S256 + state + nonce, code exchange with
    client_secret_basic, ID token verification against the JWKS."""

    def __init__(self, issuer: str, client: dict) -> None:
        self.client = client
        self.http = requests.Session()
        self.http.trust_env = False
        self.config = self.http.get(issuer + "/.well-known/openid-configuration", timeout=10).json()

    def authorization(self, **params: str) -> tuple[str, dict[str, str]]:
        """The authorization URL and what the RP keeps to finish the flow."""
        kept = {
            "state": secrets.token_urlsafe(16),
            "nonce": secrets.token_urlsafe(16),
            "verifier": secrets.token_urlsafe(48),
        }
        challenge = base64.urlsafe_b64encode(hashlib.sha256(kept["verifier"].encode()).digest())
        query = {
            "response_type": "code",
            "client_id": self.client["client_id"],
            "redirect_uri": self.client["redirect_uris"][0],
            "scope": "openid profile email",
            "state": kept["state"],
            "nonce": kept["nonce"],
            "code_challenge": challenge.rstrip(b"=").decode(),
            "code_challenge_method": "S256",
            **params,
        }
        return self.config["authorization_endpoint"] + "?" + urllib.parse.urlencode(query), kept

    def sign_in(self, login: str, password: str) -> tuple[str, dict[str, str]]:
        """A whole flow up to the token response; returns the ID token and what the RP kept."""
        url, kept = self.authorization()
        back = provider_login(requests.Session(), url, login, password)
        query = callback_query(back)
        assert query.get("state") == kept["state"], query
        assert query.get("iss") == self.config["issuer"], query
        return self.exchange(query["code"], kept["verifier"]), kept

    def exchange(self, code: str, verifier: str) -> str:
        resp = self.http.post(
            self.config["token_endpoint"],
            auth=(self.client["client_id"], self.client["client_secret"]),
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": self.client["redirect_uris"][0],
                "code_verifier": verifier,
            },
            timeout=10,
        )
        assert resp.status_code == 200, resp.text
        return t.cast(str, resp.json()["id_token"])

    def jwks(self) -> jwt.PyJWKSet:
        return jwt.PyJWKSet.from_dict(self.http.get(self.config["jwks_uri"], timeout=10).json())

    def verify(self, id_token: str, nonce: str) -> dict[str, t.Any]:
        key = self.jwks()[jwt.get_unverified_header(id_token)["kid"]]
        claims = jwt.decode(
            id_token,
            key.key,
            algorithms=["RS256"],
            audience=self.client["client_id"],
            issuer=self.config["issuer"],
            options={"require": ["iss", "aud", "sub", "exp", "iat", "nonce"]},
        )
        if claims["nonce"] != nonce:
            raise NonceMismatch(f"nonce {claims['nonce']!r}, expected {nonce!r}")
        return claims


def callback_query(response: requests.Response) -> dict[str, str]:
    location = response.headers["Location"]
    assert location.startswith(CALLBACK + "?"), location
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[OidcProvider]:
    with OidcProvider(tmp_path_factory.mktemp("oidc"), clients=[CLIENT], accounts=ACCOUNTS) as provider:
        yield provider


@pytest.fixture
def rp(idp: OidcProvider) -> RelyingParty:
    return RelyingParty(idp.issuer, CLIENT)


def test_discovery_advertises_what_ferry_relies_on(idp: OidcProvider, rp: RelyingParty) -> None:
    config = rp.config
    assert config["issuer"] == idp.issuer
    assert config["code_challenge_methods_supported"] == ["S256"]
    assert "RS256" in config["id_token_signing_alg_values_supported"]
    assert {"openid", "profile", "email"} <= set(config["scopes_supported"])
    for endpoint in ("authorization_endpoint", "token_endpoint", "jwks_uri", "userinfo_endpoint"):
        assert config[endpoint].startswith(idp.issuer + "/"), config[endpoint]


def test_sign_in_gives_a_verifiable_id_token_with_the_account_claims(rp: RelyingParty) -> None:
    id_token, kept = rp.sign_in("alice", "correct horse")
    claims = rp.verify(id_token, kept["nonce"])
    assert {k: claims[k] for k in ALICE} == ALICE
    assert jwt.get_unverified_header(id_token)["alg"] == "RS256"


def test_pkce_s256_is_required(rp: RelyingParty) -> None:
    for params in ({"code_challenge": "", "code_challenge_method": ""},
                   {"code_challenge_method": "plain"}):
        url, kept = rp.authorization(**params)
        query = callback_query(provider_login(requests.Session(), url, "alice", "correct horse"))
        assert query.get("error") == "invalid_request", (params, query)
        assert "code" not in query and query["state"] == kept["state"]


def test_wrong_password_shows_the_form_again_and_issues_no_code(rp: RelyingParty) -> None:
    url, _ = rp.authorization()
    with pytest.raises(ProviderLoginError, match="login form again") as raised:
        provider_login(requests.Session(), url, "alice", "wrong horse")
    assert raised.value.response is not None
    assert raised.value.response.status_code == 200
    assert "Invalid login or password" in raised.value.response.text
    assert not any(CALLBACK in line for line in raised.value.history)


def test_provider_error_page_is_reported(rp: RelyingParty) -> None:
    url, _ = rp.authorization(client_id="no-such-client")
    with pytest.raises(ProviderLoginError, match="HTTP 400") as raised:
        provider_login(requests.Session(), url, "alice", "correct horse")
    assert raised.value.response is not None and "invalid_client" in raised.value.response.text


def test_rotation_signs_with_the_new_key_and_keeps_the_old_one_published(
    idp: OidcProvider, rp: RelyingParty
) -> None:
    before, kept = rp.sign_in("alice", "correct horse")
    old_kid = jwt.get_unverified_header(before)["kid"]
    new_kid = idp.rotate_keys()
    assert new_kid != old_kid
    after, kept_after = rp.sign_in("alice", "correct horse")
    assert jwt.get_unverified_header(after)["kid"] == new_kid
    assert {old_kid, new_kid} <= {key.key_id for key in rp.jwks().keys}
    rp.verify(before, kept["nonce"])  # an ID token of the old key still verifies
    rp.verify(after, kept_after["nonce"])
    stored = json.loads((idp.workdir / "state" / "jwks.json").read_text())
    assert [k["kid"] for k in stored["keys"]][:2] == [new_kid, old_kid]
    assert all("d" in k for k in stored["keys"])  # private keys, for the next start


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"iss": "http://127.0.0.1:1"}, jwt.InvalidIssuerError),
        ({"aud": "another-client"}, jwt.InvalidAudienceError),
        ({"nonce": "replayed"}, NonceMismatch),
        ({"exp_offset": -3600}, jwt.ExpiredSignatureError),
        ({"sign_with": "foreign"}, jwt.InvalidSignatureError),
        ({"nonce": None}, jwt.MissingRequiredClaimError),
    ],
    ids=["iss", "aud", "nonce", "expired", "foreign-key", "no-nonce"],
)
def test_tampered_id_token_fails_verification_once(
    idp: OidcProvider, rp: RelyingParty, overrides: dict, error: type[Exception]
) -> None:
    idp.tamper_next_id_token(**overrides)
    id_token, kept = rp.sign_in("alice", "correct horse")
    with pytest.raises(error):
        rp.verify(id_token, kept["nonce"])
    if "sign_with" in overrides:  # the foreign key poses as the current one
        assert jwt.get_unverified_header(id_token)["kid"] == rp.jwks().keys[0].key_id
    id_token, kept = rp.sign_in("alice", "correct horse")  # once only
    rp.verify(id_token, kept["nonce"])


def test_tampered_claims_are_signed_with_the_real_key(idp: OidcProvider, rp: RelyingParty) -> None:
    idp.tamper_next_id_token(email="mallory@uni.example", email_verified=False, exp_offset=60)
    id_token, kept = rp.sign_in("alice", "correct horse")
    claims = rp.verify(id_token, kept["nonce"])
    assert (claims["email"], claims["email_verified"], claims["sub"]) == (
        "mallory@uni.example", False, ALICE["sub"])
    assert abs(claims["exp"] - (time.time() + 60)) < 5
    assert claims["exp"] - claims["iat"] == 3600  # iat moved with exp: the provider's ID token lifetime


def test_requests_seen_counts_what_reached_the_provider(idp: OidcProvider, rp: RelyingParty) -> None:
    before = idp.requests_seen()
    rp.sign_in("alice", "correct horse")
    after = idp.requests_seen()
    grew = {path: n - before.get(path, 0) for path, n in after.items() if n != before.get(path, 0)}
    assert grew.pop("/auth") == 1
    assert grew.pop("/token") == 1
    assert grew.pop("/jwks", 0) == 0
    assert sum(n for path, n in grew.items() if path.startswith("/auth/")) == 2  # resumes: login, consent
    assert sum(n for path, n in grew.items() if path.startswith("/interaction/")) == 3  # form, post, consent
    assert not any(path.startswith("/__admin/") for path in after)


def test_restart_keeps_keys_and_stop_closes_the_port(tmp_path: Path) -> None:
    provider = OidcProvider(tmp_path / "idp", clients=[CLIENT], accounts=ACCOUNTS)
    with provider:
        kids = [key.key_id for key in RelyingParty(provider.issuer, CLIENT).jwks().keys]
        second = {**CLIENT, "client_id": "second-rp"}
        provider.add_client(second)  # restarts
        provider.add_account("bob", "pw-bob", {"sub": "bob-0002", "email": "bob@uni.example"})
        rp = RelyingParty(provider.issuer, second)
        assert [key.key_id for key in rp.jwks().keys] == kids
        id_token, kept = rp.sign_in("bob", "pw-bob")
        assert rp.verify(id_token, kept["nonce"])["sub"] == "bob-0002"
    with pytest.raises(requests.ConnectionError):
        requests.get(provider.discovery_url, timeout=5)
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", provider.port)) != 0
