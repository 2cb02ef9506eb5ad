//! Sharing a folder: from a mapped collection, a guest collection is made for the folder first; on a guest
//! collection, "who has access here" (rules on this folder and on the folders above it, and the collection's
//! managers), adding a person (by username, or by e-mail: an invitation), a group, every signed-in user or
//! anyone, read or read-write, with an expiry and a message, and removing access.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use uuid::Uuid;

use super::files::folder_url;
use super::{Posted, Section, Visitor, collection_id, link, notice, shell};
use crate::error::AppError;
use crate::routes::AppState;
use crate::routes::web::escape;

const PAGE: &str = "/file-manager/share";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/file-manager/share", get(show))
        .route("/file-manager/share/guest", post(create_guest))
        .route("/file-manager/share/add", post(add))
        .route("/file-manager/share/remove", post(remove))
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct Place {
    origin_id: String,
    origin_path: String,
    done: String,
}

/// A folder path as rules name folders: absolute, ending in `/`.
fn folder_of(raw: &str) -> String {
    let p = raw.trim();
    let p = if p.is_empty() || p == "/~/" { "/" } else { p };
    let p = if p.starts_with('/') {
        p.to_string()
    } else {
        format!("/{p}")
    };
    if p.ends_with('/') { p } else { format!("{p}/") }
}

fn share_url(id: Uuid, folder: &str, done: &str) -> String {
    link(
        PAGE,
        &[
            ("origin_id", &id.to_string()),
            ("origin_path", folder),
            ("done", done),
        ],
    )
}

/// Who a rule's principal is, in words.
async fn principal_name(s: &AppState, doc: &Value) -> String {
    let principal = doc["principal"].as_str().unwrap_or("");
    let id = Uuid::parse_str(principal).ok();
    match doc["principal_type"].as_str().unwrap_or("") {
        "identity" => match id {
            Some(id) => match s.auth.store().get_identity(id).await {
                Ok(Some(i)) => i.username,
                _ => format!("identity {principal}"),
            },
            None => principal.to_string(),
        },
        "group" => match id {
            Some(id) => match s.auth.store().get_group(id).await {
                Ok(Some(g)) => format!("group {}", g.name),
                _ => format!("group {principal}"),
            },
            None => principal.to_string(),
        },
        "invitation" => format!("{principal} (invited by e-mail, not yet accepted)"),
        "all_authenticated_users" => "every signed-in user".into(),
        "anonymous" => "anyone, without signing in (public)".into(),
        other => other.to_string(),
    }
}

fn access_words(doc: &Value) -> &'static str {
    match (doc["role_type"].as_str(), doc["permissions"].as_str()) {
        (Some("administrator"), _) => "Administrator (manages the collection)",
        (Some("access_manager"), _) => "Access manager (manages who has access)",
        (_, Some("rw")) => "Editor (read and write)",
        _ => "Viewer (read only)",
    }
}

