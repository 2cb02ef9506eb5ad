#!/usr/bin/env bash
# Install compat/oidc's pinned packages (oidc-provider 9.13.3 and jose, from package-lock.json) into
# compat/oidc/node_modules: the OpenID Connect provider of the federated sign-in tests.
# Idempotent: does nothing while node_modules is newer than package-lock.json.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"

for tool in node npm; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "compat/oidc/install.sh: '$tool' is not on PATH; install Node.js 20.12 or later (Debian: apt-get install nodejs npm)" >&2
        exit 1
    fi
done

# npm ci writes node_modules/.package-lock.json last, so its age tells a finished install
if [ "$here/node_modules/.package-lock.json" -nt "$here/package-lock.json" ]; then
    echo "compat/oidc/install.sh: $here/node_modules is up to date"
    exit 0
fi

echo "compat/oidc/install.sh: npm ci in $here"
(cd "$here" && npm ci --no-audit --no-fund)
touch "$here/node_modules/.package-lock.json"
echo "compat/oidc/install.sh: done"
