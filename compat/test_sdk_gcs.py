"""globus-sdk 4.9.0's GCSClient against Ferry's endpoint manager API (/api), over HTTPS with
Ferry's generated CA, as an administrator's application would use it."""

from __future__ import annotations

import os
import typing as t
import uuid
from pathlib import Path

import globus_sdk
import pytest
import requests

from ferry_harness import (
    SERVICE_NAMES,
    FerryServer,
    globus_executable,
    run,
    start_server,
    stop_server,
)

POSIX = "145812c8-decc-41f1-83cf-bb2a85a2a70b"


@pytest.fixture(scope="module")
def tls_ferry(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[FerryServer]:
    server = start_server(tmp_path_factory.mktemp("ferry-tls"), tls=True)
    saved = os.environ.get("GLOBUS_SDK_VERIFY_SSL")
    os.environ["GLOBUS_SDK_VERIFY_SSL"] = str(server.ca_path)
    try:
        yield server
    finally:
        if saved is None:
            os.environ.pop("GLOBUS_SDK_VERIFY_SSL", None)
        else:
            os.environ["GLOBUS_SDK_VERIFY_SSL"] = saved
        stop_server(server)


@pytest.fixture(scope="module")
def endpoint_id(tls_ferry: FerryServer) -> str:
    # /info is unauthenticated: the client learns the endpoint's id (its resource server) from it.
    info = globus_sdk.GCSClient(tls_ferry.base_url).get_gcs_info()
    assert info["endpoint_id"] == info["client_id"]
    return str(info["endpoint_id"])


def app_gcs(server: FerryServer, client_id: str, secret: str, endpoint: str) -> globus_sdk.GCSClient:
    auth = globus_sdk.ConfidentialAppAuthClient(client_id, secret, base_url=server.base_url + "/")
    scope = globus_sdk.GCSClient.get_gcs_endpoint_scopes(endpoint).manage_collections
    tokens = auth.oauth2_client_credentials_tokens(requested_scopes=[scope])
    token = tokens.by_resource_server[endpoint]["access_token"]
    return globus_sdk.GCSClient(
        server.base_url, authorizer=globus_sdk.AccessTokenAuthorizer(token)
    )


@pytest.fixture(scope="module")
def gcs(tls_ferry: FerryServer, endpoint_id: str) -> globus_sdk.GCSClient:
    a = tls_ferry.admin
    return app_gcs(tls_ferry, a["client_id"], a["client_secret"], endpoint_id)


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("gcs-storage")
    (root / "projects" / "p1").mkdir(parents=True)
    (root / "private").mkdir()
    return root


def test_endpoint_document(gcs: globus_sdk.GCSClient, endpoint_id: str) -> None:
    ep = gcs.get_endpoint()
    assert ep["id"] == endpoint_id
    assert ep["DATA_TYPE"].startswith("endpoint#")
    updated = gcs.update_endpoint(
        globus_sdk.EndpointDocument(display_name="Imaging core DTN", keywords=["cryo-em"])
    )
    assert updated["display_name"] == "Imaging core DTN"
    assert gcs.get_endpoint()["keywords"] == ["cryo-em"]


def test_storage_gateway_and_collections(
    gcs: globus_sdk.GCSClient, tls_ferry: FerryServer, storage: Path
) -> None:
    doc = globus_sdk.StorageGatewayDocument(
        display_name="Imaging POSIX",
        connector_id=POSIX,
        root=str(storage),
        # Accounts in this POSIX group are refused; the application's account (no host account) is not in it.
        policies=globus_sdk.POSIXStoragePolicies(groups_deny=["imaging-banned"]),
        additional_fields={
            "restrict_paths": {
                "DATA_TYPE": "path_restrictions#1.0.0",
                "read_write": ["/projects"],
                "none": ["/private"],
            }
        },
    )
    sg = gcs.create_storage_gateway(doc)
    sg_id = sg["id"]
    assert sg["policies"]["groups_deny"] == ["imaging-banned"]
    names = [g["display_name"] for g in gcs.get_storage_gateway_list()]
    assert "Imaging POSIX" in names
    shown = gcs.get_storage_gateway(sg_id, include="private_policies")
    assert shown["restrict_paths"]["none"] == ["/private"]
    assert "restrict_paths" not in gcs.get_storage_gateway(sg_id)

    mapped = gcs.create_collection(
        globus_sdk.MappedCollectionDocument(
            storage_gateway_id=sg_id,
            collection_base_path="/",
            display_name="Imaging data",
            allow_guest_collections=True,
            sharing_restrict_paths={"DATA_TYPE": "path_restrictions#1.0.0", "read_write": ["/projects"]},
        )
    )
    assert mapped["collection_type"] == "mapped"
    assert mapped["https_url"].startswith(tls_ferry.base_url)
    listed = [c["id"] for c in gcs.get_collection_list(filter="mapped_collections")]
    assert mapped["id"] in listed

    # A guest collection through the SDK's document, with a user credential first (as the official example).
    cred = gcs.create_user_credential(globus_sdk.UserCredentialDocument(storage_gateway_id=sg_id))
    guest = gcs.create_collection(
        globus_sdk.GuestCollectionDocument(
            mapped_collection_id=mapped["id"],
            collection_base_path="/projects/p1",
            display_name="Project 1 share",
            user_credential_id=cred["id"],
        )
    )
    assert guest["collection_type"] == "guest"
    guests = [c["id"] for c in gcs.get_collection_list(mapped_collection_id=mapped["id"])]
    assert guest["id"] in guests

    # Outside the sharing restrictions: refused with the manager API's error envelope.
    with pytest.raises(globus_sdk.GCSAPIError) as err:
        gcs.create_collection(
            globus_sdk.GuestCollectionDocument(
                mapped_collection_id=mapped["id"],
                collection_base_path="/private",
                display_name="nope",
            )
        )
    assert err.value.http_status == 403

    # Update (PATCH) and delete; a mapped collection is delete-protected until told otherwise.
    gcs.update_collection(mapped["id"], globus_sdk.MappedCollectionDocument(description="raw images"))
    assert gcs.get_collection(mapped["id"])["description"] == "raw images"
    with pytest.raises(globus_sdk.GCSAPIError) as err:
        gcs.delete_collection(mapped["id"])
    assert err.value.http_status == 409
    gcs.update_collection(mapped["id"], globus_sdk.MappedCollectionDocument(delete_protected=False))
    gcs.delete_collection(mapped["id"])
    with pytest.raises(globus_sdk.GCSAPIError) as err:
        gcs.get_collection(guest["id"])
    assert err.value.http_status == 404


def test_bad_documents_name_the_field(gcs: globus_sdk.GCSClient) -> None:
    with pytest.raises(globus_sdk.GCSAPIError) as err:
        gcs.create_storage_gateway(
            globus_sdk.StorageGatewayDocument(
                display_name="bad",
                connector_id=POSIX,
                additional_fields={"restrict_paths": {"read": ["relative/path"]}},
            )
        )
    assert err.value.http_status == 400
    assert "restrict_paths.read[0]" in err.value.message


def test_roles(
    gcs: globus_sdk.GCSClient, tls_ferry: FerryServer, endpoint_id: str
) -> None:
    created = tls_ferry.create_client("GCS role holder")
    principal = f"urn:globus:auth:identity:{created['client_id']}"
    role = gcs.create_role(
        globus_sdk.GCSRoleDocument(principal=principal, role="activity_monitor")
    )
    assert any(r["id"] == role["id"] for r in gcs.get_role_list())
    # The role holder may read the endpoint's roles, and may not grant any.
    holder = app_gcs(tls_ferry, created["client_id"], created["client_secret"], endpoint_id)
    assert any(r["role"] == "owner" for r in holder.get_role_list())
    with pytest.raises(globus_sdk.GCSAPIError) as err:
        holder.create_role(
            globus_sdk.GCSRoleDocument(principal=principal, role="administrator")
        )
    assert err.value.http_status == 403
    gcs.delete_role(role["id"])
    with pytest.raises(globus_sdk.GCSAPIError) as err:
        holder.get_role_list()
    assert err.value.http_status == 403
    # An unknown principal is a bad request, not a grant to nobody.
    with pytest.raises(globus_sdk.GCSAPIError) as err:
        gcs.create_role(
            globus_sdk.GCSRoleDocument(
                principal=f"urn:globus:auth:identity:{uuid.uuid4()}", role="administrator"
            )
        )
    assert err.value.http_status == 400


def fresh_gateway(gcs: globus_sdk.GCSClient, root: Path, name: str) -> tuple[str, str]:
    """A POSIX gateway over `root` and a mapped collection on it that allows guest collections."""
    sg = gcs.create_storage_gateway(
        globus_sdk.StorageGatewayDocument(display_name=name, connector_id=POSIX, root=str(root))
    )
    mapped = gcs.create_collection(
        globus_sdk.MappedCollectionDocument(
            storage_gateway_id=sg["id"], collection_base_path="/", display_name=f"{name} data",
            allow_guest_collections=True,
        )
    )
    return str(sg["id"]), str(mapped["id"])


def test_the_sdk_guest_collection_and_https_examples(
    tls_ferry: FerryServer, gcs: globus_sdk.GCSClient, endpoint_id: str,
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The SDK's published guest-collection script, in its shapes: a client with the endpoint scope depending on
    the mapped collection's data_access, a user credential naming the client and its local account, and a guest
    collection document with `public="True"` (a string). Then Globus's HTTPS pattern: `https_server + path`,
    and the documented way to tell a GCS 5 guest collection from other kinds (gcs_version's major, host id)."""
    # The environment a Globus SDK user sets for this server (what `ferry serve` prints): no other host is asked.
    monkeypatch.setenv("GLOBUS_SDK_ENVIRONMENT", "ferry")
    for service in SERVICE_NAMES:
        monkeypatch.setenv(f"GLOBUS_SDK_SERVICE_URL_{service}", tls_ferry.base_url + "/")
    root = tmp_path_factory.mktemp("example-storage")
    (root / "hello.txt").write_text("hello from the guest collection\n")
    sg, mapped = fresh_gateway(gcs, root, "Example")
    a = tls_ferry.admin
    client_id, local_username = a["client_id"], a["client_id"]
    scope = globus_sdk.GCSClient.get_gcs_endpoint_scopes(endpoint_id).manage_collections.with_dependency(
        globus_sdk.GCSClient.get_gcs_collection_scopes(mapped).data_access
    )
    confidential = globus_sdk.ConfidentialAppAuthClient(client_id, a["client_secret"])
    authorizer = globus_sdk.ClientCredentialsAuthorizer(confidential, scopes=scope)
    client = globus_sdk.GCSClient(tls_ferry.base_url, authorizer=authorizer)
    client.create_user_credential(
        globus_sdk.UserCredentialDocument(
            storage_gateway_id=sg, identity_id=client_id, username=local_username
        )
    )
    response = client.create_collection(
        globus_sdk.GuestCollectionDocument(
            public="True", collection_base_path="/", display_name="guest_collection",
            mapped_collection_id=mapped,
        )
    )
    guest = response["id"]
    assert response["public"] is True

    transfer_token = confidential.oauth2_client_credentials_tokens(
        requested_scopes=globus_sdk.TransferClient.scopes.all
    ).by_resource_server["transfer.api.globus.org"]["access_token"]
    tc = globus_sdk.TransferClient(authorizer=globus_sdk.AccessTokenAuthorizer(transfer_token))
    doc = tc.get_endpoint(guest)
    major, _minor, _patch = doc["gcs_version"].split(".")
    assert major == "5" and doc["host_endpoint_id"] is not None, doc.data
    https_token = confidential.oauth2_client_credentials_tokens(
        requested_scopes=globus_sdk.GCSClient.get_gcs_collection_scopes(guest).https
    ).by_resource_server[guest]["access_token"]
    got = requests.get(
        f"{doc['https_server']}/hello.txt",
        headers={"Authorization": f"Bearer {https_token}"},
        verify=str(tls_ferry.ca_path),
        timeout=30,
    )
    assert got.status_code == 200, got.text
    assert got.text == "hello from the guest collection\n"


def test_globus_cli_creates_a_user_credential(
    tls_ferry: FerryServer, gcs: globus_sdk.GCSClient, endpoint_id: str,
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path,
) -> None:
    """`globus endpoint user-credential create posix` prints the answer's message (and crashed without one)."""
    sg, _mapped = fresh_gateway(gcs, tmp_path_factory.mktemp("cli-cred-storage"), "CLI credential")
    a = tls_ferry.admin
    env = tls_ferry.env_for(tmp_path, client_id=a["client_id"], client_secret=a["client_secret"])
    env["GLOBUS_SDK_VERIFY_SSL"] = str(tls_ferry.ca_path)
    r = run([globus_executable(), "endpoint", "user-credential", "create", "posix", endpoint_id, sg,
             a["client_id"], a["client_id"]], env=env)
    assert r.returncode == 0, r.describe()
    assert "Created User Credential" in r.stdout, r.describe()
    listed = run([globus_executable(), "endpoint", "user-credential", "list", endpoint_id, "-F", "json"],
                 env=env)
    assert listed.returncode == 0, listed.describe()
    assert any(c["storage_gateway_id"] == sg for c in listed.json()["data"]), listed.describe()
