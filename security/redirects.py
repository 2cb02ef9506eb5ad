"""AS-01/AS-02: redirect URIs are compared as exact strings. A corpus of near misses of the registered
`https://app.example/cb` (and of the loopback `http://127.0.0.1/cb`, whose port alone may vary) is sent to
/authorize, without a session and with one; none may be answered with a redirect that leaves the server."""

from __future__ import annotations

import itertools
import urllib.parse

import requests

from browser import Browser, pkce
from world import CALLBACK, World

REGISTERED = CALLBACK


def near_misses() -> list[str]:
    base = REGISTERED
    hand = [
        # trailing and appended parts
        base + "/", base + "//", base + "?", base + "?x=1", base + "#", base + "#f", base + "%20", base + " ",
        base + "\t", base + "%00", base + ";", base + ";x", base + "/.", base + "/..", base + "/../x", base + "/./",
        base + "..;/", base + "%2e%2e", base + "%2f..", base + ".json", base + "%23", base + "%3f", base + "\\",
        base + "%0d%0aLocation:%20https://evil.example", base + "&x=1", base + "x", base + "/x",
        # case
        "HTTPS://app.example/cb", "https://APP.example/cb", "https://app.example/CB", "https://app.EXAMPLE/cb",
        "Https://app.example/cb",
        # userinfo and several @
        "https://app.example@evil.example/cb", "https://app.example%40evil.example/cb",
        "https://evil.example@app.example/cb", "https://app.example:443@evil.example/cb",
        "https://a@b@evil.example/cb", "https://app.example@evil.example@app.example/cb",
        "https://app.example%2f@evil.example/cb", "https://app.example\\@evil.example/cb",
        "https://user:pw@app.example/cb",
        # hosts that only resemble it
        "https://evil.app.example/cb", "https://app.example.evil.example/cb", "https://app.exampl/cb",
        "https://app.example./cb", "https://app%2eexample/cb", "https://app.example\\.evil.example/cb",
        "https://xapp.example/cb", "https://app-example/cb", "https://app.example.com/cb", "https://[::1]/cb",
        "https://127.0.0.1/cb", "https://\u0430pp.example/cb", "https://app\u3002example/cb",
        "https://app.example%09/cb", "https://app.example%00.evil.example/cb",
        # schemes
        "http://app.example/cb", "javascript:alert(1)//https://app.example/cb", "JaVaScRiPt:alert(1)",
        " javascript:alert(1)", "java\tscript:alert(1)", "data:text/html,<script>alert(1)</script>",
        "DATA:text/html;base64,PHNjcmlwdD4=", "https:app.example/cb", "https:/app.example/cb",
        "https:///app.example/cb", "//app.example/cb", "app.example/cb", "/cb", "//evil.example/cb",
        "ftp://app.example/cb", "file:///etc/passwd", "vbscript:msgbox(1)", "wss://app.example/cb",
        # ports
        "https://app.example:443/cb", "https://app.example:8443/cb", "https://app.example:/cb",
        "https://app.example:0443/cb", "https://app.example:80/cb",
        # paths that normalise to it, or nearly
        "https://app.example/cb/../cb", "https://app.example/x/../cb", "https://app.example/%63b",
        "https://app.example/c%62", "https://app.example//cb", "https://app.example/./cb", "https://app.example/cb%2f",
        "https://app.example/cb%23x", "https://app.example/cb%3fx=1", "https://app.example/cbx",
        "https://app.example/c", "https://app.example/", "https://app.example", "https://app.example/CB/",
        "https://app.example/cb/..;/evil", "https://app.example/..;/cb", "https://app.example/%2e%2e/cb",
        # whitespace around it
        " " + base, base + " ", "\t" + base, "\n" + base, base + "\n", "%20" + base, base + "%0a",
        "\u200b" + base, base + "\u200b", "\ufeff" + base,
    ]
    # Systematic: every host and scheme variant with every appended suffix.
    heads = ["https://app.example", "https://evil.example", "http://app.example", "https://app.example.evil.example",
             "https://evil.example%23.app.example", "https://app.example:444", "HTTPS://APP.EXAMPLE"]
    tails = ["/cb/", "/cb?next=https://evil.example", "/cb#https://evil.example", "/cb/..%2fevil", "/cb%2f..%2fevil",
             "/cb/%2e%2e/evil", "/cb;jsessionid=1", "/cb/.", "/cb%20", "/cb\t", "/cb/evil", "/cb?", "/Cb",
             "/cb%00", "/cb%E2%80%8B", "/cb\\evil", "/cb@evil.example", "/cb:443", "/cb?redirect=//evil.example",
             "/cb/#", "/cb//", "/%2fcb", "/cb;", "/cb.", "/cb~"]
    systematic = [h + tl for h, tl in itertools.product(heads, tails)]
    loopback = [
        "http://127.0.0.1.evil.example/cb", "http://127.0.0.1@evil.example/cb", "http://127.0.0.1:80@evil.example/cb",
        "http://127.0.0.1/cb/", "http://127.0.0.1/cbx", "http://127.0.0.1:8080/cb/../x", "http://127.1/cb",
        "http://localhost.evil.example/cb", "http://0x7f000001/cb", "https://127.0.0.1.nip.io/cb",
        "http://127.0.0.1/CB", "http://127.0.0.1:99999/cb", "http://127.0.0.1:-1/cb", "http://127.0.0.1:/cb",
        "http://[::ffff:127.0.0.1]/cb", "http://127.0.0.1/cb?x", "http://127.0.0.1/cb#x",
    ]
    seen: list[str] = []
    for v in hand + systematic + loopback:
        if v not in seen and v != REGISTERED:
            seen.append(v)
    return seen


