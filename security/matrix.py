"""Object-level authorisation (API1 BOLA, API5 BFLA): every route the server mounts, called as the owner of the
objects it names and as two strangers (a person, and an application with its own client). A stranger's call
must be refused, or, on routes that answer about the caller's own things, must show none of the owner's
objects; and after every stranger's call the owner's objects are as they were.

The routes come from the server's own source (every `.route(...)` of crates/server/src/routes), so a route
added without a row here fails the suite ("uncovered")."""

from __future__ import annotations

import base64
import json
import re
import secrets
import typing as t
import uuid
from pathlib import Path

import requests

from browser import Browser
from world import GROUPS, OPENID, TRANSFER, Identity, World, collection_scope, manage_scope

PROJECTS = "urn:globus:auth:scope:auth.globus.org:manage_projects"

ROUTES_DIR = Path(__file__).resolve().parent.parent / "crates" / "server" / "src" / "routes"
METHOD = re.compile(r"\b(get|post|put|patch|delete)\(")


TUS = {"Tus-Resumable": "1.0.0"}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def mounted_routes() -> set[tuple[str, str]]:
    """(METHOD, path template) of every route in the routers' source."""
    out: set[tuple[str, str]] = set()
    for f in ROUTES_DIR.rglob("*.rs"):
        src = f.read_text()
        for m in re.finditer(r"\.route\(\s*\"([^\"]+)\"\s*,", src):
            depth, i = 1, m.end()
            start = i
            while depth and i < len(src):
                depth += {"(": 1, ")": -1}.get(src[i], 0)
                i += 1
            for method in METHOD.findall(src[start:i]):
                out.add((method.upper(), m.group(1)))
    return out


class Row(t.NamedTuple):
    method: str
    route: str
    # how callers authenticate: a token's resource server kind, "client" (client credentials at the OAuth
    # endpoints), "page" (browser pages, covered by the auth checks elsewhere) or "none"
    auth: str
    # deny: a stranger must be refused; own: a stranger may succeed but must see none of the owner's objects;
    # redacted: as own, and the host's folders behind the collections never show; public: anyone may succeed
    # (documents about the server itself)
    policy: str
    owner: str  # "admin" or "alice"
    path: t.Callable[[dict[str, str]], str]
    body: t.Callable[[dict[str, str]], t.Any] | None = None
    owner_check: bool = True
    # extra request headers (the tus protocol's, for the resumable uploads)
    headers: t.Callable[[dict[str, str]], dict[str, str]] | None = None


