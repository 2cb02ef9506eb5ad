"""AS-10/AS-11: an authorization code is redeemed once, even by 20 redemptions at the same moment.
AS-24/AS-25: two refreshes of one refresh token at the same moment: the documented policy is single use with
reuse detection (no grace window), so after both answers no refresh token of the family works any more and
every access token of the family is inactive."""

from __future__ import annotations

import concurrent.futures as cf
import threading

import requests

from browser import Browser
from world import TRANSFER, World


def _together(n: int, fn, *args):  # type: ignore[no-untyped-def]
    """Runs fn n times, released at the same moment."""
    barrier = threading.Barrier(n)

    def one(_: int):  # type: ignore[no-untyped-def]
        barrier.wait()
        return fn(*args)

    with cf.ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def code_race(w: World) -> tuple[str, int, list[str]]:
    trials = 25 if w.quick else 200
    b = Browser(w, w.alice)
    doubles = 0
    notes: list[str] = []
    for _ in range(trials):
        code, verifier = b.code("openid")
        results = _together(20, lambda: b.redeem(code, verifier).status_code)
        wins = sum(1 for s in results if s == 200)
        if wins != 1:
            doubles += max(wins - 1, 0)
            if wins == 0:
                notes.append("a fresh code was never redeemed: the probe is broken")
                doubles += 1
            else:
                notes.append(f"one code redeemed {wins} times")
    return (f"code single use: {trials} trials x 20 parallel redemptions, {doubles} double redemptions",
            doubles, notes[:10])


def refresh_race(w: World) -> tuple[str, int, list[str]]:
    trials = 25 if w.quick else 100
    b = Browser(w, w.alice)
    survivors = 0
    notes: list[str] = []
    portal = w.portal

    def refresh(rt: str) -> requests.Response:
        return requests.post(f"{w.url}/v2/oauth2/token", auth=portal, timeout=60,
                             data={"grant_type": "refresh_token", "refresh_token": rt})

    def active(token: str) -> bool:
        r = requests.post(f"{w.url}/v2/oauth2/token/introspect", auth=portal, data={"token": token}, timeout=60)
        return bool(r.json().get("active"))

    for _ in range(trials):
        first = b.tokens(TRANSFER, offline=True)
        rt0 = first["refresh_token"]
        answers = _together(2, refresh, rt0)
        new_rts, new_ats = [], [first["access_token"]]
        for a in answers:
            if a.status_code == 200:
                body = a.json()
                w.secrets.add_token_response(body)
                new_rts.append(body["refresh_token"])
                new_ats.append(body["access_token"])
        alive = [rt for rt in new_rts if refresh(rt).status_code == 200]
        live_ats = [at for at in new_ats if active(at)]
        if alive or live_ats:
            survivors += 1
            notes.append(f"{len(alive)} refresh and {len(live_ats)} access tokens outlived a reused refresh token")
    return (f"refresh rotation race: {trials} trials x 2 parallel refreshes, {survivors} survivors",
            survivors, notes[:10])
