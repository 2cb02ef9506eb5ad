//! The file manager: choose a collection, browse a folder (sorted, filtered, paged on the server, so a folder
//! of 100,000 entries costs one page of HTML), make folders, rename, delete, download and upload.

use std::collections::HashMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Multipart, OriginalUri, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use ferry_endpoint::index::SearchQuery;
use ferry_endpoint::listing::{ListQuery, Listed};
use serde_json::Value;
use uuid::Uuid;

use super::{Section, Visitor, link, notice, posted, shell, size, visitor};
use crate::error::AppError;
use crate::routes::AppState;
use crate::routes::web::escape;

const PAGE: &str = "/file-manager";
/// Rows per page: enough to scan, few enough that any folder renders at once.
const PER_PAGE: usize = 100;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/file-manager", get(browse))
        .route("/file-manager/mkdir", post(mkdir))
        .route("/file-manager/rename", get(rename_form).post(rename))
        .route("/file-manager/delete", get(delete_form).post(delete))
        .route("/file-manager/upload", post(upload))
}

/// Where the file manager is: the collection and folder, and how the listing is shown. Every part of the
/// state is in the URL, so any view can be bookmarked or shared.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(crate) struct Place {
    origin_id: String,
    origin_path: String,
    sort: String,
    order: String,
    filter: String,
    page: String,
    /// Collection search (when no collection is chosen).
    q: String,
    scope: String,
    /// What the last action did (a fixed set of messages; `name` fills them in).
    done: String,
    name: String,
}

impl Place {
    fn collection(&self) -> Result<Uuid, AppError> {
        Uuid::parse_str(self.origin_id.trim()).map_err(|_| {
            AppError::new(
                StatusCode::NOT_FOUND,
                format!(
                    "There is no collection {:?}: choose one from the File Manager.",
                    self.origin_id
                ),
            )
        })
    }

    fn path(&self) -> &str {
        if self.origin_path.trim().is_empty() {
            "/~/"
        } else {
            self.origin_path.trim()
        }
    }

    fn sort_field(&self) -> &'static str {
        match self.sort.as_str() {
            "size" => "size",
            "last_modified" => "last_modified",
            _ => "name",
        }
    }

    fn descending(&self) -> bool {
        self.order == "desc"
    }

    fn page(&self) -> usize {
        self.page.parse::<usize>().unwrap_or(1).max(1)
    }

    /// The listing's URL with some of its parameters changed.
    fn url(&self, changes: &[(&str, &str)]) -> String {
        let mut params: Vec<(&str, &str)> = vec![
            ("origin_id", &self.origin_id),
            ("origin_path", &self.origin_path),
            ("sort", &self.sort),
            ("order", &self.order),
            ("filter", &self.filter),
            ("page", &self.page),
        ];
        for (k, v) in changes {
            match params.iter_mut().find(|(name, _)| name == k) {
                Some(p) => p.1 = v,
                None => params.push((k, v)),
            }
        }
        link(PAGE, &params)
    }
}

/// The folder `path` of collection `id` in the file manager.
pub(crate) fn folder_url(id: Uuid, path: &str) -> String {
    link(
        PAGE,
        &[("origin_id", &id.to_string()), ("origin_path", path)],
    )
}

fn with_slash(p: &str) -> String {
    if p.ends_with('/') {
        p.to_string()
    } else {
        format!("{p}/")
    }
}

/// The messages an action's redirect may ask for: a fixed set, so a link cannot put words in Ferry's mouth.
fn done_message(done: &str, name: &str) -> Option<String> {
    Some(match done {
        "mkdir" => format!("Created the folder {name}."),
        "rename" => format!("Renamed to {name}."),
        "delete" => format!("Deleted {name}."),
        "upload" => format!("Uploaded {name}."),
        _ => return None,
    })
}