def rows() -> list[Row]:
    R = Row
    g = lambda c: c["guest"]  # noqa: E731
    rule_doc = lambda c: {"DATA_TYPE": "access", "principal_type": "identity",  # noqa: E731
                          "principal": c["stranger"], "path": "/", "permissions": "rw"}
    return [
        # Auth
        R("POST", "/v2/oauth2/token", "client", "own", "alice", lambda c: "/v2/oauth2/token",
          lambda c: {"grant_type": "refresh_token", "refresh_token": c["alice_refresh"]}, owner_check=False),
        R("POST", "/v2/oauth2/token/introspect", "client", "client-deny", "alice",
          lambda c: "/v2/oauth2/token/introspect", lambda c: {"token": c["alice_access"]}),
        R("POST", "/v2/oauth2/token/validate", "client", "client-deny", "alice",
          lambda c: "/v2/oauth2/token/validate", lambda c: {"token": c["alice_access"]}),
        R("POST", "/v2/oauth2/token/revoke", "client", "client-deny", "alice",
          lambda c: "/v2/oauth2/token/revoke", lambda c: {"token": c["alice_access"]}, owner_check=False),
        R("GET", "/v2/oauth2/userinfo", "auth", "own", "alice", lambda c: "/v2/oauth2/userinfo"),
        R("POST", "/v2/oauth2/userinfo", "auth", "own", "alice", lambda c: "/v2/oauth2/userinfo"),
        R("GET", "/v2/api/identities", "auth", "public", "alice", lambda c: f"/v2/api/identities?ids={c['alice']}"),
        R("GET", "/v2/api/identities/{id}/consents", "auth", "deny", "alice",
          lambda c: f"/v2/api/identities/{c['alice']}/consents"),
        R("POST", "/v2/api/clients", "auth", "own", "alice", lambda c: "/v2/api/clients",
          lambda c: {"client": {"name": "matrix " + secrets.token_hex(4), "public_client": True}}),
        R("DELETE", "/v2/api/clients/{id}", "auth", "deny", "alice", lambda c: f"/v2/api/clients/{c['alice_client']}",
          owner_check=False),
        R("DELETE", "/v2/api/identities/{id}/consents/{consent_id}", "auth", "deny", "alice",
          lambda c: f"/v2/api/identities/{c['alice']}/consents/{c['consent']}", owner_check=False),
        R("POST", "/v2/api/clients/{id}/scopes", "auth", "deny", "alice",
          lambda c: f"/v2/api/clients/{c['alice_client']}/scopes",
          lambda c: {"scope": {"name": "m", "description": "m", "scope_suffix": "m" + secrets.token_hex(3)}}),
        R("GET", "/v2/api/scopes", "auth", "own", "alice", lambda c: f"/v2/api/scopes?ids={c['scope']}"),
        R("GET", "/v2/api/scopes/{id}", "auth", "deny", "alice", lambda c: f"/v2/api/scopes/{c['scope']}"),
        R("PUT", "/v2/api/scopes/{id}", "auth", "deny", "alice", lambda c: f"/v2/api/scopes/{c['scope']}",
          lambda c: {"scope": {"description": "taken over"}}),
        R("DELETE", "/v2/api/scopes/{id}", "auth", "deny", "alice", lambda c: f"/v2/api/scopes/{c['scope']}",
          owner_check=False),
        R("GET", "/v2/api/policies", "auth", "own", "admin", lambda c: "/v2/api/policies"),
        R("POST", "/v2/api/policies", "auth", "own", "admin", lambda c: "/v2/api/policies",
          lambda c: {"policy": {"display_name": "m", "description": "", "project_id": None,
                                "high_assurance": False, "authentication_assurance_timeout": None,
                                "domain_constraints_include": ["example.org"], "domain_constraints_exclude": []}}),
        R("GET", "/v2/api/policies/{id}", "auth", "deny", "admin", lambda c: f"/v2/api/policies/{c['policy']}"),
        R("PUT", "/v2/api/policies/{id}", "auth", "deny", "admin", lambda c: f"/v2/api/policies/{c['policy']}",
          lambda c: {"policy": {"display_name": "taken over"}}, owner_check=False),
        R("DELETE", "/v2/api/policies/{id}", "auth", "deny", "admin", lambda c: f"/v2/api/policies/{c['policy']}",
          owner_check=False),
        # The hub's endpoint registry: anyone signed in may register an endpoint and read where endpoints are
        # (as Transfer's index shows them); only the owner or the endpoint itself removes one or reports for it.
        R("POST", "/v2/ferry/endpoints", "auth", "own", "alice", lambda c: "/v2/ferry/endpoints",
          lambda c: {"display_name": "matrix " + secrets.token_hex(3), "public_url": "https://dtn.example.org"}),
        R("GET", "/v2/ferry/endpoints", "auth", "public", "alice", lambda c: "/v2/ferry/endpoints"),
        R("GET", "/v2/ferry/endpoints/{id}", "auth", "public", "alice", lambda c: f"/v2/ferry/endpoints/{c['site']}"),
        R("DELETE", "/v2/ferry/endpoints/{id}", "auth", "deny", "alice",
          lambda c: f"/v2/ferry/endpoints/{c['site']}", owner_check=False),
        R("PUT", "/v2/ferry/endpoints/{id}/report", "auth", "deny", "alice",
          lambda c: f"/v2/ferry/endpoints/{c['site']}/report",
          lambda c: {"public_url": "https://evil.example.org", "display_name": "taken over",
                     "collections": [{"id": c["guest"], "display_name": "x", "collection_type": "guest"}]},
          owner_check=False),
        # An endpoint's reports of the tasks the hub gave it, and the credential for a task's source: the endpoint
        # itself only (client credentials), never a person's token.
        R("PUT", "/v2/ferry/endpoints/{id}/tasks", "auth", "deny", "alice",
          lambda c: f"/v2/ferry/endpoints/{c['site']}/tasks",
          lambda c: {"tasks": []}, owner_check=False),
        R("POST", "/v2/ferry/endpoints/{id}/tasks/{task}/credential", "auth", "deny", "alice",
          lambda c: f"/v2/ferry/endpoints/{c['site']}/tasks/{uuid.uuid4()}/credential", owner_check=False),
        R("GET", "/v2/ferry/endpoints/{id}/tasks/{task}/owner", "auth", "deny", "alice",
          lambda c: f"/v2/ferry/endpoints/{c['site']}/tasks/{uuid.uuid4()}/owner", owner_check=False),
        R("GET", "/v2/ferry/endpoints/{id}/groups/{group}", "auth", "deny", "alice",
          lambda c: f"/v2/ferry/endpoints/{c['site']}/groups/{c['group']}", owner_check=False),
        # The pull API (under /site at an endpoint; not served by a single-host server): a task credential only.
        R("GET", "/pull/{collection}/stat", "transfer", "deny", "alice",
          lambda c: f"/site/pull/{c['guest']}/stat?path=/", owner_check=False),
        R("GET", "/pull/{collection}/list", "transfer", "deny", "alice",
          lambda c: f"/site/pull/{c['guest']}/list?path=/", owner_check=False),
        R("POST", "/pull/{collection}/files", "transfer", "deny", "alice",
          lambda c: f"/site/pull/{c['guest']}/files", lambda c: {"dir": "/", "names": ["a"], "max": 10},
          owner_check=False),
        R("GET", "/.well-known/openid-configuration", "none", "public", "admin",
          lambda c: "/.well-known/openid-configuration"),
        R("GET", "/jwk.json", "none", "public", "admin", lambda c: "/jwk.json"),
        # Health and metrics (the world's server serves the metrics to loopback, where every caller here is):
        # no identity is asked for, and a scrape names no one's objects.
        R("GET", "/healthz", "none", "public", "admin", lambda c: "/healthz"),
        R("GET", "/readyz", "none", "public", "admin", lambda c: "/readyz"),
        R("GET", "/metrics", "none", "own", "admin", lambda c: "/metrics"),
        # Groups
        R("POST", "/v2/groups", "groups", "own", "alice", lambda c: "/v2/groups",
          lambda c: {"name": "matrix " + secrets.token_hex(4)}),
        R("GET", "/v2/groups/my_groups", "groups", "own", "alice", lambda c: "/v2/groups/my_groups"),
        R("GET", "/v2/groups/{id}", "groups", "deny", "alice", lambda c: f"/v2/groups/{c['group']}"),
        R("PUT", "/v2/groups/{id}", "groups", "deny", "alice", lambda c: f"/v2/groups/{c['group']}",
          lambda c: {"name": "taken over", "description": ""}, owner_check=False),
        R("POST", "/v2/groups/{id}", "groups", "deny", "alice", lambda c: f"/v2/groups/{c['group']}",
          lambda c: {"add": [{"identity_id": c["stranger"], "role": "admin"}]}, owner_check=False),
        R("DELETE", "/v2/groups/{id}", "groups", "deny", "alice", lambda c: f"/v2/groups/{c['group']}",
          owner_check=False),
        R("GET", "/v2/groups/{id}/policies", "groups", "deny", "alice", lambda c: f"/v2/groups/{c['group']}/policies"),
        R("PUT", "/v2/groups/{id}/policies", "groups", "deny", "alice",
          lambda c: f"/v2/groups/{c['group']}/policies",
          lambda c: {"group_visibility": "authenticated", "group_members_visibility": "members"}, owner_check=False),
        # Endpoint manager
        R("GET", "/api/info", "none", "public", "admin", lambda c: "/api/info"),
        # GCS lets any signed-in caller read the endpoint, gateways and public collections, without their private
        # policies; a stranger must never see the host's folders behind them.
        R("GET", "/api/endpoint", "manage", "redacted", "admin", lambda c: "/api/endpoint"),
        R("PUT", "/api/endpoint", "manage", "deny", "admin", lambda c: "/api/endpoint",
          lambda c: {"DATA_TYPE": "endpoint#1.2.0", "display_name": "taken over"}, owner_check=False),
        R("PATCH", "/api/endpoint", "manage", "deny", "admin", lambda c: "/api/endpoint",
          lambda c: {"DATA_TYPE": "endpoint#1.2.0", "display_name": "taken over"}, owner_check=False),
        R("PUT", "/api/endpoint/owner", "manage", "deny", "admin", lambda c: "/api/endpoint/owner",
          lambda c: {"DATA_TYPE": "owner_identity#1.0.0", "identity_id": c["stranger"]}, owner_check=False),
        R("GET", "/api/storage_gateways", "manage", "redacted", "admin", lambda c: "/api/storage_gateways"),
        R("POST", "/api/storage_gateways", "manage", "deny", "admin", lambda c: "/api/storage_gateways",
          lambda c: {"DATA_TYPE": "posix_storage_gateway#1.0.0", "display_name": "x", "root": "/",
                     "connector_id": "145812c8-decc-41f1-83cf-bb2a85a2a70b"}, owner_check=False),
        R("GET", "/api/storage_gateways/{id}", "manage", "redacted", "admin",
          lambda c: f"/api/storage_gateways/{c['gateway']}"),
        R("PUT", "/api/storage_gateways/{id}", "manage", "deny", "admin",
          lambda c: f"/api/storage_gateways/{c['gateway']}",
          lambda c: {"DATA_TYPE": "posix_storage_gateway#1.0.0", "display_name": "x", "root": "/"},
          owner_check=False),
        R("PATCH", "/api/storage_gateways/{id}", "manage", "deny", "admin",
          lambda c: f"/api/storage_gateways/{c['gateway']}",
          lambda c: {"DATA_TYPE": "posix_storage_gateway#1.0.0", "root": "/"}, owner_check=False),
        R("DELETE", "/api/storage_gateways/{id}", "manage", "deny", "admin",
          lambda c: f"/api/storage_gateways/{c['gateway']}", owner_check=False),
        R("GET", "/api/collections", "manage", "own", "admin", lambda c: "/api/collections"),
        R("POST", "/api/collections", "manage", "deny", "admin", lambda c: "/api/collections",
          lambda c: {"DATA_TYPE": "collection#1.10.0", "collection_type": "mapped",
                     "storage_gateway_id": c["gateway"], "collection_base_path": "/", "display_name": "x"},
          owner_check=False),
        R("GET", "/api/collections/{id}", "manage", "redacted", "admin", lambda c: f"/api/collections/{c['guest']}"),
        R("PUT", "/api/collections/{id}", "manage", "deny", "admin", lambda c: f"/api/collections/{c['guest']}",
          lambda c: {"DATA_TYPE": "collection#1.10.0", "display_name": "taken over"}, owner_check=False),
        R("PATCH", "/api/collections/{id}", "manage", "deny", "admin", lambda c: f"/api/collections/{c['guest']}",
          lambda c: {"DATA_TYPE": "collection#1.10.0", "display_name": "taken over"}, owner_check=False),
        R("DELETE", "/api/collections/{id}", "manage", "deny", "admin", lambda c: f"/api/collections/{c['guest']}",
          owner_check=False),
        R("PUT", "/api/collections/{id}/owner", "manage", "deny", "admin",
          lambda c: f"/api/collections/{c['guest']}/owner",
          lambda c: {"DATA_TYPE": "owner_identity#1.0.0", "identity_id": c["stranger"]}, owner_check=False),
        R("GET", "/api/roles", "manage", "own", "admin", lambda c: "/api/roles"),
        R("POST", "/api/roles", "manage", "deny", "admin", lambda c: "/api/roles",
          lambda c: {"DATA_TYPE": "role#1.0.0", "collection": c["guest"], "principal":
                     f"urn:globus:auth:identity:{c['stranger']}", "role": "administrator"}, owner_check=False),
        R("GET", "/api/roles/{id}", "manage", "deny", "admin", lambda c: f"/api/roles/{c['role']}"),
        R("DELETE", "/api/roles/{id}", "manage", "deny", "admin", lambda c: f"/api/roles/{c['role']}",
          owner_check=False),
        R("GET", "/api/sharing_policies", "manage", "own", "admin",
          lambda c: f"/api/sharing_policies?collection_id={c['mapped']}"),
        R("POST", "/api/sharing_policies", "manage", "deny", "admin", lambda c: "/api/sharing_policies",
          lambda c: {"DATA_TYPE": "sharing_policy#1.0.0", "collection_id": c["mapped"], "users": ["eve"],
                     "sharing_restrict_paths": {"DATA_TYPE": "path_restrictions#1.0.0", "read_write": ["/"]}},
          owner_check=False),
        R("GET", "/api/sharing_policies/{id}", "manage", "deny", "admin",
          lambda c: f"/api/sharing_policies/{c['sharing_policy']}"),
        R("DELETE", "/api/sharing_policies/{id}", "manage", "deny", "admin",
          lambda c: f"/api/sharing_policies/{c['sharing_policy']}", owner_check=False),
        R("GET", "/api/user_credentials", "manage", "own", "admin", lambda c: "/api/user_credentials"),
        R("POST", "/api/user_credentials", "manage", "own", "admin", lambda c: "/api/user_credentials",
          lambda c: {"DATA_TYPE": "user_credential#1.0.0", "storage_gateway_id": c["gateway"],
                     "identity_id": c["admin"], "username": "root"}, owner_check=False),
        R("GET", "/api/user_credentials/{id}", "manage", "deny", "admin",
          lambda c: f"/api/user_credentials/{c['credential']}"),
        R("PUT", "/api/user_credentials/{id}", "manage", "deny", "admin",
          lambda c: f"/api/user_credentials/{c['credential']}",
          lambda c: {"DATA_TYPE": "user_credential#1.0.0", "username": "root"}, owner_check=False),
        R("PATCH", "/api/user_credentials/{id}", "manage", "deny", "admin",
          lambda c: f"/api/user_credentials/{c['credential']}",
          lambda c: {"DATA_TYPE": "user_credential#1.0.0", "username": "root"}, owner_check=False),
        R("DELETE", "/api/user_credentials/{id}", "manage", "deny", "admin",
          lambda c: f"/api/user_credentials/{c['credential']}", owner_check=False),
        # HTTPS data
        R("GET", "/data/{collection}/{*path}", "guest-https", "deny", "alice", lambda c: f"/data/{c['guest']}/a.txt"),
        R("PUT", "/data/{collection}/{*path}", "guest-https", "deny", "alice",
          lambda c: f"/data/{c['guest']}/matrix.txt", lambda c: b"x", owner_check=False),
        R("DELETE", "/data/{collection}/{*path}", "guest-https", "deny", "alice",
          lambda c: f"/data/{c['guest']}/a.txt", owner_check=False),
        R("GET", "/data/{collection}", "guest-https", "deny", "alice", lambda c: f"/data/{c['guest']}",
          owner_check=False),
        R("PUT", "/data/{collection}", "guest-https", "deny", "alice", lambda c: f"/data/{c['guest']}",
          lambda c: b"x", owner_check=False),
        R("DELETE", "/data/{collection}", "guest-https", "deny", "alice", lambda c: f"/data/{c['guest']}",
          owner_check=False),
        # Resumable uploads (tus): alice's upload in progress is hers alone
        R("POST", "/uploads/{collection}", "guest-https", "deny", "alice", lambda c: f"/uploads/{c['guest']}",
          lambda c: b"", headers=lambda c: {**TUS, "Upload-Length": "1",
                                            "Upload-Metadata": "path " + b64("/matrix-upload.bin")}),
        R("PATCH", "/uploads/{collection}/{id}", "guest-https", "deny", "alice", lambda c: c["upload"],
          lambda c: b"x", owner_check=False,
          headers=lambda c: {**TUS, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}),
        R("DELETE", "/uploads/{collection}/{id}", "guest-https", "deny", "alice", lambda c: c["upload"],
          owner_check=False, headers=lambda c: TUS),
        # Transfer: the index and collections
        R("GET", "/v0.10/endpoint_search", "transfer", "own", "alice",
          lambda c: "/v0.10/endpoint_search?filter_scope=shared-with-me"),
        R("GET", "/v0.10/endpoint/{id}", "transfer", "own", "admin", lambda c: f"/v0.10/endpoint/{c['guest']}"),
        R("PUT", "/v0.10/endpoint/{id}", "transfer", "deny", "admin", lambda c: f"/v0.10/endpoint/{c['guest']}",
          lambda c: {"DATA_TYPE": "endpoint", "display_name": "taken over"}, owner_check=False),
        R("DELETE", "/v0.10/endpoint/{id}", "transfer", "deny", "admin", lambda c: f"/v0.10/endpoint/{c['guest']}",
          owner_check=False),
        R("GET", "/v0.10/endpoint/{id}/my_shared_endpoint_list", "transfer", "own", "admin",
          lambda c: f"/v0.10/endpoint/{c['mapped']}/my_shared_endpoint_list"),
        R("GET", "/v0.10/endpoint/{id}/shared_endpoint_list", "transfer", "deny", "admin",
          lambda c: f"/v0.10/endpoint/{c['mapped']}/shared_endpoint_list"),
        R("GET", "/v0.10/endpoint/{id}/server_list", "transfer", "own", "admin",
          lambda c: f"/v0.10/endpoint/{c['guest']}/server_list"),
        R("GET", "/v0.10/endpoint/{id}/my_effective_pause_rule_list", "transfer", "own", "admin",
          lambda c: f"/v0.10/endpoint/{c['guest']}/my_effective_pause_rule_list"),
        R("POST", "/v0.10/shared_endpoint", "transfer", "deny", "admin", lambda c: "/v0.10/shared_endpoint",
          lambda c: {"DATA_TYPE": "shared_endpoint", "host_endpoint": c["mapped"], "host_path": "/private/",
                     "display_name": "stolen"}, owner_check=False),
        # Transfer: permissions, roles, invitations
        R("GET", "/v0.10/endpoint/{id}/access_list", "transfer", "deny", "admin",
          lambda c: f"/v0.10/endpoint/{g(c)}/access_list"),
        R("POST", "/v0.10/endpoint/{id}/access", "transfer", "deny", "admin",
          lambda c: f"/v0.10/endpoint/{g(c)}/access", rule_doc, owner_check=False),
        R("GET", "/v0.10/endpoint/{id}/access/{rule}", "transfer", "deny", "admin",
          lambda c: f"/v0.10/endpoint/{g(c)}/access/{c['rule']}"),
        R("PUT", "/v0.10/endpoint/{id}/access/{rule}", "transfer", "deny", "admin",
          lambda c: f"/v0.10/endpoint/{g(c)}/access/{c['rule']}",
          lambda c: {"DATA_TYPE": "access", "permissions": "r"}, owner_check=False),
        R("DELETE", "/v0.10/endpoint/{id}/access/{rule}", "transfer", "deny", "admin",
          lambda c: f"/v0.10/endpoint/{g(c)}/access/{c['rule']}", owner_check=False),
        R("GET", "/v0.10/endpoint/{id}/invitation_list", "transfer", "deny", "admin",
          lambda c: f"/v0.10/endpoint/{g(c)}/invitation_list"),
        R("POST", "/v0.10/invitation/redeem", "transfer", "own", "alice", lambda c: "/v0.10/invitation/redeem",
          lambda c: {"code": secrets.token_urlsafe(32)}, owner_check=False),
        R("GET", "/v0.10/endpoint/{id}/role_list", "transfer", "deny", "admin",
          lambda c: f"/v0.10/endpoint/{g(c)}/role_list"),
        R("POST", "/v0.10/endpoint/{id}/role", "transfer", "deny", "admin",
          lambda c: f"/v0.10/endpoint/{g(c)}/role",
          lambda c: {"DATA_TYPE": "role", "principal_type": "identity", "principal": c["stranger"],
                     "role": "administrator"}, owner_check=False),
        R("GET", "/v0.10/endpoint/{id}/role/{role}", "transfer", "deny", "admin",
          lambda c: f"/v0.10/endpoint/{g(c)}/role/{c['role']}"),
        R("DELETE", "/v0.10/endpoint/{id}/role/{role}", "transfer", "deny", "admin",
          lambda c: f"/v0.10/endpoint/{g(c)}/role/{c['role']}", owner_check=False),
        # Transfer: file operations on the guest collection
        R("GET", "/v0.10/operation/endpoint/{id}/ls", "transfer", "deny", "alice",
          lambda c: f"/v0.10/operation/endpoint/{g(c)}/ls?path=/"),
        R("GET", "/v0.10/operation/endpoint/{id}/stat", "transfer", "deny", "alice",
          lambda c: f"/v0.10/operation/endpoint/{g(c)}/stat?path=/a.txt"),
        R("POST", "/v0.10/operation/endpoint/{id}/mkdir", "transfer", "deny", "alice",
          lambda c: f"/v0.10/operation/endpoint/{g(c)}/mkdir",
          lambda c: {"DATA_TYPE": "mkdir", "path": "/matrix-" + secrets.token_hex(3)}),
        R("POST", "/v0.10/operation/endpoint/{id}/rename", "transfer", "deny", "alice",
          lambda c: f"/v0.10/operation/endpoint/{g(c)}/rename",
          lambda c: {"DATA_TYPE": "rename", "old_path": "/a.txt", "new_path": "/stolen.txt"}, owner_check=False),
        # Transfer: tasks
        R("GET", "/v0.10/submission_id", "transfer", "own", "alice", lambda c: "/v0.10/submission_id"),
        R("POST", "/v0.10/transfer", "transfer", "deny", "alice", lambda c: "/v0.10/transfer",
          lambda c: {"DATA_TYPE": "transfer", "source_endpoint": g(c), "destination_endpoint": g(c),
                     "DATA": [{"DATA_TYPE": "transfer_item", "source_path": "/a.txt",
                               "destination_path": "/tx/m-" + secrets.token_hex(3)}]}),
        R("POST", "/v0.10/delete", "transfer", "deny", "alice", lambda c: "/v0.10/delete",
          lambda c: {"DATA_TYPE": "delete", "endpoint": g(c), "DATA": [{"DATA_TYPE": "delete_item",
                                                                      "path": "/a.txt"}]}, owner_check=False),
        R("GET", "/v0.10/task_list", "transfer", "own", "alice", lambda c: "/v0.10/task_list"),
        R("GET", "/v0.10/task/{id}", "transfer", "deny", "alice", lambda c: f"/v0.10/task/{c['task']}"),
        R("PUT", "/v0.10/task/{id}", "transfer", "deny", "alice", lambda c: f"/v0.10/task/{c['task']}",
          lambda c: {"DATA_TYPE": "task", "label": "taken over"}, owner_check=False),
        R("POST", "/v0.10/task/{id}/cancel", "transfer", "deny", "alice", lambda c: f"/v0.10/task/{c['task']}/cancel",
          owner_check=False),
        R("GET", "/v0.10/task/{id}/event_list", "transfer", "deny", "alice",
          lambda c: f"/v0.10/task/{c['task']}/event_list"),
        R("GET", "/v0.10/task/{id}/successful_transfers", "transfer", "deny", "alice",
          lambda c: f"/v0.10/task/{c['task']}/successful_transfers"),
        R("GET", "/v0.10/task/{id}/skipped_errors", "transfer", "deny", "alice",
          lambda c: f"/v0.10/task/{c['task']}/skipped_errors"),
        R("GET", "/v0.10/task/{id}/pause_info", "transfer", "deny", "alice",
          lambda c: f"/v0.10/task/{c['task']}/pause_info"),
        R("GET", "/v0.10/webhook_list", "transfer", "own", "alice", lambda c: "/v0.10/webhook_list"),
        R("POST", "/v0.10/webhook", "transfer", "own", "alice", lambda c: "/v0.10/webhook",
          lambda c: {"url": "http://127.0.0.1:9/never"}, owner_check=False),
        R("DELETE", "/v0.10/webhook/{id}", "transfer", "deny", "alice", lambda c: f"/v0.10/webhook/{uuid.uuid4()}",
          owner_check=False),
        # Transfer: bookmarks
        R("GET", "/v0.10/bookmark_list", "transfer", "own", "alice", lambda c: "/v0.10/bookmark_list"),
        R("POST", "/v0.10/bookmark", "transfer", "own", "alice", lambda c: "/v0.10/bookmark",
          lambda c: {"DATA_TYPE": "bookmark", "name": "m-" + secrets.token_hex(3), "endpoint_id": g(c),
                     "path": "/"}),
        R("GET", "/v0.10/bookmark/{id}", "transfer", "deny", "alice", lambda c: f"/v0.10/bookmark/{c['bookmark']}"),
        R("PUT", "/v0.10/bookmark/{id}", "transfer", "deny", "alice", lambda c: f"/v0.10/bookmark/{c['bookmark']}",
          lambda c: {"DATA_TYPE": "bookmark", "name": "taken over"}, owner_check=False),
        R("DELETE", "/v0.10/bookmark/{id}", "transfer", "deny", "alice",
          lambda c: f"/v0.10/bookmark/{c['bookmark']}", owner_check=False),
    ]


