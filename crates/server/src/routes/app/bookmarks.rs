//! Bookmarks: a collection and folder saved under a name (the Transfer API's bookmarks, the same records the
//! CLI and SDK see): made from the file manager, listed, renamed and deleted here.

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use uuid::Uuid;

use super::files::folder_url;
use super::{Done, Posted, Section, Visitor, notice, shell};
use crate::error::AppError;
use crate::routes::AppState;
use crate::routes::web::escape;

const PAGE: &str = "/bookmarks";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/bookmarks", get(list))
        .route("/bookmarks/new", post(create))
        .route("/bookmarks/rename", post(rename))
        .route("/bookmarks/delete", post(delete))
}

/// The form that bookmarks a pane's folder (shown in the file manager).
pub(crate) fn bookmark_form(csrf: &str, id: Uuid, folder: &str, side: &str) -> String {
    let suggested = folder
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .filter(|n| !n.is_empty())
        .unwrap_or("root");
    format!(
        "<form method=\"post\" action=\"/bookmarks/new\" class=\"bar\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <input type=\"hidden\" name=\"endpoint_id\" value=\"{id}\">\
         <input type=\"hidden\" name=\"path\" value=\"{folder_e}\">\
         <label for=\"{side}bookmark\">Bookmark as</label>\
         <input id=\"{side}bookmark\" name=\"name\" value=\"{suggested_e}\" required maxlength=\"128\">\
         <button type=\"submit\">Add bookmark</button></form>",
        folder_e = escape(folder),
        suggested_e = escape(suggested),
    )
}

fn text<'a>(doc: &'a Value, key: &str) -> &'a str {
    doc.get(key).and_then(Value::as_str).unwrap_or("")
}

async fn list(
    State(s): State<AppState>,
    v: Visitor,
    Query(place): Query<Done>,
) -> Result<Response, AppError> {
    let marks = s.endpoint.bookmarks(&v.who).await?;
    let mut rows = String::new();
    for b in &marks {
        let id = text(b, "id");
        let collection = Uuid::parse_str(text(b, "endpoint_id")).ok();
        let collection_name = match collection {
            Some(c) => s.endpoint.collection_name(c).await?.unwrap_or_default(),
            None => String::new(),
        };
        let open = collection.map_or_else(String::new, |c| folder_url(c, text(b, "path")));
        rows.push_str(&format!(
            "<tr><th scope=\"row\"><a href=\"{open}\">{name}</a></th><td>{collection}</td><td>{path}</td><td>\
             <form method=\"post\" action=\"/bookmarks/rename\" class=\"bar\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><input type=\"hidden\" name=\"id\" value=\"{id}\">\
             <label for=\"rename-{id}\" class=\"visually-hidden\">New name for {name}</label>\
             <input id=\"rename-{id}\" name=\"name\" value=\"{name}\" required maxlength=\"128\">\
             <button type=\"submit\">Rename</button></form></td><td>\
             <form method=\"post\" action=\"/bookmarks/delete\" class=\"inline\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><input type=\"hidden\" name=\"id\" value=\"{id}\">\
             <button type=\"submit\" aria-label=\"Delete the bookmark {name}\">Delete</button></form></td></tr>",
            open = escape(&open),
            name = escape(text(b, "name")),
            collection = escape(&collection_name),
            path = escape(text(b, "path")),
            csrf = v.csrf,
            id = escape(id),
        ));
    }
    let done = match place.done.as_str() {
        "new" => notice("ok", "Bookmark added."),
        "rename" => notice("ok", "Bookmark renamed."),
        "delete" => notice("ok", "Bookmark deleted."),
        _ => String::new(),
    };
    let body = if rows.is_empty() {
        format!(
            "{done}<p id=\"no-bookmarks\">No bookmarks yet. In the <a href=\"/file-manager\">File Manager</a>, \
             “Bookmark as” saves the folder you are in.</p>"
        )
    } else {
        format!(
            "{done}<table class=\"listing\"><caption>Your bookmarks</caption><thead><tr>\
             <th scope=\"col\">Name</th><th scope=\"col\">Collection</th><th scope=\"col\">Path</th>\
             <th scope=\"col\">Rename</th><th scope=\"col\"><span class=\"visually-hidden\">Delete</span></th>\
             </tr></thead><tbody>{rows}</tbody></table>"
        )
    };
    Ok(shell(
        StatusCode::OK,
        Some(v.username()),
        Section::Bookmarks,
        "Bookmarks",
        &body,
    ))
}

fn bookmark_id(raw: Option<&String>) -> Result<Uuid, AppError> {
    raw.and_then(|i| Uuid::parse_str(i).ok())
        .ok_or_else(|| AppError::new(StatusCode::NOT_FOUND, "no such bookmark"))
}

fn back(done: &str) -> Response {
    Redirect::to(&format!("{PAGE}?done={done}")).into_response()
}

async fn create(State(s): State<AppState>, Posted(v, form): Posted) -> Result<Response, AppError> {
    let get = |k: &str| form.get(k).map(|x| x.trim()).unwrap_or("");
    s.endpoint
        .create_bookmark(
            &v.who,
            json!({"name": get("name"), "endpoint_id": get("endpoint_id"), "path": get("path")}),
        )
        .await?;
    Ok(back("new"))
}

async fn rename(State(s): State<AppState>, Posted(v, form): Posted) -> Result<Response, AppError> {
    let id = bookmark_id(form.get("id"))?;
    let name = form.get("name").map(|n| n.trim()).unwrap_or("");
    s.endpoint
        .update_bookmark(&v.who, id, json!({ "name": name }))
        .await?;
    Ok(back("rename"))
}

async fn delete(State(s): State<AppState>, Posted(v, form): Posted) -> Result<Response, AppError> {
    s.endpoint
        .delete_bookmark(&v.who, bookmark_id(form.get("id"))?)
        .await?;
    Ok(back("delete"))
}