async fn browse(
    State(s): State<AppState>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    Query(place): Query<Place>,
) -> Result<Response, AppError> {
    let v = match visitor(&s, &headers, &uri).await? {
        Ok(v) => v,
        Err(login) => return Ok(login),
    };
    if place.origin_id.is_empty() {
        return chooser(&s, &v, &place).await;
    }
    folder(&s, &v, &place).await
}

/// No collection chosen yet: search, and the collections this person uses or administers.
async fn chooser(s: &AppState, v: &Visitor, place: &Place) -> Result<Response, AppError> {
    let scopes = [
        ("all", "All I can see"),
        ("shared-with-me", "Shared with me"),
        ("administered-by-me", "Administered by me"),
        ("recently-used", "Recently used"),
    ];
    let scope = scopes
        .iter()
        .find(|(k, _)| *k == place.scope)
        .map_or("all", |(k, _)| k);
    let query = SearchQuery {
        fulltext: Some(place.q.clone()).filter(|q| !q.trim().is_empty()),
        scope: Some(scope.into()),
        limit: Some("100".into()),
        ..SearchQuery::default()
    };
    let (hits, _, _) = s.endpoint.search_hits(&v.who, &query).await?;
    let tabs = scopes
        .iter()
        .map(|(k, label)| {
            let current = if *k == scope {
                " aria-current=\"true\""
            } else {
                ""
            };
            format!(
                "<li><a href=\"{}\"{current}>{label}</a></li>",
                escape(&link(PAGE, &[("scope", k), ("q", &place.q)]))
            )
        })
        .collect::<String>();
    let rows = hits
        .iter()
        .filter_map(|h| {
            let id = h.get("id")?.as_str()?;
            let text = |k: &str| h.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            // endpoints themselves hold no files: only collections are listed
            let kind = match text("entity_type").as_str() {
                "GCSv5_guest_collection" => "Guest collection",
                "GCSv5_mapped_collection" => "Mapped collection",
                _ => return None,
            };
            Some(format!(
                "<tr><td><a href=\"{href}\">{name}</a></td><td>{kind}</td><td>{owner}</td><td>{desc}</td></tr>",
                href = escape(&link(PAGE, &[("origin_id", id)])),
                name = escape(&text("display_name")),
                owner = escape(&text("owner_string")),
                desc = escape(&text("description")),
            ))
        })
        .collect::<String>();
    let table = if rows.is_empty() {
        "<p id=\"no-collections\">No collection matches. Try another search, or another of the lists above.</p>"
            .to_string()
    } else {
        format!(
            "<table class=\"listing\"><caption>Collections</caption><thead><tr><th scope=\"col\">Name</th>\
             <th scope=\"col\">Type</th><th scope=\"col\">Owner</th><th scope=\"col\">Description</th></tr></thead>\
             <tbody>{rows}</tbody></table>"
        )
    };
    let body = format!(
        "<form method=\"get\" action=\"{PAGE}\" class=\"bar\" role=\"search\">\
         <input type=\"hidden\" name=\"scope\" value=\"{scope}\">\
         <label for=\"q\">Search collections</label>\
         <input id=\"q\" name=\"q\" type=\"search\" value=\"{q}\">\
         <button type=\"submit\">Search</button></form>\
         <nav aria-label=\"Collection lists\"><ul class=\"tabs\">{tabs}</ul></nav>{table}",
        q = escape(&place.q)
    );
    Ok(shell(
        StatusCode::OK,
        Some(v.username()),
        Section::Files,
        "File Manager",
        &body,
    ))
}

