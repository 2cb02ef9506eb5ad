"""Webhook targets (SSRF): every way to name this host, a private network, or an address that embeds one is
refused at registration. Nothing is sent anywhere: a refused URL is never called, and no public URL is
registered (a finishing task would call it, and this machine may not send traffic off loopback)."""

from __future__ import annotations

import json

from world import TRANSFER, World

PRIVATE = [
    "http://127.0.0.1/", "http://127.0.0.1:8400/v2/api/clients", "http://127.255.255.254/", "http://localhost/",
    "http://localhost./", "http://LOCALHOST/", "http://2130706433/", "http://017700000001/", "http://0x7f000001/",
    "http://0x7f.0.0.1/", "http://0177.0.0.1/", "http://127.1/", "http://127.0.1/", "http://0/", "http://0.0.0.0/",
    "http://0.1.2.3/", "http://10.0.0.1/", "http://10.255.255.255/", "http://172.16.0.1/", "http://172.31.1.1/",
    "http://192.168.0.1/", "http://100.64.0.1/", "http://169.254.169.254/latest/meta-data/",
    "http://169.254.0.1/", "http://192.0.0.170/", "http://192.0.2.1/", "http://198.18.0.1/", "http://198.19.1.1/",
    "http://198.51.100.1/", "http://203.0.113.1/", "http://224.0.0.1/", "http://239.1.1.1/", "http://240.0.0.1/",
    "http://255.255.255.255/", "http://[::1]/", "http://[::]/", "http://[0:0:0:0:0:0:0:1]/",
    "http://[::ffff:127.0.0.1]/", "http://[::ffff:7f00:1]/", "http://[::ffff:10.0.0.1]/", "http://[::127.0.0.1]/",
    "http://[::ffff:169.254.169.254]/", "http://[64:ff9b::7f00:1]/", "http://[64:ff9b::a9fe:a9fe]/",
    "http://[64:ff9b:1::1]/", "http://[2002:7f00:1::1]/", "http://[2002:c0a8:101::1]/", "http://[2001::1]/",
    "http://[2001:db8::1]/", "http://[fc00::1]/", "http://[fd00::1]/", "http://[fe80::1]/", "http://[fec0::1]/",
    "http://[ff02::1]/", "http://[100::1]/", "https://127.0.0.1:443/", "http://user:pw@example.org/",
    "ftp://example.org/", "file:///etc/passwd", "gopher://127.0.0.1:25/", "http://%31%32%37.0.0.1/",
    "http://127.0.0.1%2f@example.org/", "http://127.0.0.1#@example.org/",
]


def run(w: World) -> tuple[str, int, list[str]]:
    token = w.token(w.alice, TRANSFER)
    accepted = 0
    notes: list[str] = []
    for url in PRIVATE:
        st, text = w.call("POST", "/v0.10/webhook", token, {"url": url})
        if st < 300:
            accepted += 1
            notes.append(f"{url} accepted")
            hid = json.loads(text).get("id")
            if hid:
                w.call("DELETE", f"/v0.10/webhook/{hid}", token)
    st, listed = w.call("GET", "/v0.10/webhook_list", token)
    left = len(json.loads(listed).get("DATA", [])) if st == 200 else -1
    if left:
        notes.append(f"{left} webhooks are stored after the probe")
    return (f"webhook targets: {len(PRIVATE)} private or local forms, {accepted} accepted", accepted, notes)
