"""A browser for the probes that need a login session: it logs in once through the pages (login form with
whatever hidden fields the page carries, cookies kept), then asks for codes without logging in again."""

from __future__ import annotations

import base64
import hashlib
import secrets
import typing as t
import urllib.parse

import requests

from world import CALLBACK, Identity, World

from ferry_harness import parse_page  # noqa: E402  (path set up by world)


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


class Browser:
    def __init__(self, world: World, who: Identity) -> None:
        self.w = world
        self.who = who
        self.s = requests.Session()

    def authorize_url(self, scope: str, challenge: str, *, state: str = "s", offline: bool = False,
                      redirect_uri: str = CALLBACK, extra: dict[str, str] | None = None) -> str:
        q = {"client_id": self.w.portal[0], "redirect_uri": redirect_uri, "response_type": "code",
             "scope": scope, "state": state, "code_challenge": challenge, "code_challenge_method": "S256"}
        if offline:
            q["access_type"] = "offline"
        q.update(extra or {})
        return f"{self.w.url}/v2/oauth2/authorize?{urllib.parse.urlencode(q)}"

    def code(self, scope: str, *, offline: bool = False) -> tuple[str, str]:
        """Runs the code flow (logging in when the session asks for it); returns (code, verifier)."""
        verifier, challenge = pkce()
        url = self.authorize_url(scope, challenge, offline=offline)
        method, data = "GET", None
        for _ in range(12):
            r = self.s.request(method, url, data=data, allow_redirects=False, timeout=60)
            if r.status_code in (301, 302, 303, 307, 308):
                loc = urllib.parse.urljoin(r.url, r.headers["Location"])
                q = urllib.parse.parse_qs(urllib.parse.urlsplit(loc).query)
                if loc.startswith(CALLBACK):
                    if "code" not in q:
                        raise AssertionError(f"the flow ended without a code: {loc}")
                    self.w.secrets.add(q["code"][0], verifier)
                    return q["code"][0], verifier
                url, method, data = loc, "GET", None
                continue
            page = parse_page(r)
            login = next((f for f in page.forms if any(k == "password" for _, _, k, _ in f.controls)), None)
            consent = next((f for f in page.forms if f.has_control("decision", "allow")), None)
            if login is not None:
                form, body = login, login.submission({"username": self.who.username,
                                                      "password": self.who.password or ""})
            elif consent is not None:
                form, body = consent, consent.submission({}, clicked=("decision", "allow"))
            else:
                raise AssertionError(f"no login or consent form at {r.url} ({r.status_code}): {r.text[:500]}")
            url = urllib.parse.urljoin(r.url, form.action) if form.action else r.url
            method, data = "POST", body
        raise AssertionError("the code flow did not end")

    def redeem(self, code: str, verifier: str) -> requests.Response:
        return requests.post(f"{self.w.url}/v2/oauth2/token", auth=self.w.portal, timeout=60, data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK, "code_verifier": verifier,
        })

    def tokens(self, scope: str, *, offline: bool = False) -> dict[str, t.Any]:
        code, verifier = self.code(scope, offline=offline)
        r = self.redeem(code, verifier)
        assert r.status_code == 200, r.text
        body = r.json()
        self.w.secrets.add_token_response(body)
        return body
