"""The README's administration walkthrough, run as written on a fresh data directory: every `ferry` line of the
"Administration" section's shell blocks, in order, through a shell (for `< pw.txt` and `> audit.csv`), from a
folder whose `./ferry-data` is the server's data directory (the default a user who ran `ferry serve` there has).

What the test supplies, as a reader would: the placeholders (CLIENT_ID, GROUP_ID, ROLE_ID, GATEWAY_ID, MAPPED_ID,
GUEST_ID) from the output of the commands that create them, the files the README names (`pw.txt`, and
`restrict.json` and `map.json` with the contents the README gives), the example host folder `/srv/imaging` as a
temporary folder, the example URL as the test server's, and the browser part of `ferry login` (as the
administrator, or as alice where the README says so)."""

from __future__ import annotations

import re
import subprocess
import typing as t
from pathlib import Path

import pytest

from ferry_harness import (
    COMMAND_TIMEOUT,
    REPO_ROOT,
    CommandResult,
    FerryServer,
    ferry_env,
    ferry_login,
    start_server,
    stop_server,
)

README = REPO_ROOT / "README.md"
EXAMPLE_URL = "http://127.0.0.1:8400"

# Which command's output names which placeholder, and the row that holds it.
CREATES = [
    ('ferry client create --name "Cohort portal"', "CLIENT_ID", "Client ID"),
    ("ferry group create", "GROUP_ID", "Group ID"),
    ("ferry endpoint role create", "ROLE_ID", "Role ID"),
    ("ferry storage-gateway create", "GATEWAY_ID", "ID"),
    ("ferry collection create-guest", "GUEST_ID", "ID"),
    ("ferry collection create ", "MAPPED_ID", "ID"),
]


def section(text: str, title: str) -> str:
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else len(text)]


def commands(block_text: str) -> list[str]:
    """The `ferry` lines of the section's ```sh blocks, continuations joined, comments kept (they say who)."""
    out: list[str] = []
    for block in re.findall(r"```sh\n(.*?)```", block_text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.strip()
            if line.startswith("ferry "):
                out.append(line)
    return out


def inline_json(text: str, name: str) -> str:
    m = re.search(rf"`{re.escape(name)}` (?:is )?an? [^(]*\(`(\{{.*?\}})`", text, re.S)
    assert m, f"the README gives no contents for {name}"
    return re.sub(r"\s+", " ", m.group(1))


def row(output: str, title: str) -> str:
    m = re.search(rf"^{re.escape(title)}\s+(\S+)\s*$", output, re.M)
    assert m, f"no {title!r} row in:\n{output}"
    return m.group(1)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[FerryServer]:
    s = start_server(tmp_path_factory.mktemp("ferry-readme"))
    try:
        yield s
    finally:
        stop_server(s)


def test_the_administration_walkthrough_runs_as_written(server: FerryServer, tmp_path: Path) -> None:
    text = README.read_text()
    admin = section(text, "Administration")
    lines = commands(admin)
    assert len(lines) > 30, lines

    cwd = tmp_path / "cwd"
    cwd.mkdir()
    (cwd / "ferry-data").symlink_to(server.data_dir)
    (cwd / "pw.txt").write_text("tern-lantern-8841\n")
    (cwd / "restrict.json").write_text(inline_json(admin, "restrict.json"))
    (cwd / "map.json").write_text(inline_json(admin, "map.json"))
    imaging = tmp_path / "imaging"
    for d in ("cohorts/045/raw", "cohorts/alice"):
        (imaging / d).mkdir(parents=True)
    home = tmp_path / "home"
    home.mkdir()
    env = ferry_env()
    env["XDG_CONFIG_HOME"] = str(home)

    values: dict[str, str] = {}
    passwords = {"admin": server.admin["password"]}

    def substitute(line: str) -> str:
        line = line.replace(EXAMPLE_URL, server.base_url).replace("/srv/imaging", str(imaging))
        for name, value in values.items():
            line = re.sub(rf"\b{name}\b", value, line)
        return line

    for raw in lines:
        who = "alice" if "# as alice" in raw else "admin"
        line = substitute(raw)
        left = re.findall(r"\b(?:CLIENT|GROUP|ROLE|GATEWAY|MAPPED|GUEST)_ID\b", line)
        assert not left, f"{raw}: {left} not known yet (the README uses it before creating it)"
        if line.startswith("ferry login"):
            result = login(line, cwd, env, who, passwords[who])
        else:
            result = shell(line, cwd, env)
        assert result.returncode == 0, f"README line: {raw}\n{result.describe()}"
        for prefix, name, title in CREATES:
            if raw.startswith(prefix) and name not in values:
                values[name] = row(result.stdout, title)
                break
        if raw.startswith("ferry identity create alice"):
            passwords["alice"] = row(result.stdout, "Password (shown once)")
    assert {"CLIENT_ID", "GROUP_ID", "ROLE_ID", "GATEWAY_ID", "MAPPED_ID", "GUEST_ID"} <= set(values)
    # The guest collection is where the README says: /045 under the mapped collection's /cohorts.
    assert (cwd / "audit.csv").read_text().startswith("seq,time,identity")


def shell(line: str, cwd: Path, env: dict[str, str]) -> CommandResult:
    """One README line through bash, with the binary under test as `ferry`."""
    proc = subprocess.run(
        ["bash", "-c", f'ferry() {{ "$README_TEST_BINARY" "$@"; }}; {line}'],
        cwd=cwd,
        env={**env, "README_TEST_BINARY": str(binary())},
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        stdin=subprocess.DEVNULL,
    )
    return CommandResult([line], proc.returncode, proc.stdout, proc.stderr)


def binary() -> Path:
    from ferry_harness import ferry_binary

    return ferry_binary()


def login(line: str, cwd: Path, env: dict[str, str], who: str, password: str) -> CommandResult:
    """`ferry login …` as written; the browser part (log in as `who`, paste the code) done by the harness."""
    argv = [str(binary()), *line.split("#")[0].split()[1:]]
    return ferry_login(argv, env, f"{who}@ferry.local", password, cwd=cwd)