/// The breadcrumb trail of `path`: each folder above links to itself.
fn breadcrumbs(id: Uuid, collection: &str, path: &str) -> String {
    let mut out = format!(
        "<nav aria-label=\"Breadcrumb\" class=\"crumbs\"><ol><li><a href=\"{}\">{}</a></li>",
        escape(&folder_url(id, "/")),
        escape(collection)
    );
    let mut at = String::from("/");
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    for (i, part) in parts.iter().enumerate() {
        at.push_str(part);
        at.push('/');
        if i + 1 == parts.len() {
            out.push_str(&format!(
                "<li><a href=\"{}\" aria-current=\"page\">{}</a></li>",
                escape(&folder_url(id, &at)),
                escape(part)
            ));
        } else {
            out.push_str(&format!(
                "<li><a href=\"{}\">{}</a></li>",
                escape(&folder_url(id, &at)),
                escape(part)
            ));
        }
    }
    out.push_str("</ol></nav>");
    out
}

/// The listing's query: folders first, then the chosen order; the filter matches names containing the text.
fn list_query(place: &Place) -> Result<ListQuery, AppError> {
    let order = format!(
        "type ASC,{} {}",
        place.sort_field(),
        if place.descending() { "DESC" } else { "ASC" }
    );
    let text = place.filter.trim();
    // `,` and `/` separate alternatives and clauses in the Transfer filter syntax: a name never holds `/`,
    // and a comma here means "either".
    let filter = format!("name:~*{}*", text.replace(',', "*,*"));
    let filters: Vec<&str> = if text.is_empty() {
        vec![]
    } else {
        vec![filter.as_str()]
    };
    let limit = PER_PAGE.to_string();
    let offset = ((place.page() - 1) * PER_PAGE).to_string();
    Ok(ListQuery::parse(
        None,
        Some(&order),
        &filters,
        Some(&limit),
        Some(&offset),
    )?)
}

fn sort_header(place: &Place, field: &str, label: &str) -> String {
    let current = place.sort_field() == field;
    let (aria, next) = match (current, place.descending()) {
        (true, false) => ("ascending", "desc"),
        (true, true) => ("descending", "asc"),
        (false, _) => ("none", "asc"),
    };
    let arrow = match aria {
        "ascending" => " ▲",
        "descending" => " ▼",
        _ => "",
    };
    format!(
        "<th scope=\"col\" aria-sort=\"{aria}\"><a href=\"{}\">{label}<span aria-hidden=\"true\">{arrow}</span></a></th>",
        escape(&place.url(&[("sort", field), ("order", next), ("page", "")]))
    )
}

fn row(id: Uuid, dir: &str, l: &Listed) -> String {
    let name = &l.entry.name;
    let path = format!("{dir}{name}");
    let is_dir = l.kind == "dir";
    let (cell, kind, size_text) = if is_dir {
        (
            format!(
                "<a href=\"{}\">{}/</a>",
                escape(&folder_url(id, &with_slash(&path))),
                escape(name)
            ),
            "Folder",
            String::new(),
        )
    } else {
        (
            format!(
                "<a href=\"{}\" download>{}</a>",
                escape(&data_url(id, &path, true)),
                escape(name)
            ),
            "File",
            size(l.entry.size),
        )
    };
    let actions = format!(
        "<a href=\"{r}\" aria-label=\"Rename {n}\">Rename</a> <a href=\"{d}\" aria-label=\"Delete {n}\">Delete</a>",
        r = escape(&link(
            "/file-manager/rename",
            &[("origin_id", &id.to_string()), ("origin_path", &path)]
        )),
        d = escape(&link(
            "/file-manager/delete",
            &[("origin_id", &id.to_string()), ("origin_path", &path)]
        )),
        n = escape(name),
    );
    format!(
        "<tr><td><input type=\"checkbox\" name=\"item\" value=\"{v}\" aria-label=\"Select {n}\"></td>\
         <th scope=\"row\">{cell}</th><td>{kind}</td><td class=\"num\">{size_text}</td><td>{m}</td>\
         <td class=\"actions\">{actions}</td></tr>",
        v = escape(name),
        n = escape(name),
        m = escape(l.last_modified.trim_end_matches("+00:00")),
    )
}

