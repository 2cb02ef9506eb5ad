"""Fixtures for the compat suite: real Ferry servers, real Globus SDK and CLI."""

from __future__ import annotations

import os
import typing as t

import pytest

from ferry_harness import (
    RUNNING_SERVERS,
    SERVICE_NAMES,
    FerryServer,
    new_person,
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
    saved = {k: v for k, v in os.environ.items() if k.startswith("GLOBUS_")}
    for key in saved:
        del os.environ[key]
    os.environ["GLOBUS_SDK_ENVIRONMENT"] = "ferry"
    os.environ["GLOBUS_SDK_HTTP_TIMEOUT"] = "30"
    for name in SERVICE_NAMES:
        os.environ[f"GLOBUS_SDK_SERVICE_URL_{name}"] = server.base_url + "/"
    no_proxy = os.environ.get("NO_PROXY")
    os.environ["NO_PROXY"] = "127.0.0.1,localhost"
    try:
        yield server
    finally:
        for key in [k for k in os.environ if k.startswith("GLOBUS_")]:
            del os.environ[key]
        os.environ.update(saved)
        if no_proxy is None:
            os.environ.pop("NO_PROXY", None)
        else:
            os.environ["NO_PROXY"] = no_proxy
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
