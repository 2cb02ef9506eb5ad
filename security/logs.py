"""AS-18: no secret issued during the whole run (client secrets, passwords, codes, PKCE verifiers, access,
refresh and id tokens, session cookies) appears in the server's log, written at debug level (tower_http at
trace) for the length of the suite."""

from __future__ import annotations

from world import World


def run(w: World) -> tuple[str, int, list[str]]:
    log = w.log_text()
    found = sorted(s for s in w.secrets.values if s in log)
    notes = []
    for s in found[:10]:
        at = log.find(s)
        line = log[max(0, log.rfind("\n", 0, at) + 1): log.find("\n", at)]
        notes.append(f"{s[:6]}… in: {line[:200]}")
    return (f"secrets in the debug log: {len(w.secrets.values)} secrets searched in {len(log) // 1024} KiB, "
            f"{len(found)} found", len(found), notes)