/// The HTTPS URL of a file (its collection's data door on this server).
fn data_url(id: Uuid, path: &str, download: bool) -> String {
    let encoded: String = path
        .split('/')
        .map(|seg| {
            url::form_urlencoded::byte_serialize(seg.as_bytes())
                .collect::<String>()
                .replace('+', "%20")
        })
        .collect::<Vec<_>>()
        .join("/");
    let base = format!("/data/{id}{encoded}");
    if download {
        format!("{base}?download")
    } else {
        base
    }
}

async fn folder(s: &AppState, v: &Visitor, place: &Place) -> Result<Response, AppError> {
    let id = place.collection()?;
    let query = list_query(place)?;
    let (at, entries, total, unlisted) = s
        .endpoint
        .list(Some(&v.who), id, place.path(), &query)
        .await?;
    let collection = s
        .endpoint
        .collection_name(id)
        .await?
        .unwrap_or_else(|| id.to_string());
    let dir = with_slash(&at.path);
    let page = place.page();
    let pages = total.div_ceil(PER_PAGE).max(1);
    let rows: String = entries.iter().map(|l| row(id, &dir, l)).collect();
    let shown = if place.filter.trim().is_empty() {
        format!("{total} items")
    } else {
        format!("{total} items match “{}”", escape(place.filter.trim()))
    };
    let empty = if entries.is_empty() {
        "<tr><td colspan=\"6\">Nothing here.</td></tr>"
    } else {
        ""
    };
    let paging = if pages > 1 {
        let prev = if page > 1 {
            format!(
                "<a href=\"{}\" rel=\"prev\">Previous page</a>",
                escape(&place.url(&[("page", &(page - 1).to_string())]))
            )
        } else {
            String::new()
        };
        let next = if page < pages {
            format!(
                "<a href=\"{}\" rel=\"next\">Next page</a>",
                escape(&place.url(&[("page", &(page + 1).to_string())]))
            )
        } else {
            String::new()
        };
        format!(
            "<nav aria-label=\"Pages\" class=\"pages\">{prev} <span>Page {page} of {pages}</span> {next}</nav>"
        )
    } else {
        String::new()
    };
    let unlisted = if unlisted.is_empty() {
        String::new()
    } else {
        notice(
            "warn",
            &format!(
                "{} names here are not valid UTF-8 and cannot be shown or opened in the browser.",
                unlisted.len()
            ),
        )
    };
    let done = done_message(&place.done, &place.name)
        .map(|m| notice("ok", &m))
        .unwrap_or_default();
    let id_s = id.to_string();
    let hidden = format!(
        "<input type=\"hidden\" name=\"origin_id\" value=\"{id_s}\">\
         <input type=\"hidden\" name=\"origin_path\" value=\"{}\">",
        escape(&dir)
    );
    let csrf = format!("<input type=\"hidden\" name=\"csrf\" value=\"{}\">", v.csrf);
    let body = format!(
        "{done}{unlisted}{crumbs}\
         <form method=\"get\" action=\"{PAGE}\" class=\"bar\"><input type=\"hidden\" name=\"origin_id\" value=\"{id_s}\">\
         <label for=\"path\">Path</label><input id=\"path\" name=\"origin_path\" value=\"{dir_e}\">\
         <button type=\"submit\">Go</button></form>\
         <div class=\"tools\">\
         <form method=\"post\" action=\"/file-manager/mkdir\" class=\"bar\">{hidden}{csrf}\
         <label for=\"new-folder\">New folder</label><input id=\"new-folder\" name=\"name\" required>\
         <button type=\"submit\">Create folder</button></form>\
         <form method=\"post\" action=\"/file-manager/upload\" enctype=\"multipart/form-data\" class=\"bar upload\" \
          data-collection=\"{id_s}\" data-folder=\"{dir_e}\" data-csrf=\"{csrf_v}\">{hidden}{csrf}\
         <label for=\"files\">Upload files</label><input id=\"files\" name=\"file\" type=\"file\" multiple required>\
         <button type=\"submit\">Upload</button>\
         <p class=\"hint\">Or drop files on the list below. Large uploads resume where they stopped if the \
         connection drops.</p><div class=\"uploads\" aria-live=\"polite\"></div></form>\
         <p><a href=\"{share}\">Share this folder</a></p></div>\
         <form method=\"get\" action=\"{PAGE}\" class=\"bar\" role=\"search\">\
         <input type=\"hidden\" name=\"origin_id\" value=\"{id_s}\"><input type=\"hidden\" name=\"origin_path\" value=\"{dir_e}\">\
         <input type=\"hidden\" name=\"sort\" value=\"{sort}\"><input type=\"hidden\" name=\"order\" value=\"{order}\">\
         <label for=\"filter\">Filter by name</label><input id=\"filter\" name=\"filter\" type=\"search\" value=\"{filter}\">\
         <button type=\"submit\">Filter</button></form>\
         <table class=\"listing\" id=\"listing\" data-drop=\"true\"><caption>{folder_e} ({shown})</caption>\
         <thead><tr><td></td>{h_name}<th scope=\"col\">Type</th>{h_size}{h_time}<th scope=\"col\">Actions</th></tr></thead>\
         <tbody>{empty}{rows}</tbody></table>{paging}",
        crumbs = breadcrumbs(id, &collection, &dir),
        dir_e = escape(&dir),
        csrf_v = v.csrf,
        share = escape(&link(
            "/file-manager/share",
            &[("origin_id", &id_s), ("origin_path", &dir)]
        )),
        sort = place.sort_field(),
        order = if place.descending() { "desc" } else { "asc" },
        filter = escape(&place.filter),
        folder_e = escape(&dir),
        h_name = sort_header(place, "name", "Name"),
        h_size = sort_header(place, "size", "Size"),
        h_time = sort_header(place, "last_modified", "Modified"),
    );
    Ok(shell(
        StatusCode::OK,
        Some(v.username()),
        Section::Files,
        &format!("{collection}: {dir}"),
        &body,
    ))
}

