//! The administrator's console: the endpoint, its storage gateways and collections; a collection's overview
//! and roles (granting and revoking); the audit log. Every page asks the endpoint domain, as the manager API
//! does, so the same role checks apply: the endpoint's owner and administrators see everything, a
//! collection's administrators their collections, anyone else gets a refusal that reveals nothing.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use ferry_core::endpoint::RolePrincipal;
use ferry_endpoint::{Administers, AuditQuery, CollectionQuery};
use serde_json::Value;
use uuid::Uuid;

use super::activity::text;
use super::files::folder_url;
use super::{Done, Posted, Section, Visitor, link, notice, shell};
use crate::error::AppError;
use crate::routes::AppState;
use crate::routes::web::escape;

const PER_PAGE: i64 = 50;

/// The roles a collection grants, as the form offers them: the GCS name and what it lets a person do.
const ROLES: [(&str, &str); 4] = [
    (
        "administrator",
        "Administrator: changes the collection and its roles",
    ),
    ("access_manager", "Access manager: decides who has access"),
    (
        "activity_manager",
        "Activity manager: sees and cancels its tasks",
    ),
    ("activity_monitor", "Activity monitor: sees its tasks"),
];

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console", get(overview))
        .route("/console/audit", get(audit))
        .route("/console/collections/{id}", get(collection))
        .route("/console/collections/{id}/roles", post(add_role))
        .route("/console/collections/{id}/roles/remove", post(remove_role))
}

/// The page for someone who administers nothing: says who may use the console, shows nothing of it.
fn refused(v: &Visitor) -> Response {
    let body = format!(
        "<p class=\"notice err\" role=\"alert\" id=\"refused\">The console is for the endpoint's owner and \
         administrators, and for the administrators of its collections. You are signed in as <strong>{}</strong>, \
         who holds none of these roles, so there is nothing for you here.</p>\
         <p>If you should manage this endpoint or one of its collections, ask its owner or an administrator to \
         give you the administrator role. Your files are in the <a href=\"/file-manager\">File Manager</a>.</p>",
        escape(v.username())
    );
    shell(
        StatusCode::FORBIDDEN,
        Some(v.username()),
        Section::Console,
        "Console",
        &body,
    )
}

/// The visitor with what they administer, or the page to answer instead (login, refusal).
async fn administrator(
    s: &AppState,
    v: Visitor,
) -> Result<Result<(Visitor, Administers), Response>, AppError> {
    let adm = s.endpoint.administers(&v.who).await?;
    if !adm.anything() {
        return Ok(Err(refused(&v)));
    }
    Ok(Ok((v, adm)))
}

/// The collections the visitor administers, as the manager API lists them (`filter=managed_by_me`).
async fn administered(s: &AppState, v: &Visitor) -> Result<Vec<Value>, AppError> {
    let query = CollectionQuery {
        managed_by_me: true,
        ..CollectionQuery::default()
    };
    Ok(s.endpoint.list_collections(&v.who, &query).await?)
}

/// A collection id of a console URL; the text of a bad one is not repeated on the page.
fn collection_id(raw: &str) -> Result<Uuid, AppError> {
    Uuid::parse_str(raw.trim()).map_err(|_| {
        AppError::new(
            StatusCode::NOT_FOUND,
            "There is no such collection: choose one from the Console.",
        )
    })
}

/// Names of the people, groups and collections a page shows, each looked up once.
struct Names<'a> {
    s: &'a AppState,
    known: HashMap<Uuid, String>,
}

impl<'a> Names<'a> {
    fn new(s: &'a AppState) -> Self {
        Self {
            s,
            known: HashMap::new(),
        }
    }

    async fn identity(&mut self, id: Uuid) -> String {
        if let Some(n) = self.known.get(&id) {
            return n.clone();
        }
        let name = match self.s.auth.store().get_identity(id).await {
            Ok(Some(i)) => i.username,
            _ => format!("identity {id}"),
        };
        self.known.insert(id, name.clone());
        name
    }