def _leaves(location: str | None) -> bool:
    """Whether a Location header sends the browser off this server (a local path is a step of the flow)."""
    if not location:
        return False
    return not (location.startswith("/") and not location.startswith("//"))


def run(w: World) -> tuple[str, int, list[str]]:
    corpus = near_misses()
    notes: list[str] = []
    bad = 0
    anonymous = requests.Session()
    logged_in = Browser(w, w.alice)
    logged_in.code("openid")  # a live session: the dangerous case is a flow that skips the login page
    _, challenge = pkce()
    for variant in corpus:
        for who, s in (("no session", anonymous), ("session", logged_in.s)):
            url = logged_in.authorize_url("openid", challenge, redirect_uri=variant)
            # Follow local steps (consent page) like a browser, stop at the first step that leaves.
            for _ in range(4):
                r = s.get(url, allow_redirects=False, timeout=30)
                loc = r.headers.get("Location")
                if _leaves(loc):
                    bad += 1
                    notes.append(f"{who}: {variant!r} redirected to {loc}")
                    break
                if not loc:
                    break
                url = urllib.parse.urljoin(r.url, loc)
    # AS-02: an unknown client never redirects either.
    r = anonymous.get(f"{w.url}/v2/oauth2/authorize", allow_redirects=False, timeout=30, params={
        "client_id": "00000000-0000-4000-8000-000000000000", "redirect_uri": REGISTERED, "response_type": "code",
        "scope": "openid"})
    if _leaves(r.headers.get("Location")):
        bad += 1
        notes.append(f"an unknown client was redirected to {r.headers.get('Location')}")
    # The corpus is only meaningful if the registered URI itself works, and loopback ports vary.
    for ok in (REGISTERED,):
        code, _ = logged_in.code("openid")
        if not code:
            notes.append(f"the registered {ok} did not produce a code: the probe is broken")
            bad += 1
    total = len(corpus) + 1
    return (f"redirect-URI near misses: {total} variants x 2 sessions, {bad} redirects to unregistered URIs",
            bad, notes)
