"""The items of the authorisation-server checklist (../shared/reference/oauth-security.md §1) that can be tested
black-box over HTTP and are not already a figure of their own. Each check names its item; the figure is how
many failed. (Expiry items use a movable clock and live in the Rust integration tests; PKCE stays optional
for confidential clients, as the hardening issue decided, so AS-07 is checked for native clients only.)"""

from __future__ import annotations

import base64
import http.client
import json
import secrets
import urllib.parse

import jwt
import requests

from browser import Browser, pkce
from world import CALLBACK, OPENID, TRANSFER, World


class Checks:
    def __init__(self) -> None:
        self.done: list[str] = []
        self.failed: list[str] = []

    def check(self, item: str, ok: bool, detail: str = "") -> None:
        self.done.append(item)
        if not ok:
            self.failed.append(f"{item}: {detail}"[:300])


def _query(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in urllib.parse.parse_qs(urllib.parse.urlsplit(location).query).items()}


def run(w: World) -> tuple[str, int, list[str]]:
    c = Checks()
    url = w.url
    portal = w.portal
    disco = requests.get(f"{url}/.well-known/openid-configuration", timeout=30).json()
    b = Browser(w, w.alice)
    b.code("openid")  # logged in

    # AS-03
    _, ch = pkce()
    r = b.s.get(b.authorize_url("openid", ch, extra={"response_type": "token"}), allow_redirects=False)
    loc = r.headers.get("Location", "")
    c.check("AS-03 response_type=token", _query(loc).get("error") == "unsupported_response_type"
            and "access_token" not in loc, f"{r.status_code} {loc}")
    r = requests.post(f"{url}/v2/oauth2/token", auth=portal, data={"grant_type": "password", "username": "a",
                                                                   "password": "b"})
    c.check("AS-03 grant_type=password", r.json().get("error") == "unsupported_grant_type", r.text)

    # AS-04: iss and state on success and error redirects
    state = "a+b/c=d%e f"
    r = b.s.get(b.authorize_url("nonsense:scope", ch, state=state), allow_redirects=False)
    q = _query(r.headers.get("Location", ""))
    c.check("AS-04 error redirect iss/state", q.get("iss") == disco["issuer"] and q.get("state") == state, str(q))
    c.check("AS-04 metadata", disco.get("authorization_response_iss_parameter_supported") is True)

    # AS-05: the login POST answers 303
    fresh = requests.Session()
    r = fresh.get(b.authorize_url("openid", ch), timeout=30)
    from ferry_harness import parse_page
    page = parse_page(r)
    form = next((f for f in page.forms if any(k == "password" for _, _, k, _ in f.controls)), None)
    if form is None:
        c.check("AS-05 login form", False, "no login form")
    else:
        r = fresh.post(urllib.parse.urljoin(r.url, form.action),
                       data=form.submission({"username": w.alice.username, "password": w.alice.password or ""}),
                       allow_redirects=False)
        c.check("AS-05 303 after credentials", r.status_code == 303, str(r.status_code))

    # AS-06: framing and CORS on the pages
    for name, resp in (("login", fresh.get(b.authorize_url("openid", ch))),
                       ("error", fresh.get(f"{url}/v2/oauth2/authorize?client_id=nope"))):
        h = resp.headers
        c.check(f"AS-06 anti-framing on {name} page", "frame-ancestors" in h.get("Content-Security-Policy", "")
                and h.get("X-Frame-Options", "").upper() in ("DENY", "SAMEORIGIN"), str(dict(h)))
    r = requests.get(b.authorize_url("openid", ch), headers={"Origin": "https://evil.example"})
    c.check("AS-06 no CORS on authorize", "Access-Control-Allow-Origin" not in r.headers)

    # AS-07 (native clients) and AS-08
    native = w.server.create_client("checklist native", native=True, redirect_uris=[CALLBACK])
    q = {"client_id": native["client_id"], "redirect_uri": CALLBACK, "response_type": "code", "scope": "openid"}
    r = b.s.get(f"{url}/v2/oauth2/authorize?{urllib.parse.urlencode(q)}", allow_redirects=False)
    c.check("AS-07 native without PKCE", _query(r.headers.get("Location", "")).get("error") == "invalid_request",
            r.headers.get("Location", str(r.status_code)))
    for label, extra in (("plain", {"code_challenge": ch, "code_challenge_method": "plain"}),
                         ("no method", {"code_challenge": ch}),
                         ("42 chars", {"code_challenge": ch[:42], "code_challenge_method": "S256"}),
                         ("bad chars", {"code_challenge": "+" + ch[1:], "code_challenge_method": "S256"})):
        r = b.s.get(f"{url}/v2/oauth2/authorize?{urllib.parse.urlencode({**q, **extra})}", allow_redirects=False)
        c.check(f"AS-08 {label}", _query(r.headers.get("Location", "")).get("error") == "invalid_request",
                r.headers.get("Location", str(r.status_code)))
    c.check("AS-08 metadata", disco.get("code_challenge_methods_supported") == ["S256"])

    # AS-09 and AS-13
    code, verifier = b.code("openid")
    r = requests.post(f"{url}/v2/oauth2/token", auth=portal, data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK, "code_verifier": "x" * 43})
    c.check("AS-09 wrong verifier", r.json().get("error") == "invalid_grant", r.text)
    r = b.redeem(code, verifier)
    c.check("AS-09 a failed verifier consumes the code", r.status_code != 200, r.text[:200])
    code, verifier = b.code("openid")
    r = requests.post(f"{url}/v2/oauth2/token", auth=portal, data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK})
    c.check("AS-09 missing verifier", r.json().get("error") in ("invalid_grant", "invalid_request"), r.text)
    code, verifier = b.code("openid")
    r = requests.post(f"{url}/v2/oauth2/token", auth=(w.eve.client_id, w.eve.client_secret), data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK, "code_verifier": verifier})
    c.check("AS-13 another client's code", r.json().get("error") in ("invalid_grant", "unauthorized_client"), r.text)
    code, verifier = b.code("openid")
    r = requests.post(f"{url}/v2/oauth2/token", auth=portal, data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK + "x", "code_verifier": verifier})
    c.check("AS-13 altered redirect_uri", r.json().get("error") == "invalid_grant", r.text)

    # AS-10: a replayed code revokes what the first redemption produced
    code, verifier = b.code(f"openid {TRANSFER}", offline=True)
    first = b.redeem(code, verifier).json()
    w.secrets.add_token_response(first)
    b.redeem(code, verifier)
    r = requests.post(f"{url}/v2/oauth2/token/introspect", auth=portal, data={"token": first["access_token"]})
    c.check("AS-10 replay revokes the access token", r.json() == {"active": False}, r.text)
    r = requests.post(f"{url}/v2/oauth2/token", auth=portal, data={"grant_type": "refresh_token",
                                                                  "refresh_token": first["refresh_token"]})
    c.check("AS-10 replay revokes the refresh token", r.json().get("error") == "invalid_grant", r.text)

    # AS-14 and AS-17
    r = requests.post(f"{url}/v2/oauth2/token", data={"grant_type": "client_credentials", "scope": TRANSFER,
                                                      "client_id": w.eve.client_id,
                                                      "client_secret": w.eve.client_secret})
    c.check("AS-14 client_secret_post", r.status_code == 200, r.text[:200])
    if r.status_code == 200:
        w.secrets.add_token_response(r.json())
    c.check("AS-17 no-store on tokens", "no-store" in r.headers.get("Cache-Control", ""), str(r.headers))
    r = requests.post(f"{url}/v2/oauth2/token", auth=(w.eve.client_id, "wrong"),
                      data={"grant_type": "client_credentials", "scope": TRANSFER})
    c.check("AS-14 wrong secret", r.status_code == 401 and r.json().get("error") == "invalid_client"
            and "WWW-Authenticate" in r.headers, f"{r.status_code} {r.text} {dict(r.headers)}")
    c.check("AS-17 error shape", set(r.json()) >= {"error", "error_description"} and "no-store" in
            r.headers.get("Cache-Control", ""), r.text)

    # AS-15: a native client may not use client credentials
    r = requests.post(f"{url}/v2/oauth2/token", data={"grant_type": "client_credentials", "scope": TRANSFER,
                                                      "client_id": native["client_id"]})
    c.check("AS-15 grant not allowed", r.json().get("error") in ("unauthorized_client", "invalid_client"), r.text)

    # AS-20 and AS-23
    tokens = b.tokens(TRANSFER, offline=True)
    r = requests.post(f"{url}/v2/oauth2/token", auth=portal, data={
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
        "scope": f"{TRANSFER} urn:globus:auth:scope:groups.api.globus.org:all"})
    c.check("AS-20 refresh cannot widen scope", r.json().get("error") == "invalid_scope", r.text)
    r = requests.post(f"{url}/v2/oauth2/token", auth=(w.eve.client_id, w.eve.client_secret), data={
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    c.check("AS-23 another client's refresh token", r.json().get("error") == "invalid_grant", r.text)

    # AS-22: opaque secrets look random
    issued = []
    for _ in range(60):
        st, body = w.app_tokens(w.eve, TRANSFER)
        issued.append(body["access_token"])
    bodies = [s.split("_", 1)[-1] for s in issued]
    c.check("AS-22 unique and long", len(set(issued)) == len(issued) and min(map(len, bodies)) >= 22,
            str(issued[:2]))
    common = 0
    while common < min(map(len, bodies)) and len({s[common] for s in bodies}) == 1:
        common += 1
    c.check("AS-22 no shared prefix beyond the type", common == 0, f"{common} shared characters")

    # AS-27, AS-28, AS-29
    r = requests.post(f"{url}/v2/oauth2/token/introspect", data={"token": tokens["access_token"]})
    c.check("AS-27 introspection needs a client", r.status_code == 401, str(r.status_code))
    for label, token in (("unknown", "nope"), ("other client's", issued[0])):
        r = requests.post(f"{url}/v2/oauth2/token/introspect", auth=portal, data={"token": token})
        c.check(f"AS-28 {label} token", r.text.replace(" ", "") == '{"active":false}', r.text)
    r = requests.post(f"{url}/v2/oauth2/token/introspect", auth=portal,
                      data={"token": tokens["access_token"], "token_type_hint": "refresh_token"})
    doc = r.json()
    c.check("AS-29 active fields", doc.get("active") is True and all(k in doc for k in (
        "scope", "client_id", "sub", "exp", "iat", "aud", "iss")), r.text)

    # AS-30
    r = requests.post(f"{url}/v2/oauth2/token/revoke", auth=(w.eve.client_id, w.eve.client_secret),
                      data={"token": tokens["access_token"]})
    r2 = requests.post(f"{url}/v2/oauth2/token/introspect", auth=portal, data={"token": tokens["access_token"]})
    c.check("AS-30 only the owning client revokes", r2.json().get("active") is True, r2.text)
    r = requests.post(f"{url}/v2/oauth2/token/revoke", auth=portal, data={"token": "garbage"})
    c.check("AS-30 garbage revoke is 200", r.status_code == 200, str(r.status_code))

    # AS-32, AS-33: discovery, JWKS and the id_token
    c.check("AS-32 issuer is the URL", disco.get("issuer") == url, disco.get("issuer", ""))
    jwks = requests.get(disco["jwks_uri"]).json()
    nonce = secrets.token_urlsafe(12)
    verifier, ch = pkce()
    r = b.s.get(b.authorize_url(OPENID, ch, extra={"nonce": nonce}), allow_redirects=False)
    code = None
    for _ in range(5):
        loc = r.headers.get("Location", "")
        if loc.startswith(CALLBACK):
            code = _query(loc).get("code")
            break
        if loc:
            r = b.s.get(urllib.parse.urljoin(r.url, loc), allow_redirects=False)
            continue
        page = parse_page(r)
        consent = next((f for f in page.forms if f.has_control("decision", "allow")), None)
        if consent is None:
            break
        r = b.s.post(urllib.parse.urljoin(r.url, consent.action),
                     data=consent.submission({}, clicked=("decision", "allow")), allow_redirects=False)
    idt = None
    if code:
        w.secrets.add(code, verifier)
        resp = b.redeem(code, verifier).json()
        w.secrets.add_token_response(resp)
        idt = resp.get("id_token")
    if not idt:
        c.check("AS-33 id_token issued", False, "no id_token")
    else:
        header = jwt.get_unverified_header(idt)
        keys = {k["kid"]: k for k in jwks["keys"]}
        c.check("AS-32 kid published", header.get("kid") in keys, str(header))
        try:
            key = jwt.PyJWK(keys[header["kid"]]).key
            claims = jwt.decode(idt, key, algorithms=["RS256"], audience=portal[0], issuer=url)
            c.check("AS-33 RS256 and claims", header.get("alg") == "RS256" and claims.get("nonce") == nonce and
                    all(k in claims for k in ("sub", "exp", "iat", "auth_time")), str(claims)[:200])
        except Exception as e:  # noqa: BLE001 (the check reports any failure to verify)
            c.check("AS-33 RS256 and claims", False, repr(e))
    # AS-34: a forged alg:none token at a resource server
    forged = (base64.urlsafe_b64encode(b'{"alg":"none"}').rstrip(b"=").decode() + "." +
              base64.urlsafe_b64encode(json.dumps({"sub": w.alice.id}).encode()).rstrip(b"=").decode() + ".")
    r = requests.get(f"{url}/v2/oauth2/userinfo", headers={"Authorization": f"Bearer {forged}"})
    c.check("AS-34 alg none refused", r.status_code == 401, str(r.status_code))

    # AS-36: prompt=none without a session, and userinfo by GET and POST
    r = requests.get(b.authorize_url("openid", ch, extra={"prompt": "none"}), allow_redirects=False)
    c.check("AS-36 prompt=none without session", _query(r.headers.get("Location", "")).get("error") ==
            "login_required", f"{r.status_code} {r.headers.get('Location')}")
    at = w.token(w.alice, OPENID)
    ok_get = requests.get(f"{url}/v2/oauth2/userinfo", headers={"Authorization": f"Bearer {at}"}).status_code
    ok_post = requests.post(f"{url}/v2/oauth2/userinfo", headers={"Authorization": f"Bearer {at}"}).status_code
    c.check("AS-36 userinfo GET and POST", ok_get == 200 and ok_post == 200, f"{ok_get} {ok_post}")

    # AS-37: registration validates redirect URIs (as an authenticated owner)
    auth_tok = w.token(w.alice, OPENID)
    for bad in ("javascript:alert(1)", "https://app.example/cb#frag", " https://app.example/cb",
                "https://app.example/cb\n", "data:text/html,x", "http://evil.example/cb"):
        st, text = w.call("POST", "/v2/api/clients", auth_tok, {"client": {"name": "reg", "redirect_uris": [bad]}})
        c.check(f"AS-37 redirect {bad!r} refused", st == 400, f"{st} {text[:160]}")
    # AS-37/AS-38 and issue item 3: a template instance gets only what the template allows
    st, text = w.call("POST", "/v2/api/clients", None, {"client": {
        "template_id": "95fdeba8-fac2-42bd-a357-e068d82ff78e", "name": "Globus Web App",
        "redirect_uris": ["https://evil.example/cb"]}})
    c.check("issue-3 template instance cannot pick redirect URIs", st >= 400, f"{st} {text[:200]}")
    if st < 300:
        secret = (json.loads(text).get("included") or {}).get("client_credential", {}).get("secret")
        w.secrets.add(secret)

    # AS-39: throttling, per client and address; another address is not locked out
    codes = []
    for _ in range(15):
        r = requests.post(f"{url}/v2/oauth2/token", auth=(w.eve.client_id, "wrong-" + secrets.token_hex(4)),
                          data={"grant_type": "client_credentials", "scope": TRANSFER})
        codes.append(r.status_code)
    last = r
    c.check("AS-39 429 after repeated failures", codes[-1] == 429 and "Retry-After" in last.headers, str(codes))
    st, text = _from_address("127.0.0.2", w, "/v2/oauth2/token", w.eve.client_id, w.eve.client_secret or "",
                             {"grant_type": "client_credentials", "scope": TRANSFER})
    c.check("AS-39 another address still succeeds", st == 200, f"{st} {text[:160]}")
    if st == 200:
        w.secrets.add_token_response(json.loads(text))
    # AS-40: a spoofed X-Forwarded-For does not escape the limit; X-Forwarded-Proto does not change the issuer
    r = requests.post(f"{url}/v2/oauth2/token", auth=(w.eve.client_id, w.eve.client_secret),
                      headers={"X-Forwarded-For": "203.0.113.7"},
                      data={"grant_type": "client_credentials", "scope": TRANSFER})
    c.check("AS-40 X-Forwarded-For is not the limiter's key", r.status_code == 429, str(r.status_code))
    d2 = requests.get(f"{url}/.well-known/openid-configuration",
                      headers={"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example"}).json()
    c.check("AS-40 forwarded headers do not change the issuer", d2.get("issuer") == url, d2.get("issuer", ""))

    # HTTPS data: an uploaded page never runs in Ferry's origin
    https = w.token(w.alice, f"https://auth.globus.org/scopes/{w.guest}/https")
    requests.put(f"{url}/data/{w.guest}/page.html", data=b"<script>alert(1)</script>",
                 headers={"Authorization": f"Bearer {https}"})
    r = requests.get(f"{url}/data/{w.guest}/page.html", headers={"Authorization": f"Bearer {https}"})
    h = r.headers
    c.check("data: uploaded HTML is inert", h.get("X-Content-Type-Options") == "nosniff" and (
        "sandbox" in h.get("Content-Security-Policy", "") or "attachment" in h.get("Content-Disposition", "")),
        str(dict(h)))
    return (f"checklist: {len(c.done)} black-box checks, {len(c.failed)} failed", len(c.failed), c.failed)


def _from_address(source: str, w: World, path: str, cid: str, secret: str,
                  form: dict[str, str]) -> tuple[int, str]:
    """A POST from another loopback address (the limiter keys failures by client and address)."""
    u = urllib.parse.urlsplit(w.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30, source_address=(source, 0))
    auth = base64.b64encode(f"{urllib.parse.quote(cid)}:{urllib.parse.quote(secret)}".encode()).decode()
    body = urllib.parse.urlencode(form)
    try:
        conn.request("POST", path, body=body, headers={"Authorization": f"Basic {auth}",
                                                       "Content-Type": "application/x-www-form-urlencoded"})
        r = conn.getresponse()
        return r.status, r.read().decode()
    finally:
        conn.close()