    async fn group(&mut self, id: Uuid) -> String {
        if let Some(n) = self.known.get(&id) {
            return n.clone();
        }
        let name = match self.s.auth.store().get_group(id).await {
            Ok(Some(g)) => format!("group {}", g.name),
            _ => format!("group {id}"),
        };
        self.known.insert(id, name.clone());
        name
    }

    /// A role's principal (`urn:globus:auth:identity:…`, `…:group:…`) in words.
    async fn principal(&mut self, urn: &str) -> String {
        match RolePrincipal::parse(urn) {
            Some(RolePrincipal::Identity(id)) => self.identity(id).await,
            Some(RolePrincipal::Group(id)) => self.group(id).await,
            None => urn.to_string(),
        }
    }

    /// An audit record's detail with the principals it names in words.
    async fn detail(&mut self, detail: &str) -> String {
        let mut out = Vec::new();
        for word in detail.split(' ') {
            out.push(match RolePrincipal::parse(word) {
                Some(_) => self.principal(word).await,
                None => word.to_string(),
            });
        }
        out.join(" ")
    }
}

/// The values of a list field, or a dash for none.
fn listed(doc: &Value, key: &str) -> String {
    let items: Vec<&str> = doc
        .get(key)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if items.is_empty() {
        "—".into()
    } else {
        items.join(", ")
    }
}

/// A gateway's `restrict_paths`: which paths may be read, written or not reached at all.
fn paths_of(doc: &Value) -> String {
    let Some(r) = doc.get("restrict_paths").filter(|r| r.is_object()) else {
        return "No restriction".into();
    };
    let parts: Vec<String> = [
        ("read_write", "read and write"),
        ("read", "read only"),
        ("none", "never"),
    ]
    .iter()
    .map(|(key, words)| (words, listed(r, key)))
    .filter(|(_, paths)| paths != "—")
    .map(|(words, paths)| format!("{words}: {paths}"))
    .collect();
    if parts.is_empty() {
        "Nothing may be reached".into()
    } else {
        parts.join("; ")
    }
}

fn kind_of(doc: &Value) -> &'static str {
    match text(doc, "collection_type") {
        "guest" => "Guest",
        _ => "Mapped",
    }
}

/// A table that stacks its cells on narrow screens (200% zoom); each cell names its column for that.
pub(super) fn table(caption: &str, columns: &[&str], rows: &str) -> String {
    let head: String = columns
        .iter()
        .map(|c| format!("<th scope=\"col\">{c}</th>"))
        .collect();
    format!(
        "<table class=\"listing stack\"><caption>{caption}</caption><thead><tr>{head}</tr></thead>\
         <tbody>{rows}</tbody></table>"
    )
}

pub(super) fn cell(label: &str, html: &str) -> String {
    format!("<td data-label=\"{label}\">{html}</td>")
}