async fn show(
    State(s): State<AppState>,
    v: Visitor,
    Query(place): Query<Place>,
) -> Result<Response, AppError> {
    let id = collection_id(&place.origin_id)?;
    let folder = folder_of(&place.origin_path);
    let entity = s.endpoint.entity(&v.who, id).await?;
    let name = entity["display_name"].as_str().unwrap_or("").to_string();
    if entity["entity_type"].as_str() != Some("GCSv5_guest_collection") {
        return Ok(guest_form(&v, id, &name, &folder));
    }
    let rows = s.endpoint.access_list(&v.who, id).await?;
    let mut here = String::new();
    let mut elsewhere = String::new();
    for doc in &rows {
        let path = doc["path"].as_str().unwrap_or("/");
        let rule_folder = folder_of(path);
        let applies = folder.starts_with(&rule_folder);
        let inherited = applies && rule_folder != folder;
        let who = principal_name(&s, doc).await;
        let expires = doc["expiration_date"]
            .as_str()
            .map_or("never".to_string(), |t| {
                format!("{} UTC", t.replacen('T', " ", 1).trim_end_matches("+00:00"))
            });
        let remove = match doc["id"].as_str() {
            Some(rule) => format!(
                "<form method=\"post\" action=\"/file-manager/share/remove\" class=\"inline\">\
                 <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
                 <input type=\"hidden\" name=\"origin_id\" value=\"{id}\">\
                 <input type=\"hidden\" name=\"origin_path\" value=\"{folder_e}\">\
                 <input type=\"hidden\" name=\"rule\" value=\"{rule}\">\
                 <button type=\"submit\" aria-label=\"Remove access of {who_e} on {path_e}\">Remove</button></form>",
                csrf = v.csrf,
                folder_e = escape(&folder),
                rule = escape(rule),
                who_e = escape(&who),
                path_e = escape(path),
            ),
            None => "(a role of the collection)".into(),
        };
        let row = format!(
            "<tr><th scope=\"row\">{who}</th><td>{access}</td><td>{path}{via}</td><td>{expires}</td><td>{remove}</td></tr>",
            who = escape(&who),
            access = access_words(doc),
            path = escape(path),
            via = if inherited {
                " <span class=\"hint\">(from a folder above)</span>"
            } else {
                ""
            },
            expires = escape(&expires),
        );
        if applies {
            here.push_str(&row);
        } else {
            elsewhere.push_str(&row);
        }
    }
    let table = |caption: &str, rows: &str| {
        format!(
            "<table class=\"listing\"><caption>{caption}</caption><thead><tr><th scope=\"col\">Who</th>\
             <th scope=\"col\">Access</th><th scope=\"col\">On</th><th scope=\"col\">Expires</th>\
             <th scope=\"col\"><span class=\"visually-hidden\">Remove</span></th></tr></thead><tbody>{rows}</tbody></table>"
        )
    };
    let done = match place.done.as_str() {
        "add" => notice("ok", "Access added."),
        "invite" => notice(
            "ok",
            "Invitation sent: the person gets an e-mail with a link, and has access once they accept.",
        ),
        "remove" => notice("ok", "Access removed."),
        "guest" => notice(
            "ok",
            "Guest collection created: add the people who may use it below.",
        ),
        _ => String::new(),
    };
    let body = format!(
        "{done}<p>Guest collection <strong>{name}</strong>, folder <strong>{folder_e}</strong>. \
         <a href=\"{back}\">Back to the folder</a></p>\
         <section aria-labelledby=\"access-h\"><h2 id=\"access-h\">Who has access here</h2>{here_t}</section>\
         {elsewhere_s}\
         <section aria-labelledby=\"add-h\"><h2 id=\"add-h\">Share this folder</h2>\
         <form method=\"post\" action=\"/file-manager/share/add\" class=\"dialog\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <input type=\"hidden\" name=\"origin_id\" value=\"{id}\">\
         <input type=\"hidden\" name=\"origin_path\" value=\"{folder_e}\">\
         <fieldset><legend>Share with</legend>\
         <label><input type=\"radio\" name=\"kind\" value=\"user\" checked> A person (username or e-mail address)</label>\
         <label><input type=\"radio\" name=\"kind\" value=\"group\"> A group (its id)</label>\
         <label><input type=\"radio\" name=\"kind\" value=\"all\"> Every signed-in user</label>\
         <label><input type=\"radio\" name=\"kind\" value=\"public\"> Anyone, without signing in (public)</label>\
         </fieldset>\
         <label for=\"who\">Username, e-mail address or group id</label>\
         <input id=\"who\" name=\"who\" autocomplete=\"off\" aria-describedby=\"who-hint\">\
         <p id=\"who-hint\" class=\"hint\">An e-mail address of someone without an account here sends them an \
         invitation; they sign in with the identity they have and accept it.</p>\
         <fieldset><legend>Access</legend>\
         <label><input type=\"radio\" name=\"permissions\" value=\"r\" checked> Viewer: can browse and download</label>\
         <label><input type=\"radio\" name=\"permissions\" value=\"rw\"> Editor: can also upload, rename and delete</label>\
         </fieldset>\
         <label for=\"expires\">Expires on (optional)</label><input id=\"expires\" name=\"expires\" type=\"date\">\
         <label for=\"message\">Message to include in the e-mail (optional)</label>\
         <textarea id=\"message\" name=\"message\" rows=\"3\" maxlength=\"4096\"></textarea>\
         <button type=\"submit\">Share</button></form></section>",
        name = escape(&name),
        folder_e = escape(&folder),
        back = escape(&folder_url(id, &folder)),
        here_t = if here.is_empty() {
            "<p>Nobody else yet.</p>".to_string()
        } else {
            table("People and groups with access to this folder", &here)
        },
        elsewhere_s = if elsewhere.is_empty() {
            String::new()
        } else {
            format!(
                "<section aria-labelledby=\"else-h\"><h2 id=\"else-h\">Access to other folders of this collection</h2>{}</section>",
                table(
                    "Permissions on folders below or beside this one",
                    &elsewhere
                )
            )
        },
        csrf = v.csrf,
    );
    Ok(shell(
        StatusCode::OK,
        Some(v.username()),
        Section::Files,
        &format!("Share {folder}"),
        &body,
    ))
}

