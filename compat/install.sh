#!/usr/bin/env bash
# Create compat/.venv with the pinned, real Globus clients the compat suite drives.
#
# globus-cli 3.44.0 (and globus-sdk 4.9.0) declare `certifi>=2026.10.19`, a release
# that package mirrors may not carry yet. The two pinned distributions are therefore
# installed with --no-deps and their remaining requirements are installed explicitly
# (any available certifi works: it only supplies a CA bundle, and the suite talks
# plain HTTP to 127.0.0.1).
#
# Idempotent: does nothing when the venv already holds the right versions.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv"
python="${PYTHON:-python3}"

SDK_VERSION="4.9.0"
CLI_VERSION="3.44.0"

venv_ok() {
    [ -x "$venv/bin/python" ] || return 1
    "$venv/bin/python" - "$SDK_VERSION" "$CLI_VERSION" <<'PY' >/dev/null 2>&1
import importlib.metadata as md
import sys

sdk, cli = sys.argv[1], sys.argv[2]
assert md.version("globus-sdk") == sdk
assert md.version("globus-cli") == cli
for dist in ("requests", "pyjwt", "cryptography", "certifi", "click",
             "jmespath", "packaging", "pytest", "aiosmtpd", "blake3"):
    md.version(dist)
import globus_cli.login_manager  # noqa: F401  (imports the whole dependency chain)
import globus_sdk  # noqa: F401
import jwt.algorithms  # noqa: F401
import pytest  # noqa: F401
import aiosmtpd.controller  # noqa: F401  (the SMTP sink of the sharing tests)
import blake3  # noqa: F401  (uploads compared by BLAKE3, as the transfer engine hashes)
PY
}

if venv_ok; then
    echo "compat/install.sh: $venv already has globus-sdk==$SDK_VERSION globus-cli==$CLI_VERSION"
    exit 0
fi

echo "compat/install.sh: creating $venv"
rm -rf "$venv"
"$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip --disable-pip-version-check --quiet)

"${pip[@]}" install --no-deps "globus-sdk==$SDK_VERSION" "globus-cli==$CLI_VERSION"
"${pip[@]}" install \
    'requests>=2.34.2,<3' \
    'pyjwt[crypto]>=2,<3' \
    'cryptography!=3.4.0,>=3.3.1' \
    certifi \
    'click>=8.4,<8.5' \
    'jmespath==1.1.0' \
    'packaging>=17.0' \
    'typing_extensions>=4.0' \
    pytest \
    'aiosmtpd>=1.4,<2' \
    'blake3>=1,<2'
# aiosmtpd is a real SMTP server: the sharing tests' mail sink on 127.0.0.1.

if ! venv_ok; then
    echo "compat/install.sh: the venv at $venv is incomplete after installation" >&2
    exit 1
fi
echo "compat/install.sh: done"