/// `GET /console`: the endpoint, its storage gateways (its managers only) and the visitor's collections.
async fn overview(State(s): State<AppState>, v: Visitor) -> Result<Response, AppError> {
    let (v, adm) = match administrator(&s, v).await? {
        Ok(ok) => ok,
        Err(page) => return Ok(page),
    };
    let ep = s.endpoint.get_endpoint().await?;
    let info = s.endpoint.info();
    let about = &info[0];
    let connectors: HashMap<&str, &str> = info
        .iter()
        .skip(1)
        .map(|c| (text(c, "id"), text(c, "display_name")))
        .collect();
    let dd = |k: &str, v: &str| format!("<dt>{k}</dt><dd>{}</dd>", escape(v));
    let endpoint = [
        dd("Name", &ep.display_name),
        dd("Endpoint id", &ep.id.to_string()),
        dd("Domain", text(about, "domain_name")),
        dd(
            "Version",
            &format!(
                "Ferry {}, GCS manager API {} ({})",
                text(about, "ferry_version"),
                text(about, "api_version"),
                text(about, "manager_version")
            ),
        ),
        dd("Organization", ep.organization.as_deref().unwrap_or("—")),
        dd("Public", if ep.public { "yes" } else { "no" }),
    ]
    .concat();
    let mut names = Names::new(&s);
    let gateways = if adm.endpoint {
        let mut rows = String::new();
        for g in s.endpoint.list_gateways(&v.who, true).await? {
            rows.push_str(&format!(
                "<tr><th scope=\"row\">{name}</th>{connector}{domains}{paths}{accounts}</tr>",
                name = escape(text(&g, "display_name")),
                connector = cell(
                    "Connector",
                    &escape(
                        connectors
                            .get(text(&g, "connector_id"))
                            .copied()
                            .unwrap_or("unknown")
                    )
                ),
                domains = cell("Allowed domains", &escape(&listed(&g, "allowed_domains"))),
                paths = cell("Paths", &escape(&paths_of(&g))),
                accounts = cell("Accounts allowed", &escape(&listed(&g, "users_allow"))),
            ));
        }
        format!(
            "<section aria-labelledby=\"gateways-h\"><h2 id=\"gateways-h\">Storage gateways</h2>{}</section>",
            table(
                "Storage gateways of this endpoint",
                &[
                    "Name",
                    "Connector",
                    "Allowed domains",
                    "Paths",
                    "Accounts allowed"
                ],
                &rows
            )
        )
    } else {
        String::new()
    };
    let mut rows = String::new();
    for c in administered(&s, &v).await? {
        let owner = match Uuid::parse_str(text(&c, "identity_id")) {
            Ok(id) => names.identity(id).await,
            Err(_) => "—".into(),
        };
        rows.push_str(&format!(
            "<tr><th scope=\"row\"><a href=\"/console/collections/{id}\">{name}</a></th>{kind}{base}{owner}</tr>",
            id = escape(text(&c, "id")),
            name = escape(text(&c, "display_name")),
            kind = cell("Type", kind_of(&c)),
            base = cell("Base path", &escape(text(&c, "root_path"))),
            owner = cell("Owner", &escape(&owner)),
        ));
    }
    let scope = if adm.endpoint {
        "You manage this endpoint: every collection is yours to administer."
    } else {
        "You administer the collections below; the endpoint itself is managed by its administrators."
    };
    let body = format!(
        "<p>{scope} <a href=\"/console/audit\">Audit log</a></p>\
         <section aria-labelledby=\"endpoint-h\"><h2 id=\"endpoint-h\">Endpoint</h2><dl>{endpoint}</dl></section>\
         {gateways}\
         <section aria-labelledby=\"collections-h\"><h2 id=\"collections-h\">Collections</h2>{collections}</section>",
        collections = if rows.is_empty() {
            "<p>No collections yet.</p>".to_string()
        } else {
            table(
                "Collections you administer",
                &["Name", "Type", "Base path", "Owner"],
                &rows,
            )
        },
    );
    Ok(shell(
        StatusCode::OK,
        Some(v.username()),
        Section::Console,
        "Console",
        &body,
    ))
}

