#!/usr/bin/env bash
# Install the web-app tests' browser kit: Debian's chromium (and a font, so that pages render text without
# one of their own) through scripts/debian-packages, then web-tests' pinned npm packages (playwright-core and
# axe-core, from package-lock.json) into web-tests/node_modules. playwright-core never downloads a browser.
# Idempotent: apt does nothing when the packages are there, npm nothing while node_modules is newer than
# package-lock.json.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"

"$here/../scripts/debian-packages" chromium fonts-dejavu-core

for tool in node npm; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "web-tests/install.sh: '$tool' is not on PATH; install Node.js 20 or later (Debian: apt-get install nodejs npm)" >&2
        exit 1
    fi
done

# npm ci writes node_modules/.package-lock.json last, so its age tells a finished install
if [ "$here/node_modules/.package-lock.json" -nt "$here/package-lock.json" ]; then
    echo "web-tests/install.sh: $here/node_modules is up to date"
    exit 0
fi

echo "web-tests/install.sh: npm ci in $here"
(cd "$here" && npm ci --no-audit --no-fund)
touch "$here/node_modules/.package-lock.json"
echo "web-tests/install.sh: done"
