"""AS-18/AS-19/AS-34: a token is accepted only by its own resource server. Every token the suite holds is
presented to a route of every other resource server; and refresh tokens, codes, client secrets, forged
JWTs (alg none, HS256 with the public key) and tokens in the URL are presented everywhere."""

from __future__ import annotations

import base64
import json

import requests

from browser import Browser
from world import GROUPS, OPENID, TRANSFER, World, collection_scope, manage_scope


def _b64(d: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()


def run(w: World) -> tuple[str, int, list[str]]:
    guest, mapped = w.guest, w.mapped
    # A route of each resource server, with what its owner expects (the token's own server must accept).
    routes = {
        "auth.globus.org": [("GET", "/v2/oauth2/userinfo"), ("GET", f"/v2/api/identities?ids={w.alice.id}")],
        "transfer.api.globus.org": [("GET", "/v0.10/task_list"), ("GET", f"/v0.10/endpoint/{guest}")],
        "groups.api.globus.org": [("GET", "/v2/groups/my_groups")],
        w.endpoint: [("GET", "/api/endpoint"), ("GET", "/api/collections")],
        guest: [("GET", f"/data/{guest}/a.txt")],
        mapped: [("GET", f"/data/{mapped}/share/a.txt")],
    }
    b = Browser(w, w.alice)
    person = b.tokens(f"{OPENID} {TRANSFER} {GROUPS} {collection_scope(guest, 'https')} "
                      f"{collection_scope(guest, 'data_access')}", offline=True)
    tokens: dict[str, list[str]] = {}
    for d in [person] + person.get("other_tokens", []):
        tokens.setdefault(d["resource_server"], []).append(d["access_token"])
    st, app = w.app_tokens(w.admin, f"{manage_scope(w.endpoint)} {collection_scope(mapped, 'https')} {TRANSFER}")
    assert st == 200, app
    for d in [app] + app.get("other_tokens", []):
        tokens.setdefault(d["resource_server"], []).append(d["access_token"])
    code, _verifier = b.code("openid")
    not_access = [person["refresh_token"], code, w.portal[1], w.admin.client_secret or ""]
    forged = [
        _b64({"alg": "none", "typ": "JWT"}) + "." + _b64({"sub": w.alice.id, "aud": "transfer.api.globus.org",
                                                          "scope": TRANSFER, "exp": 4102444800}) + ".",
        _b64({"alg": "HS256", "typ": "JWT"}) + "." + _b64({"sub": w.alice.id}) + ".c2lnbmF0dXJl",
        "fat_" + "A" * 43, "", " ", "null", "undefined", "Bearer", "%00", "x" * 5000,
    ]
    wrong = 0
    tried = 0
    notes: list[str] = []

    def check(rs_of_route: str, method: str, path: str, token: str, expect_ok: bool, what: str) -> None:
        nonlocal wrong, tried
        tried += 1
        r = requests.request(method, w.url + path, headers={"Authorization": f"Bearer {token}"}, timeout=30,
                             allow_redirects=False)
        if r.status_code < 300 and not expect_ok:
            wrong += 1
            notes.append(f"{what} accepted by {rs_of_route} at {method} {path}")
        if expect_ok and r.status_code >= 300:
            notes.append(f"{what} REFUSED by its own server at {path} ({r.status_code}): the probe is broken")
            wrong += 1

    for rs, rts in routes.items():
        for method, path in rts:
            for token_rs, toks in tokens.items():
                for tok in toks:
                    check(rs, method, path, tok, token_rs == rs, f"a token of {token_rs}")
            for tok in not_access:
                check(rs, method, path, tok, False, "a non-access secret")
            for tok in forged:
                check(rs, method, path, tok, False, "a forged token")
            # Tokens in the URL are never looked at (AS-18).
            for tok in tokens.get(rs, []):
                tried += 1
                sep = "&" if "?" in path else "?"
                r = requests.request(method, f"{w.url}{path}{sep}access_token={tok}", timeout=30,
                                     allow_redirects=False)
                if r.status_code < 300:
                    wrong += 1
                    notes.append(f"?access_token= accepted at {path}")
    return (f"token audience: {tried} presentations over {len(routes)} resource servers, "
            f"{wrong} wrong-audience acceptances", wrong, notes[:12])