/// `GET /console/collections/{id}`: a collection's overview and roles, with the forms that change them.
async fn collection(
    State(s): State<AppState>,
    v: Visitor,
    Path(raw): Path<String>,
    Query(place): Query<Done>,
) -> Result<Response, AppError> {
    let (v, _) = match administrator(&s, v).await? {
        Ok(ok) => ok,
        Err(page) => return Ok(page),
    };
    let id = collection_id(&raw)?;
    // With its private policies: the domain gives those only to the collection's administrators.
    let c = s.endpoint.get_collection(&v.who, id, true).await?;
    let roles = s.endpoint.list_roles(&v.who, Some(id), false).await?;
    let mut names = Names::new(&s);
    let owner_urn = Uuid::parse_str(text(&c, "identity_id"))
        .map(|o| RolePrincipal::Identity(o).urn())
        .unwrap_or_default();
    let mut rows = String::new();
    for r in &roles {
        let principal = text(r, "principal");
        let role = text(r, "role");
        let who = names.principal(principal).await;
        let kind = match RolePrincipal::parse(principal) {
            Some(RolePrincipal::Group(_)) => "Group",
            _ => "Person",
        };
        // The creator's administrator role is the collection's ownership: it is not a row to remove.
        let remove = if role == "administrator" && principal == owner_urn {
            "The owner".to_string()
        } else {
            format!(
                "<form method=\"post\" action=\"/console/collections/{id}/roles/remove\" class=\"inline\">\
                 <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
                 <input type=\"hidden\" name=\"role\" value=\"{rid}\">\
                 <button type=\"submit\" aria-label=\"Remove the {role_e} role of {who_e}\">Remove</button></form>",
                csrf = v.csrf,
                rid = escape(text(r, "id")),
                role_e = escape(role),
                who_e = escape(&who),
            )
        };
        rows.push_str(&format!(
            "<tr><th scope=\"row\">{who}</th>{kind}{role}{remove}</tr>",
            who = escape(&who),
            kind = cell("Kind", kind),
            role = cell("Role", &escape(role)),
            remove = cell("Change", &remove),
        ));
    }
    let mut overview = vec![
        ("Name", text(&c, "display_name").to_string()),
        ("Collection id", id.to_string()),
        ("Type", kind_of(&c).to_string()),
        ("Base path", text(&c, "root_path").to_string()),
    ];
    if let Ok(o) = Uuid::parse_str(text(&c, "identity_id")) {
        overview.push(("Owner", names.identity(o).await));
    }
    overview.push((
        "Public",
        if c["public"] == Value::Bool(true) {
            "yes"
        } else {
            "no"
        }
        .into(),
    ));
    overview.push(("Created", text(&c, "created_at").to_string()));
    let overview: String = overview
        .iter()
        .map(|(k, val)| format!("<dt>{k}</dt><dd>{}</dd>", escape(val)))
        .collect();
    let options: String = ROLES
        .iter()
        .map(|(value, label)| format!("<option value=\"{value}\">{label}</option>"))
        .collect();
    let done = match place.done.as_str() {
        "add" => notice("ok", "The role was added."),
        "remove" => notice("ok", "The role was removed."),
        _ => String::new(),
    };
    let body = format!(
        "{done}<p><a href=\"{files}\">Open in the File Manager</a> · \
         <a href=\"{audit}\">Audit log of this collection</a> · <a href=\"/console\">Back to the Console</a></p>\
         <section aria-labelledby=\"overview-h\"><h2 id=\"overview-h\">Overview</h2><dl>{overview}</dl></section>\
         <section aria-labelledby=\"roles-h\"><h2 id=\"roles-h\">Roles</h2>\
         <p class=\"hint\">The endpoint's owner and administrators also administer every collection.</p>{roles}</section>\
         <section aria-labelledby=\"add-h\"><h2 id=\"add-h\">Add a role</h2>\
         <form method=\"post\" action=\"/console/collections/{id}/roles\" class=\"dialog\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <label for=\"principal\">Username or group id</label>\
         <input id=\"principal\" name=\"principal\" required autocomplete=\"off\" aria-describedby=\"principal-hint\">\
         <p id=\"principal-hint\" class=\"hint\">A person's full username (name@domain), or the id of a group.</p>\
         <label for=\"role\">Role</label><select id=\"role\" name=\"role\">{options}</select>\
         <button type=\"submit\">Add the role</button></form></section>",
        files = escape(&folder_url(id, "/")),
        audit = escape(&link("/console/audit", &[("collection", &id.to_string())])),
        roles = table(
            "Roles on this collection",
            &["Who", "Kind", "Role", "Change"],
            &rows
        ),
        csrf = v.csrf,
    );
    Ok(shell(
        StatusCode::OK,
        Some(v.username()),
        Section::Console,
        &format!("Collection: {}", text(&c, "display_name")),
        &body,
    ))
}

