"""The security suite: one real `ferry serve`, attacked as the audits did, each probe printing its figure on
one line. Exits 1 when any figure is not 0.

    compat/.venv/bin/python security/run.py            # every probe (CI runs this; about N minutes)
    compat/.venv/bin/python security/run.py --long     # more race trials and symlink swaps
    compat/.venv/bin/python security/run.py --only traversal,matrix
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import audience  # noqa: E402
import checklist  # noqa: E402
import logs  # noqa: E402
import matrix  # noqa: E402
import races  # noqa: E402
import redirects  # noqa: E402
import symlinks  # noqa: E402
import traversal  # noqa: E402
import webhooks  # noqa: E402
from world import World  # noqa: E402

# In order; the log search runs last, over everything the others did. The checklist throttles a client on
# purpose, so it runs after the probes that use that client.
PROBES = [
    ("redirects", redirects.run),
    ("code-race", races.code_race),
    ("refresh-race", races.refresh_race),
    ("audience", audience.run),
    ("webhooks", webhooks.run),
    ("traversal", traversal.run),
    ("symlinks", symlinks.run),
    ("matrix", matrix.run),
    ("checklist", checklist.run),
    ("logs", logs.run),
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--long", action="store_true", help="more trials (the nightly figures)")
    ap.add_argument("--only", default="", help="comma-separated probe names")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (server log, trees)")
    ap.add_argument("--verbose", action="store_true", help="print every finding, not the first ones")
    args = ap.parse_args()
    only = {s for s in args.only.split(",") if s}
    work = Path(tempfile.mkdtemp(prefix="ferry-security-"))
    world = World(work, quick=not args.long)
    failed = 0
    started = time.monotonic()
    try:
        for name, probe in PROBES:
            if only and name not in only and name != "logs":
                continue
            t0 = time.monotonic()
            try:
                line, bad, notes = probe(world)
            except Exception:  # noqa: BLE001 (a crashed probe is a failed figure, with its traceback)
                line, bad, notes = f"{name}: the probe crashed", 1, traceback.format_exc().splitlines()[-12:]
            print(f"{line}  [{time.monotonic() - t0:.0f} s]", flush=True)
            for n in notes if args.verbose else notes[:8]:
                print(f"    {n}", flush=True)
            failed += 1 if bad else 0
    finally:
        world.stop()
        if args.keep or failed:
            print(f"work folder (server log: server/server.log): {work}")
        else:
            import shutil

            shutil.rmtree(work, ignore_errors=True)
    print(f"security suite: {failed} probes with findings, {time.monotonic() - started:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