PAGES = {"/v2/oauth2/authorize", "/v2/web/login", "/invitation", "/v2/web/consent", "/v2/web/auth-code",
         "/v2/web/logout", "/v2/web/password", "/v2/web/login/upstream", "/v2/web/login/callback",
         "/v2/web/identities", "/v2/web/identities/link", "/v2/web/identities/unlink",
         # the web app: session pages; compat/test_web_app.py probes them as a stranger
         "/", "/static/ferry.js", "/static/ferry.css", "/file-manager", "/file-manager/mkdir",
         "/file-manager/rename", "/file-manager/delete", "/file-manager/upload", "/file-manager/share",
         "/file-manager/share/guest", "/file-manager/share/add", "/file-manager/share/remove", "/activity",
         "/activity/{id}", "/activity/{id}/progress", "/activity/{id}/cancel", "/file-manager/transfer",
         "/bookmarks", "/bookmarks/new", "/bookmarks/rename", "/bookmarks/delete",
         "/v2/web/identities/consents/revoke",
         # the administrator's console; compat/test_web_console.py probes it as a plain person
         "/console", "/console/audit", "/console/collections/{id}", "/console/collections/{id}/roles",
         "/console/collections/{id}/roles/remove",
         # groups; compat/test_web_groups.py probes them as a plain member and with forged forms
         "/groups", "/groups/new", "/groups/{id}", "/groups/{id}/membership", "/groups/{id}/delete"}