/// The principal a form names: a group id, an identity id, or a username.
async fn principal_of(s: &AppState, named: &str) -> Result<String, AppError> {
    let store = s.auth.store();
    if let Ok(id) = Uuid::parse_str(named) {
        if store.get_identity(id).await?.is_some() {
            return Ok(RolePrincipal::Identity(id).urn());
        }
        // A group this store does not hold may still be the hub's: the domain decides.
        return Ok(RolePrincipal::Group(id).urn());
    }
    match store.find_identity(named).await? {
        Some(i) => Ok(RolePrincipal::Identity(i.id).urn()),
        None => Err(AppError::new(
            StatusCode::BAD_REQUEST,
            "Nobody has that username. Give a person's full username (name@domain) or a group's id.",
        )),
    }
}

pub(super) fn field<'a>(form: &'a HashMap<String, String>, k: &str) -> &'a str {
    form.get(k).map(|v| v.trim()).unwrap_or("")
}

fn collection_url(id: Uuid, done: &str) -> String {
    link(&format!("/console/collections/{id}"), &[("done", done)])
}

async fn add_role(
    State(s): State<AppState>,
    Path(raw): Path<String>,
    Posted(v, form): Posted,
) -> Result<Response, AppError> {
    let id = collection_id(&raw)?;
    let principal = principal_of(&s, field(&form, "principal")).await?;
    let request = serde_json::json!({
        "DATA_TYPE": "role#1.0.0",
        "collection": id,
        "principal": principal,
        "role": field(&form, "role"),
    });
    s.endpoint.create_role(&v.who, request).await?;
    Ok(Redirect::to(&collection_url(id, "add")).into_response())
}

