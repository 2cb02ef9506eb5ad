"""What a person does from the client site, run inside its namespace by test_ferry_sites.py (a browser's part
done by the compat harness):

    ferry_driver.py join HUB_URL PUBLIC_URL DATA_DIR HOME USER PASSWORD [NAME]   login at the hub, set an
                                                                                 endpoint up
    ferry_driver.py get HUB_URL COLLECTION PATH OUT HOME USER PASSWORD    login for the collection's files, get one
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "compat"))
from ferry_harness import ferry_env, ferry_login  # noqa: E402


def main() -> int:
    mode, hub = sys.argv[1], sys.argv[2]
    ferry = os.environ["FERRY_BIN"]
    if mode == "join":
        public, data, home, user, password = sys.argv[3:8]
        name = sys.argv[8] if len(sys.argv) > 8 else "Site A"
        env = {**ferry_env(), "XDG_CONFIG_HOME": home}
        r = ferry_login([ferry, "login", "--url", hub], env, user, password)
        if r.returncode != 0:
            print(r.describe(), file=sys.stderr)
            return 1
        argv = [ferry, "endpoint", "setup", "--hub", hub, "--public-url", public, "--display-name", name,
                "--data-dir", data]
    else:
        collection, path, out, home, user, password = sys.argv[3:9]
        env = {**ferry_env(), "XDG_CONFIG_HOME": home}
        r = ferry_login([ferry, "login", "--collection", collection], env, user, password)
        if r.returncode != 0:
            print(r.describe(), file=sys.stderr)
            return 1
        argv = [ferry, "get", f"{collection}:{path}", out, "--url", hub]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    sys.stdout.write(done.stdout)
    sys.stderr.write(done.stderr)
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