/// A mapped collection's folder is shared through a guest collection made for it.
fn guest_form(v: &Visitor, id: Uuid, name: &str, folder: &str) -> Response {
    let suggested = folder
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .filter(|n| !n.is_empty())
        .unwrap_or(name);
    let body = format!(
        "<p>{folder_e} is on the collection <strong>{name_e}</strong>. To share it, make a guest collection for \
         it: the people you add see this folder and what is in it, nothing above it.</p>\
         <form method=\"post\" action=\"/file-manager/share/guest\" class=\"dialog\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <input type=\"hidden\" name=\"origin_id\" value=\"{id}\">\
         <input type=\"hidden\" name=\"origin_path\" value=\"{folder_e}\">\
         <label for=\"display_name\">Name of the guest collection</label>\
         <input id=\"display_name\" name=\"display_name\" value=\"{suggested_e}\" required>\
         <button type=\"submit\">Create guest collection</button> <a href=\"{back}\">Cancel</a></form>",
        folder_e = escape(folder),
        name_e = escape(name),
        csrf = v.csrf,
        suggested_e = escape(suggested),
        back = escape(&folder_url(id, folder)),
    );
    shell(
        StatusCode::OK,
        Some(v.username()),
        Section::Files,
        &format!("Share {folder}"),
        &body,
    )
}

fn field<'a>(form: &'a HashMap<String, String>, k: &str) -> &'a str {
    form.get(k).map(|v| v.trim()).unwrap_or("")
}

async fn create_guest(
    State(s): State<AppState>,
    Posted(v, form): Posted,
) -> Result<Response, AppError> {
    let host = collection_id(field(&form, "origin_id"))?;
    let folder = folder_of(field(&form, "origin_path"));
    let guest = s
        .endpoint
        .create_shared_endpoint(
            &v.who,
            json!({
                "DATA_TYPE": "shared_endpoint",
                "host_endpoint": host.to_string(),
                "host_path": folder,
                "display_name": field(&form, "display_name"),
            }),
        )
        .await?;
    Ok(Redirect::to(&share_url(guest, "/", "guest")).into_response())
}

/// The access document the form asks for.
async fn rule_of(
    s: &AppState,
    form: &HashMap<String, String>,
    folder: &str,
) -> Result<(Value, bool), AppError> {
    let who = field(form, "who");
    let bad = |m: String| AppError::new(StatusCode::BAD_REQUEST, m);
    let (kind, principal, invite) = match field(form, "kind") {
        "user" => {
            if who.is_empty() {
                return Err(bad(
                    "Name the person: a username or an e-mail address.".into()
                ));
            }
            match s.auth.store().find_identity(who).await? {
                Some(i) => ("identity", i.id.to_string(), false),
                None if who.contains('@') && !who.contains(char::is_whitespace) => {
                    ("invitation", who.to_string(), true)
                }
                None => {
                    return Err(bad(format!(
                        "Nobody has the username {who:?}. Give their full username (name@domain), or their \
                         e-mail address to invite them."
                    )));
                }
            }
        }
        "group" => ("group", who.to_string(), false),
        "all" => ("all_authenticated_users", String::new(), false),
        "public" => ("anonymous", String::new(), false),
        other => return Err(bad(format!("{other:?} is not a kind of principal"))),
    };
    let expires = field(form, "expires");
    let expiration = if expires.is_empty() {
        Value::Null
    } else {
        // the end of the chosen day, in UTC
        json!(format!("{expires}T23:59:59Z"))
    };
    let message = field(form, "message");
    let mut doc = json!({
        "DATA_TYPE": "access",
        "principal_type": kind,
        "principal": principal,
        "path": folder,
        "permissions": field(form, "permissions"),
        "expiration_date": expiration,
    });
    if !message.is_empty() {
        doc["notify_message"] = json!(message);
    }
    Ok((doc, invite))
}

async fn add(State(s): State<AppState>, Posted(v, form): Posted) -> Result<Response, AppError> {
    let id = collection_id(field(&form, "origin_id"))?;
    let folder = folder_of(field(&form, "origin_path"));
    let (doc, invite) = rule_of(&s, &form, &folder).await?;
    s.endpoint.create_access(&v.who, id, doc).await?;
    let done = if invite { "invite" } else { "add" };
    Ok(Redirect::to(&share_url(id, &folder, done)).into_response())
}

async fn remove(State(s): State<AppState>, Posted(v, form): Posted) -> Result<Response, AppError> {
    let id = collection_id(field(&form, "origin_id"))?;
    let folder = folder_of(field(&form, "origin_path"));
    let rule = Uuid::parse_str(field(&form, "rule"))
        .map_err(|_| AppError::new(StatusCode::NOT_FOUND, "no such permission"))?;
    s.endpoint.delete_access(&v.who, id, rule).await?;
    Ok(Redirect::to(&share_url(id, &folder, "remove")).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_are_absolute_with_a_slash() {
        assert_eq!(folder_of(""), "/");
        assert_eq!(folder_of("/~/"), "/");
        assert_eq!(folder_of("/a/b"), "/a/b/");
        assert_eq!(folder_of("a/"), "/a/");
    }
}