async fn remove_role(
    State(s): State<AppState>,
    Path(raw): Path<String>,
    Posted(v, form): Posted,
) -> Result<Response, AppError> {
    let id = collection_id(&raw)?;
    let role = Uuid::parse_str(field(&form, "role"))
        .map_err(|_| AppError::new(StatusCode::NOT_FOUND, "There is no such role."))?;
    s.endpoint.delete_role(&v.who, role).await?;
    Ok(Redirect::to(&collection_url(id, "remove")).into_response())
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct AuditPlace {
    action: String,
    user: String,
    collection: String,
    before: String,
}

/// `GET /console/audit`: the log, newest first, a page at a time, filtered by action, user and collection.
async fn audit(
    State(s): State<AppState>,
    v: Visitor,
    Query(place): Query<AuditPlace>,
) -> Result<Response, AppError> {
    let (v, adm) = match administrator(&s, v).await? {
        Ok(ok) => ok,
        Err(page) => return Ok(page),
    };
    let collections: Vec<(Uuid, String)> = administered(&s, &v)
        .await?
        .iter()
        .filter_map(|c| {
            Uuid::parse_str(text(c, "id"))
                .ok()
                .map(|id| (id, text(c, "display_name").to_string()))
        })
        .collect();
    // Without a collection, the whole log: a collection administrator reads one of theirs instead.
    let collection = match Uuid::parse_str(place.collection.trim()) {
        Ok(id) => Some(id),
        Err(_) if adm.endpoint => None,
        Err(_) => collections.first().map(|(id, _)| *id),
    };
    let action = place.action.trim();
    let user = place.user.trim();
    let mut unknown_user = false;
    let identity = if user.is_empty() {
        None
    } else {
        match s.auth.store().find_identity(user).await? {
            Some(i) => Some(i.id),
            None => {
                unknown_user = true;
                None
            }
        }
    };
    let page = if unknown_user {
        None
    } else {
        Some(
            s.endpoint
                .read_audit(
                    &v.who,
                    &AuditQuery {
                        action: Some(action.to_string()),
                        identity,
                        collection,
                        before: place.before.parse().ok(),
                        limit: PER_PAGE,
                    },
                )
                .await?,
        )
    };
    let collection_names: HashMap<Uuid, &str> = collections
        .iter()
        .map(|(id, n)| (*id, n.as_str()))
        .collect();
    let mut names = Names::new(&s);
    let mut rows = String::new();
    for r in page.iter().flat_map(|p| &p.records) {
        let who = match r.identity_id {
            Some(id) => names.identity(id).await,
            None => "anonymous".into(),
        };
        let coll = match r.collection_id {
            Some(id) => collection_names
                .get(&id)
                .map_or(id.to_string(), |n| n.to_string()),
            None => "—".into(),
        };
        let detail = names.detail(&r.detail).await;
        rows.push_str(&format!(
            "<tr><th scope=\"row\">{time}</th>{who}{action}{coll}{path}{outcome}{detail}</tr>",
            time = escape(&ferry_core::time::rfc3339(r.time).replacen('T', " ", 1)),
            who = cell("Who", &escape(&who)),
            action = cell("Action", &escape(&r.action)),
            coll = cell("Collection", &escape(&coll)),
            path = cell("Path", &escape(r.path.as_deref().unwrap_or("—"))),
            outcome = cell("Outcome", if r.allowed { "allowed" } else { "refused" }),
            detail = cell("Detail", &escape(&detail)),
        ));
    }
    let filters = |before: &str| {
        link(
            "/console/audit",
            &[
                ("action", action),
                ("user", user),
                ("collection", &place.collection),
                ("before", before),
            ],
        )
    };
    let mut paging = String::new();
    if !place.before.is_empty() {
        paging.push_str(&format!(
            "<a href=\"{}\">Newest records</a> ",
            escape(&filters(""))
        ));
    }
    if let Some(next) = page.as_ref().and_then(|p| p.next) {
        paging.push_str(&format!(
            "<a href=\"{}\" rel=\"next\">Older records</a>",
            escape(&filters(&next.to_string()))
        ));
    }
    let mut choices = String::new();
    if adm.endpoint {
        choices.push_str("<option value=\"\">All, and the endpoint's own records</option>");
    }
    for (id, name) in &collections {
        let selected = if Some(*id) == collection {
            " selected"
        } else {
            ""
        };
        choices.push_str(&format!(
            "<option value=\"{id}\"{selected}>{}</option>",
            escape(name)
        ));
    }
    let results = if unknown_user {
        notice(
            "err",
            "Nobody has that username: give a person's full username (name@domain).",
        )
    } else if rows.is_empty() {
        "<p id=\"no-records\">No records match.</p>".to_string()
    } else {
        table(
            "Audit records, newest first",
            &[
                "Time (UTC)",
                "Who",
                "Action",
                "Collection",
                "Path",
                "Outcome",
                "Detail",
            ],
            &rows,
        )
    };
    let body = format!(
        "<p><a href=\"/console\">Back to the Console</a></p>\
         <form method=\"get\" action=\"/console/audit\" class=\"bar\" aria-label=\"Filter the audit log\">\
         <label for=\"action\">Action</label>\
         <input id=\"action\" name=\"action\" value=\"{action_e}\" aria-describedby=\"action-hint\">\
         <label for=\"user\">User</label><input id=\"user\" name=\"user\" value=\"{user_e}\">\
         <label for=\"collection\">Collection</label><select id=\"collection\" name=\"collection\">{choices}</select>\
         <button type=\"submit\">Show</button></form>\
         <p id=\"action-hint\" class=\"hint\">An action such as role.create, or a family such as role for all \
         role changes; a user by their username.</p>\
         {results}<nav aria-label=\"Pages\" class=\"pages\">{paging}</nav>",
        action_e = escape(action),
        user_e = escape(user),
    );
    Ok(shell(
        StatusCode::OK,
        Some(v.username()),
        Section::Console,
        "Audit log",
        &body,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn restricted_paths_read_as_words() {
        assert_eq!(paths_of(&json!({})), "No restriction");
        assert_eq!(
            paths_of(&json!({"restrict_paths": {"read_write": ["/a", "/b"], "none": ["/a/x"]}})),
            "read and write: /a, /b; never: /a/x"
        );
    }
}
