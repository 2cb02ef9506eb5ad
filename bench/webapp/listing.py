#!/usr/bin/env python3
"""How long the web app takes to show the first page of a folder of 100,000 entries, side by side with what
the shell takes to list the same folder, in one run.

Rows (median of --rounds, after one warm-up each):
  ls -f | head -100        reads the folder in directory order, no sorting, no stat: the floor
  ls -l | head -100        reads, stats every entry and sorts by name: what a sorted listing with sizes costs
  api ls (curl)            the Transfer API `ls` with limit=100 (JSON), as the CLI and SDK ask for it
  page, by name (curl)     GET /file-manager of the folder: the HTML of the first 100 rows, folders first
  page, by size desc       the same sorted by size, largest first
  page, filtered           the same with the name filter "99" (names containing it)
  page in Chromium         from navigation start to the load event, a real browser (web-tests/)

Usage (from the repository's root; the compat venv and web-tests are installed by scripts/test):
  cargo build --release -p ferry-cli
  FERRY_BIN=target/release/ferry compat/.venv/bin/python bench/webapp/listing.py [--entries N] [--rounds R]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "compat"))

import requests  # noqa: E402

from ferry_harness import start_server, stop_server  # noqa: E402
from web_browser import Browser, browser_available  # noqa: E402


def timed(argv: list[str], rounds: int) -> float:
    """Median wall time of a shell pipeline, in seconds."""
    runs = []
    for i in range(rounds + 1):
        start = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        if i:  # the first is a warm-up
            runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def curl(url: str, headers: list[str], rounds: int) -> tuple[float, int]:
    """Median `time_total` of curl fetching `url`, and the size of the body."""
    runs, size = [], 0
    for i in range(rounds + 1):
        args = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{time_total} %{size_download}"]
        for h in headers:
            args += ["-H", h]
        out = subprocess.run(args + [url], check=True, capture_output=True, text=True).stdout.split()
        if out[0] != "200":
            raise SystemExit(f"{url}: HTTP {out[0]}")
        if i:
            runs.append(float(out[1]))
            size = int(out[2])
    return statistics.median(runs), size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entries", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    binary = os.environ.get("FERRY_BIN", "")
    print(f"ferry binary: {binary or '(the debug build: set FERRY_BIN=target/release/ferry)'}")

    work = Path(tempfile.mkdtemp(prefix="ferry-bench-webapp-"))
    server = start_server(work)
    try:
        folder = server.data_dir / "storage" / "big"
        folder.mkdir()
        started = time.perf_counter()
        for i in range(args.entries):
            with open(folder / f"sample-{i:06d}.dat", "wb") as f:
                f.write(b"x" * (i % 4096))
        print(f"made {args.entries} files in {time.perf_counter() - started:.1f} s")

        http = requests.Session()
        http.trust_env = False
        page = http.get(server.base_url + "/v2/web/login?next=/", timeout=30)
        csrf = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        http.post(server.base_url + "/v2/web/login", timeout=30, data={
            "csrf": csrf, "next": "/", "username": server.admin["username"],
            "password": server.admin["password"]})
        cookie = f"Cookie: ferry_session={http.cookies['ferry_session']}"
        token = http.post(server.base_url + "/v2/oauth2/token", timeout=30, data={
            "grant_type": "client_credentials", "scope": "urn:globus:auth:scope:transfer.api.globus.org:all"},
            auth=(server.admin["client_id"], server.admin["client_secret"])).json()["access_token"]
        mapped = http.get(server.base_url + "/v0.10/endpoint_search?filter_entity_type=GCSv5_mapped_collection",
                          headers={"Authorization": f"Bearer {token}"}, timeout=30).json()["DATA"][0]["id"]
        # the admin's client has no files of its own: run the API listing as a collection administrator would
        page_url = f"{server.base_url}/file-manager?origin_id={mapped}&origin_path=/big/"

        rows: list[tuple[str, float, str]] = []
        rows.append(("ls -f | head -100", timed(["sh", "-c", f"ls -f {folder} | head -100"], args.rounds), ""))
        rows.append(("ls -l | head -100", timed(["sh", "-c", f"ls -l {folder} | head -100"], args.rounds), ""))
        api = (f"{server.base_url}/v0.10/operation/endpoint/{mapped}/ls?"
               + urllib.parse.urlencode({"path": "/big/", "limit": 100}))
        t, n = curl(api, [f"Authorization: Bearer {token}"], args.rounds)
        rows.append(("api ls, limit 100 (curl)", t, f"{n} bytes"))
        for label, extra in (("page, by name (curl)", ""), ("page, by size desc (curl)", "&sort=size&order=desc"),
                             ("page, filtered (curl)", "&filter=99")):
            t, n = curl(page_url + extra, [cookie], args.rounds)
            rows.append((label, t, f"{n} bytes"))

        why = browser_available()
        if why is None:
            with Browser(log_path=work / "browser.log") as b:
                b.open(server.base_url + "/v2/web/login?next=/")
                b.fill("#username", server.admin["username"])
                b.fill("#password", server.admin["password"])
                b.click("button[type=submit]")
                runs = []
                for i in range(args.rounds + 1):
                    b.goto(page_url + f"&round={i}")
                    timing = b.evaluate(
                        "JSON.stringify(performance.getEntriesByType('navigation')[0].toJSON())")
                    nav = json.loads(timing)
                    if i:
                        runs.append(nav["loadEventEnd"] / 1000)
                    rows_shown = b.evaluate("document.querySelectorAll('#listing tbody tr').length")
                rows.append(("page in Chromium, to load", statistics.median(runs), f"{rows_shown} rows"))
        else:
            rows.append(("page in Chromium", float("nan"), f"skipped: {why}"))

        floor = rows[1][1]
        print(f"\n{args.entries} entries, median of {args.rounds} rounds\n")
        print(f"| {'what':<30} | {'seconds':>8} | {'vs ls -l':>8} | note |")
        print(f"|{'-' * 32}|{'-' * 10}|{'-' * 10}|------|")
        for label, secs, note in rows:
            print(f"| {label:<30} | {secs:8.3f} | {secs / floor:7.2f}x | {note} |")
    finally:
        stop_server(server)


if __name__ == "__main__":
    main()
