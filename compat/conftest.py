"""Fixtures for the compat suite: real Ferry servers, real Globus SDK and CLI."""

from __future__ import annotations

import typing as t

import pytest

from ferry_harness import (
    RUNNING_SERVERS,
    FerryServer,
    new_person,
    sdk_pointed_at,
    start_server,
    stop_server,
)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> t.Any:
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for server in RUNNING_SERVERS:
            report.sections.append(
                (f"ferry server log ({server.base_url}, last lines)", server.log_tail(6000))
            )


@pytest.fixture(scope="session")
def ferry(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[FerryServer]:
    """The shared Ferry server (default configuration). While it runs, the process
    environment points the in-process Globus SDK at it, exactly as a user would."""
    server = start_server(tmp_path_factory.mktemp("ferry-main"))
    try:
        with sdk_pointed_at(server.base_url):
            yield server
    finally:
        stop_server(server)


@pytest.fixture(scope="session")
def admin(ferry: FerryServer) -> dict[str, str]:
    """Contents of the server's admin-credentials.json."""
    return ferry.admin


@pytest.fixture(scope="session")
def person(ferry: FerryServer) -> dict[str, str]:
    return new_person(ferry, "alice")


@pytest.fixture(scope="session")
def native_client(ferry: FerryServer) -> dict[str, t.Any]:
    created = ferry.create_client("compat native app", native=True)
    assert created.get("client_id"), created
    assert not created.get("client_secret"), f"native client got a secret: {created}"
    return created