/// The collection and folder a posted form acts in, and the name it gives (one path component).
fn target(form: &HashMap<String, String>) -> Result<(Uuid, String), AppError> {
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    let place = Place {
        origin_id: get("origin_id").into(),
        origin_path: get("origin_path").into(),
        ..Place::default()
    };
    Ok((place.collection()?, place.path().to_string()))
}

fn new_name(form: &HashMap<String, String>, field: &str) -> Result<String, AppError> {
    let name = form.get(field).map(|n| n.trim()).unwrap_or("");
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(AppError::new(
            StatusCode::BAD_REQUEST,
            format!("{name:?} cannot be a name: a name is not empty, not . or .., and has no /"),
        ));
    }
    Ok(name.to_string())
}

fn back_to(id: Uuid, folder: &str, done: &str, name: &str) -> Response {
    Redirect::to(&link(
        PAGE,
        &[
            ("origin_id", &id.to_string()),
            ("origin_path", folder),
            ("done", done),
            ("name", name),
        ],
    ))
    .into_response()
}

async fn mkdir(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AppError> {
    let (v, form) = match posted(&s, &headers, &body, PAGE).await? {
        Ok(ok) => ok,
        Err(login) => return Ok(login),
    };
    let (id, dir) = target(&form)?;
    let name = new_name(&form, "name")?;
    let dir = with_slash(&dir);
    s.endpoint
        .mkdir(Some(&v.who), id, &format!("{dir}{name}"))
        .await?;
    Ok(back_to(id, &dir, "mkdir", &name))
}

/// The entry a rename or delete page is about: its collection, folder and name.
fn entry_of(place: &Place) -> Result<(Uuid, String, String), AppError> {
    let id = place.collection()?;
    let path = place.path().trim_end_matches('/');
    let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
    if name.is_empty() {
        return Err(AppError::new(
            StatusCode::BAD_REQUEST,
            "the root of a collection cannot be renamed or deleted",
        ));
    }
    Ok((id, format!("{dir}/"), name.to_string()))
}

fn confirm_page(
    v: &Visitor,
    place: &Place,
    action: &str,
    title: &str,
    fields: &str,
    button: &str,
) -> Result<Response, AppError> {
    let (id, dir, name) = entry_of(place)?;
    let body = format!(
        "<form method=\"post\" action=\"{action}\" class=\"dialog\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <input type=\"hidden\" name=\"origin_id\" value=\"{id}\">\
         <input type=\"hidden\" name=\"origin_path\" value=\"{path}\">{fields}\
         <button type=\"submit\">{button}</button> <a href=\"{cancel}\">Cancel</a></form>",
        csrf = v.csrf,
        path = escape(&format!("{dir}{name}")),
        cancel = escape(&folder_url(id, &dir)),
    );
    Ok(shell(
        StatusCode::OK,
        Some(v.username()),
        Section::Files,
        title,
        &body,
    ))
}

async fn rename_form(
    State(s): State<AppState>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    Query(place): Query<Place>,
) -> Result<Response, AppError> {
    let v = match visitor(&s, &headers, &uri).await? {
        Ok(v) => v,
        Err(login) => return Ok(login),
    };
    let (id, _, name) = entry_of(&place)?;
    // the entry must be there and visible to this person before a form about it is shown
    s.endpoint.stat(Some(&v.who), id, place.path()).await?;
    let fields = format!(
        "<label for=\"name\">New name for {n}</label>\
         <input id=\"name\" name=\"name\" value=\"{n}\" required autofocus>",
        n = escape(&name)
    );
    confirm_page(
        &v,
        &place,
        "/file-manager/rename",
        &format!("Rename {name}"),
        &fields,
        "Rename",
    )
}

async fn delete_form(
    State(s): State<AppState>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    Query(place): Query<Place>,
) -> Result<Response, AppError> {
    let v = match visitor(&s, &headers, &uri).await? {
        Ok(v) => v,
        Err(login) => return Ok(login),
    };
    let (id, dir, name) = entry_of(&place)?;
    s.endpoint.stat(Some(&v.who), id, place.path()).await?;
    let fields = format!(
        "<p>Delete <strong>{}</strong> from {}? A folder is deleted with everything in it. This cannot be \
         undone.</p>",
        escape(&name),
        escape(&dir)
    );
    confirm_page(
        &v,
        &place,
        "/file-manager/delete",
        &format!("Delete {name}?"),
        &fields,
        "Delete",
    )
}

async fn rename(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AppError> {
    let (v, form) = match posted(&s, &headers, &body, PAGE).await? {
        Ok(ok) => ok,
        Err(login) => return Ok(login),
    };
    let (id, path) = target(&form)?;
    let place = Place {
        origin_id: id.to_string(),
        origin_path: path,
        ..Place::default()
    };
    let (_, dir, old) = entry_of(&place)?;
    let name = new_name(&form, "name")?;
    if name != old {
        s.endpoint
            .rename(
                Some(&v.who),
                id,
                &format!("{dir}{old}"),
                &format!("{dir}{name}"),
            )
            .await?;
    }
    Ok(back_to(id, &dir, "rename", &name))
}

async fn delete(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AppError> {
    let (v, form) = match posted(&s, &headers, &body, PAGE).await? {
        Ok(ok) => ok,
        Err(login) => return Ok(login),
    };
    let (id, path) = target(&form)?;
    let place = Place {
        origin_id: id.to_string(),
        origin_path: path,
        ..Place::default()
    };
    let (_, dir, name) = entry_of(&place)?;
    s.endpoint
        .delete(Some(&v.who), id, &format!("{dir}{name}"), true)
        .await?;
    Ok(back_to(id, &dir, "delete", &name))
}

/// The upload form without scripts: a multipart body, each file streamed to a temporary name and renamed
/// only when whole. (With scripts the page uploads in resumable chunks instead.)
async fn upload(
    State(s): State<AppState>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    mut parts: Multipart,
) -> Result<Response, AppError> {
    let bad = |m: String| AppError::new(StatusCode::BAD_REQUEST, m);
    let mut fields: HashMap<String, String> = HashMap::new();
    let mut names = Vec::new();
    let mut who = None;
    while let Some(mut part) = parts
        .next_field()
        .await
        .map_err(|e| bad(format!("the upload could not be read: {e}")))?
    {
        let field = part.name().unwrap_or("").to_string();
        if field != "file" {
            let value = part
                .text()
                .await
                .map_err(|e| bad(format!("the form could not be read: {e}")))?;
            fields.insert(field, value);
            continue;
        }
        // The form's other fields come first: the session and place must be known before any byte is kept.
        if who.is_none() {
            who = Some(upload_visitor(&s, &headers, &uri, &fields).await?);
        }
        let Some(Ok(v)) = &who else { break };
        let (id, dir) = target(&fields)?;
        let file = part.file_name().unwrap_or("").to_string();
        if file.is_empty() {
            continue;
        }
        let name = new_name(&HashMap::from([("n".to_string(), file)]), "n")?;
        let path = format!("{}{name}", with_slash(&dir));
        let mut up = s.endpoint.write(Some(&v.who), id, &path, true).await?;
        loop {
            match part.chunk().await {
                Ok(Some(chunk)) => {
                    if let Err(e) = up.write(chunk).await {
                        let _ = up.abort().await;
                        return Err(ferry_endpoint::EndpointError::from(e).into());
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    // nothing stays under the name of a file whose upload broke
                    let _ = up.abort().await;
                    return Err(bad(format!("the upload of {name} was interrupted: {e}")));
                }
            }
        }
        up.commit()
            .await
            .map_err(ferry_endpoint::EndpointError::from)?;
        names.push(name);
    }
    match who {
        Some(Err(login)) => Ok(login),
        Some(Ok(_)) if !names.is_empty() => {
            let (id, dir) = target(&fields)?;
            Ok(back_to(id, &with_slash(&dir), "upload", &names.join(", ")))
        }
        _ => Err(bad("choose at least one file to upload".into())),
    }
}

/// The session behind an upload form, checked against its anti-forgery field.
async fn upload_visitor(
    s: &AppState,
    headers: &HeaderMap,
    uri: &Uri,
    fields: &HashMap<String, String>,
) -> Result<Result<Visitor, Response>, AppError> {
    let v = match visitor(s, headers, uri).await? {
        Ok(v) => v,
        Err(_) => {
            return Ok(Err(
                Redirect::to(&link("/v2/web/login", &[("next", PAGE)])).into_response()
            ));
        }
    };
    let token = fields.get("csrf").map(String::as_str).unwrap_or("");
    if !s.auth.csrf_ok(&v.session, token) {
        return Err(AppError::new(
            StatusCode::FORBIDDEN,
            "This upload was not sent from a page of this session. Nothing was stored: reload the page \
             and try again.",
        ));
    }
    Ok(Ok(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_one_component() {
        let f = |n: &str| {
            new_name(
                &HashMap::from([("name".to_string(), n.to_string())]),
                "name",
            )
        };
        assert!(f("results").is_ok());
        assert!(f("a b.txt").is_ok());
        for bad in ["", " ", ".", "..", "a/b", "/x", "a\0b"] {
            assert!(f(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn data_urls_encode_each_segment() {
        let id = Uuid::nil();
        assert_eq!(
            data_url(id, "/a b/c#d?.txt", true),
            format!("/data/{id}/a%20b/c%23d%3F.txt?download")
        );
    }

    #[test]
    fn filters_match_names_containing_the_text() {
        let place = Place {
            filter: "run".into(),
            ..Place::default()
        };
        assert!(list_query(&place).is_ok());
    }
}