def _json(text: str) -> t.Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def run(w: World) -> tuple[str, int, list[str]]:
    table = rows()
    covered = {(r.method, r.route) for r in table} | {(m, p) for m, p in mounted_routes() if p in PAGES}
    uncovered = sorted(mounted_routes() - covered)
    notes = [f"uncovered route: {m} {p}" for m, p in uncovered]
    bad = len(uncovered)

    # The owner's objects.
    admin_t = w.token(w.admin, TRANSFER)
    manage = w.token(w.admin, manage_scope(w.endpoint))
    admin_auth = w.token(w.admin, "urn:globus:auth:scope:auth.globus.org:view_identity_set")
    alice = Browser(w, w.alice).tokens(f"{OPENID} {PROJECTS} {TRANSFER} {GROUPS} "
                                       f"{collection_scope(w.guest, 'https')}", offline=True)
    tok_of = {d["resource_server"]: d["access_token"] for d in [alice] + alice["other_tokens"]}
    carol = w._person("carol")
    ctx: dict[str, str] = {"guest": w.guest, "mapped": w.mapped, "alice": w.alice.id, "admin": w.admin.id,
                           "alice_refresh": alice.get("refresh_token", ""),
                           "alice_access": tok_of["transfer.api.globus.org"]}
    ctx["gateway"] = _json(w.call("GET", "/api/storage_gateways", manage)[1])["data"][0]["id"]
    made = requests.post(f"{w.url}/uploads/{w.guest}", timeout=60, headers={
        **TUS, "Authorization": f"Bearer {tok_of[w.guest]}", "Upload-Length": "10",
        "Upload-Metadata": "path " + b64("/alice-upload.bin")})
    assert made.status_code == 201, made.text
    ctx["upload"] = made.headers["Location"]
    rules = _json(w.call("GET", f"/v0.10/endpoint/{w.guest}/access_list", admin_t)[1])["DATA"]
    ctx["rule"] = next(r["id"] for r in rules if r.get("principal") == w.alice.id)
    st, text = w.call("POST", "/api/roles", manage, {"DATA_TYPE": "role#1.0.0", "collection": w.guest,
                                                     "principal": f"urn:globus:auth:identity:{carol.id}",
                                                     "role": "activity_monitor"})
    assert st < 300, text
    ctx["role"] = (_json(text) or {}).get("data", [{}])[0].get("id", str(uuid.uuid4()))
    st, text = w.call("POST", "/api/sharing_policies", manage, {
        "DATA_TYPE": "sharing_policy#1.0.0", "collection_id": w.mapped, "users": ["carol"],
        "sharing_restrict_paths": {"DATA_TYPE": "path_restrictions#1.0.0", "read_write": ["/share"]}})
    assert st < 300, text
    ctx["sharing_policy"] = (_json(text) or {}).get("data", [{}])[0].get("id", str(uuid.uuid4()))
    st, text = w.call("GET", "/api/user_credentials", manage)
    assert st < 300 and _json(text)["data"], text
    ctx["credential"] = _json(text)["data"][0]["id"]
    st, text = w.call("POST", "/v2/api/policies", admin_auth, {"policy": {
        "display_name": "matrix policy", "description": "", "project_id": None, "high_assurance": False,
        "authentication_assurance_timeout": None, "domain_constraints_include": ["example.org"],
        "domain_constraints_exclude": []}})
    assert st < 300, text
    ctx["policy"] = (_json(text) or {}).get("policy", {}).get("id", str(uuid.uuid4()))
    st, text = w.call("POST", "/v2/groups", tok_of["groups.api.globus.org"], {"name": "alice's private group"})
    ctx["group"] = (_json(text) or {}).get("id", str(uuid.uuid4()))
    st, text = w.call("POST", "/v0.10/transfer", tok_of["transfer.api.globus.org"], {
        "DATA_TYPE": "transfer", "source_endpoint": w.guest, "destination_endpoint": w.guest,
        "label": "alice's task", "DATA": [{"DATA_TYPE": "transfer_item", "source_path": "/a.txt",
                                           "destination_path": "/matrix-copy.txt"}]})
    ctx["task"] = (_json(text) or {}).get("task_id", str(uuid.uuid4()))
    st, text = w.call("POST", "/v0.10/bookmark", tok_of["transfer.api.globus.org"], {
        "DATA_TYPE": "bookmark", "name": "alice's bookmark", "endpoint_id": w.guest, "path": "/"})
    ctx["bookmark"] = (_json(text) or {}).get("id", str(uuid.uuid4()))
    st, text = w.call("POST", "/v2/api/clients", tok_of["auth.globus.org"], {
        "client": {"name": "alice's app", "public_client": True}})
    ctx["alice_client"] = (_json(text) or {}).get("client", {}).get("id", str(uuid.uuid4()))
    st, text = w.call("POST", f"/v2/api/clients/{ctx['alice_client']}/scopes", tok_of["auth.globus.org"], {
        "scope": {"name": "alice's scope", "description": "d", "scope_suffix": "alice_all"}})
    assert st < 300, text
    ctx["scope"] = _json(text)["scope"]["id"]
    st, text = w.call("POST", "/v2/ferry/endpoints", tok_of["auth.globus.org"], {
        "display_name": "alice's endpoint", "public_url": "https://alice-dtn.example.org"})
    assert st < 300, text
    ctx["site"] = _json(text)["endpoint_id"]
    st, text = w.call("GET", f"/v2/api/identities/{w.alice.id}/consents", tok_of["auth.globus.org"])
    assert st < 300, text
    ctx["consent"] = _json(text)["consents"][0]["id"]
    # (A guest collection's document names its user credential's id, as on GCS; the credential itself is
    # its owner's only, which the credential rows check.)
    private_ids = {ctx[k] for k in ("rule", "role", "sharing_policy", "policy", "group", "task", "bookmark",
                                    "alice_client", "scope", "consent")}

    # The callers.
    mallory = Browser(w, w.mallory).tokens(f"{OPENID} {PROJECTS} {TRANSFER} {GROUPS} "
                                           f"{collection_scope(w.guest, 'https')}")
    mallory_tok = {d["resource_server"]: d["access_token"] for d in [mallory] + mallory["other_tokens"]}
    st, eve = w.app_tokens(w.eve, f"{OPENID} {PROJECTS} {TRANSFER} {GROUPS} {manage_scope(w.endpoint)} "
                                  f"{collection_scope(w.guest, 'https')}")
    eve_tok = {d["resource_server"]: d["access_token"] for d in [eve] + eve.get("other_tokens", [])}
    rs = {"auth": "auth.globus.org", "transfer": "transfer.api.globus.org", "groups": "groups.api.globus.org",
          "manage": w.endpoint, "guest-https": w.guest}
    owners = {"admin": {rs["auth"]: admin_auth, rs["transfer"]: admin_t, rs["manage"]: manage,
                        rs["guest-https"]: w.token(w.admin, collection_scope(w.guest, "https"))},
              "alice": tok_of}
    strangers: list[tuple[str, dict[str, str], Identity]] = [
        ("mallory", {**mallory_tok, w.endpoint: w.token(w.mallory, manage_scope(w.endpoint))}, w.mallory),
        ("eve-app", eve_tok, w.eve),
    ]
    clients = {"owner": w.portal, "mallory": (w.admin.client_id, w.admin.client_secret), "eve-app":
               (w.eve.client_id, w.eve.client_secret)}
    calls = 0

    def send(row: Row, token: str | None, client: tuple[str | None, str | None] | None,
             who: str) -> tuple[int, str]:
        nonlocal calls
        calls += 1
        path = row.path({**ctx, "stranger": who})
        body = row.body({**ctx, "stranger": who}) if row.body else None
        if row.auth == "client":
            r = requests.post(w.url + path, auth=client, data=body, timeout=60)
            return r.status_code, r.text
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if row.headers:
            headers.update(row.headers({**ctx, "stranger": who}))
        if isinstance(body, bytes):
            r = requests.request(row.method, w.url + path, headers=headers, data=body, timeout=60,
                                 allow_redirects=False)
        else:
            r = requests.request(row.method, w.url + path, headers=headers, json=body, timeout=60,
                                 allow_redirects=False)
        return r.status_code, r.text

    def fingerprint() -> str:
        """The owner's objects as the owner sees them (compared before and after each stranger's call)."""
        parts = [
            w.call("GET", f"/v0.10/endpoint/{w.guest}/access_list", admin_t)[1],
            w.call("GET", f"/v0.10/endpoint/{w.guest}", admin_t)[1],
            w.call("GET", f"/v0.10/task/{ctx['task']}", tok_of["transfer.api.globus.org"])[1],
            w.call("GET", f"/v0.10/bookmark/{ctx['bookmark']}", tok_of["transfer.api.globus.org"])[1],
            w.call("GET", f"/v2/groups/{ctx['group']}", tok_of["groups.api.globus.org"])[1],
            w.call("GET", "/api/endpoint", manage)[1],
            w.call("GET", "/api/roles", manage)[1],
            w.call("GET", f"/v2/api/policies/{ctx['policy']}", admin_auth)[1],
            w.call("GET", f"/v2/api/scopes/{ctx['scope']}", tok_of["auth.globus.org"])[1],
            w.call("GET", f"/v2/api/identities/{w.alice.id}/consents", tok_of["auth.globus.org"])[1],
            str(sorted(p.name for p in (w.storage / "share").iterdir())),
        ]
        volatile = re.compile(r'"(last_used|updated|last_access|subtasks_[a-z_]+|status|nice_status[a-z_]*|'
                              r'bytes_[a-z_]+|files_[a-z_]+|completion_time|effective_bytes_per_second|faults|'
                              r'is_paused|directories|files|history_deleted|canceled_by_admin[a-z_]*)": [^,}]+')
        return volatile.sub("", "\n".join(parts))

    before = fingerprint()
    for row in table:
        if row.auth == "page":
            continue
        for who, toks, ident in strangers:
            token = toks.get(rs.get(row.auth, ""), None) if row.auth not in ("none", "client") else None
            st, text = send(row, token, clients.get(who), ident.id)
            wrong = False
            if row.policy == "deny" and st < 300:
                wrong = True
            elif row.policy == "client-deny":
                body = _json(text) or {}
                wrong = st < 300 and bool(body.get("active"))
            elif row.policy in ("own", "redacted") and st < 300 and any(i in text for i in private_ids):
                wrong = True
            elif row.policy == "redacted" and st < 300 and str(w.root) in text:
                wrong = True
            after = fingerprint()
            if after != before:
                wrong = True
                notes.append(f"{who}: {row.method} {row.route} changed the owner's objects")
                before = after
            if wrong:
                bad += 1
                shown = [k for k in ("rule", "role", "sharing_policy", "policy", "group", "task", "bookmark",
                                     "alice_client", "scope", "consent") if ctx[k] in text]
                notes.append(f"{who}: {row.method} {row.route} -> {st} (shows {shown or 'host paths'}) "
                             f"{text[:160]}")
        if row.owner_check and row.policy != "client-deny":
            token = owners[row.owner].get(rs.get(row.auth, ""), None)
            st, text = send(row, token, clients["owner"], ctx["alice"] if row.owner == "alice" else ctx["admin"])
            if st >= 300:
                notes.append(f"(probe check) the owner was refused {row.method} {row.route}: {st} {text[:120]}")
            before = fingerprint()
    return (f"authorisation matrix: {len(table)} route rows x 3 identities ({calls} calls), "
            f"{bad} unauthorised successes", bad, notes[:25])
