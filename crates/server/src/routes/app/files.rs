//! The file manager: choose a collection, browse a folder (sorted, filtered, paged on the server, so a folder
//! of 100,000 entries costs one page of HTML), make folders, rename, delete, download and upload.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Multipart, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use ferry_endpoint::index::SearchQuery;
use ferry_endpoint::listing::{ListQuery, Listed};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{Posted, Section, Visitor, collection_id, link, notice, shell, size};
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
        .route("/file-manager/transfer", post(transfer))
}

/// Where the file manager is: one or two panes (a collection and folder each, with how each listing is
/// shown), and what the last action did. Every part of the state is in the URL, so any view can be
/// bookmarked or shared; every link and form of a page carries the whole state.
#[derive(Debug, Default, Clone, serde::Deserialize)]
#[serde(default)]
pub(crate) struct Place {
    origin_id: String,
    origin_path: String,
    sort: String,
    order: String,
    filter: String,
    page: String,
    destination_id: String,
    destination_path: String,
    dest_sort: String,
    dest_order: String,
    dest_filter: String,
    dest_page: String,
    /// Collection search (when a pane has no collection yet), and for which pane.
    q: String,
    scope: String,
    pick: String,
    /// What the last action did (a fixed set of messages; `name` fills them in), and a task it started.
    done: String,
    name: String,
    task: String,
}

/// One of the two panes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Side {
    Origin,
    Destination,
}

impl Side {
    fn other(self) -> Side {
        match self {
            Side::Origin => Side::Destination,
            Side::Destination => Side::Origin,
        }
    }

    /// The URL parameters of this pane: collection, path, sort, order, filter, page.
    fn names(self) -> [&'static str; 6] {
        match self {
            Side::Origin => [
                "origin_id",
                "origin_path",
                "sort",
                "order",
                "filter",
                "page",
            ],
            Side::Destination => [
                "destination_id",
                "destination_path",
                "dest_sort",
                "dest_order",
                "dest_filter",
                "dest_page",
            ],
        }
    }

    fn label(self) -> &'static str {
        match self {
            Side::Origin => "left",
            Side::Destination => "right",
        }
    }
}

/// One pane's part of the state.
struct Pane<'a> {
    side: Side,
    id: &'a str,
    path: &'a str,
    sort: &'a str,
    order: &'a str,
    filter: &'a str,
    page: &'a str,
}

impl Pane<'_> {
    fn collection(&self) -> Result<Uuid, AppError> {
        collection_id(self.id)
    }

    fn path(&self) -> &str {
        if self.path.trim().is_empty() {
            "/~/"
        } else {
            self.path.trim()
        }
    }

    fn sort_field(&self) -> &'static str {
        match self.sort {
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
}

impl Place {
    fn pane(&self, side: Side) -> Pane<'_> {
        match side {
            Side::Origin => Pane {
                side,
                id: &self.origin_id,
                path: &self.origin_path,
                sort: &self.sort,
                order: &self.order,
                filter: &self.filter,
                page: &self.page,
            },
            Side::Destination => Pane {
                side,
                id: &self.destination_id,
                path: &self.destination_path,
                sort: &self.dest_sort,
                order: &self.dest_order,
                filter: &self.dest_filter,
                page: &self.dest_page,
            },
        }
    }

    fn two_panes(&self) -> bool {
        !self.destination_id.is_empty()
    }

    /// The view's lasting state (not what the last action did).
    fn state(&self) -> Vec<(&'static str, &str)> {
        let mut out = Vec::new();
        for side in [Side::Origin, Side::Destination] {
            let p = self.pane(side);
            let values = [p.id, p.path, p.sort, p.order, p.filter, p.page];
            out.extend(side.names().into_iter().zip(values));
        }
        out
    }

    /// The view's URL with some of its parameters changed.
    fn url(&self, changes: &[(&str, &str)]) -> String {
        let mut params: Vec<(&str, &str)> = self.state();
        for (k, v) in changes {
            match params.iter_mut().find(|(name, _)| name == k) {
                Some(p) => p.1 = v,
                None => params.push((k, v)),
            }
        }
        link(PAGE, &params)
    }

    /// Hidden fields carrying the state into a GET form, but for the fields the form itself sets.
    fn hidden(&self, except: &[&str]) -> String {
        self.state()
            .into_iter()
            .filter(|(k, v)| !v.is_empty() && !except.contains(k))
            .map(|(k, v)| {
                format!(
                    "<input type=\"hidden\" name=\"{k}\" value=\"{}\">",
                    escape(v)
                )
            })
            .collect()
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
        "transfer" => format!("Transfer started: {name}."),
        _ => return None,
    })
}

/// The notice of the last action; a task it started links to its page (the "View details" of a toast).
fn done_notice(place: &Place) -> String {
    let Some(message) = done_message(&place.done, &place.name) else {
        return String::new();
    };
    let details = match Uuid::parse_str(&place.task) {
        Ok(task) => format!(" <a href=\"/activity/{task}\">View details</a>"),
        Err(_) => String::new(),
    };
    format!(
        "<p class=\"notice ok\" role=\"status\" id=\"notice\">{}{details}</p>",
        escape(&message)
    )
}

async fn browse(
    State(s): State<AppState>,
    v: Visitor,
    Query(place): Query<Place>,
) -> Result<Response, AppError> {
    if place.origin_id.is_empty() {
        return chooser(&s, &v, &place, Side::Origin).await;
    }
    if place.pick == "destination" {
        return chooser(&s, &v, &place, Side::Destination).await;
    }
    let mut panes = vec![pane(&s, &v, &place, Side::Origin).await?];
    if place.two_panes() {
        panes.push(pane(&s, &v, &place, Side::Destination).await?);
    }
    let switch = if place.two_panes() {
        let mut one = place.clone();
        for (k, _) in Side::Destination.names().iter().zip(0..) {
            clear(&mut one, k);
        }
        format!(
            "<p><a href=\"{}\">Close the right pane</a></p>",
            escape(&one.url(&[]))
        )
    } else {
        format!(
            "<p><a href=\"{}\">Open a second pane</a> to transfer or sync between two folders</p>",
            escape(&place.url(&[("pick", "destination")]))
        )
    };
    let body = format!(
        "{done}{switch}<div class=\"panes\">{panes}</div>",
        done = done_notice(&place),
        panes = panes.concat()
    );
    Ok(shell(
        StatusCode::OK,
        Some(v.username()),
        Section::Files,
        "File Manager",
        &body,
    ))
}

fn clear(place: &mut Place, name: &str) {
    let field = match name {
        "destination_id" => &mut place.destination_id,
        "destination_path" => &mut place.destination_path,
        "dest_sort" => &mut place.dest_sort,
        "dest_order" => &mut place.dest_order,
        "dest_filter" => &mut place.dest_filter,
        "dest_page" => &mut place.dest_page,
        _ => return,
    };
    field.clear();
}

/// A pane without a collection yet: search, and the collections this person uses or administers.
async fn chooser(
    s: &AppState,
    v: &Visitor,
    place: &Place,
    side: Side,
) -> Result<Response, AppError> {
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
    let pick = if side == Side::Destination {
        "destination"
    } else {
        ""
    };
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
                escape(&place.url(&[("scope", k), ("q", &place.q), ("pick", pick)]))
            )
        })
        .collect::<String>();
    let [id_name, path_name, ..] = side.names();
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
                href = escape(&place.url(&[(id_name, id), (path_name, "")])),
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
    let title = match side {
        Side::Origin => "File Manager",
        Side::Destination => "Choose a collection for the right pane",
    };
    let body = format!(
        "<form method=\"get\" action=\"{PAGE}\" class=\"bar\" role=\"search\">{hidden}\
         <input type=\"hidden\" name=\"scope\" value=\"{scope}\"><input type=\"hidden\" name=\"pick\" value=\"{pick}\">\
         <label for=\"q\">Search collections</label>\
         <input id=\"q\" name=\"q\" type=\"search\" value=\"{q}\">\
         <button type=\"submit\">Search</button></form>\
         <nav aria-label=\"Collection lists\"><ul class=\"tabs\">{tabs}</ul></nav>{table}",
        hidden = place.hidden(&[]),
        q = escape(&place.q)
    );
    Ok(shell(
        StatusCode::OK,
        Some(v.username()),
        Section::Files,
        title,
        &body,
    ))
}

/// An element id of a pane: the left pane's are plain, the right pane's start with `dest-`.
fn eid(side: Side, base: &str) -> String {
    match side {
        Side::Origin => base.to_string(),
        Side::Destination => format!("dest-{base}"),
    }
}

/// The breadcrumb trail of `path`: each folder above links to itself.
fn breadcrumbs(place: &Place, side: Side, collection: &str, path: &str) -> String {
    let path_name = side.names()[1];
    let mut out = format!(
        "<nav aria-label=\"Breadcrumb, {} pane\" class=\"crumbs\"><ol><li><a href=\"{}\">{}</a></li>",
        side.label(),
        escape(&place.url(&[(path_name, "/")])),
        escape(collection)
    );
    let mut at = String::from("/");
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    for (i, part) in parts.iter().enumerate() {
        at.push_str(part);
        at.push('/');
        let current = if i + 1 == parts.len() {
            " aria-current=\"page\""
        } else {
            ""
        };
        out.push_str(&format!(
            "<li><a href=\"{}\"{current}>{}</a></li>",
            escape(&place.url(&[(path_name, &at)])),
            escape(part)
        ));
    }
    out.push_str("</ol></nav>");
    out
}

/// The listing's query: folders first, then the chosen order; the filter matches names containing the text.
fn list_query(pane: &Pane) -> Result<ListQuery, AppError> {
    let order = format!(
        "type ASC,{} {}",
        pane.sort_field(),
        if pane.descending() { "DESC" } else { "ASC" }
    );
    let text = pane.filter.trim();
    // `,` and `/` separate alternatives and clauses in the Transfer filter syntax: a name never holds `/`,
    // and a comma here means "either".
    let filter = format!("name:~*{}*", text.replace(',', "*,*"));
    let filters: Vec<&str> = if text.is_empty() {
        vec![]
    } else {
        vec![filter.as_str()]
    };
    let limit = PER_PAGE.to_string();
    let offset = ((pane.page() - 1) * PER_PAGE).to_string();
    Ok(ListQuery::parse(
        None,
        Some(&order),
        &filters,
        Some(&limit),
        Some(&offset),
    )?)
}

fn sort_header(place: &Place, pane: &Pane, field: &str, label: &str) -> String {
    let [_, _, sort_name, order_name, _, page_name] = pane.side.names();
    let current = pane.sort_field() == field;
    let (aria, next) = match (current, pane.descending()) {
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
        escape(&place.url(&[(sort_name, field), (order_name, next), (page_name, "")]))
    )
}

fn row(place: &Place, side: Side, id: Uuid, dir: &str, l: &Listed) -> String {
    let name = &l.entry.name;
    let path = format!("{dir}{name}");
    let is_dir = l.kind == "dir";
    let (cell, kind, size_text) = if is_dir {
        (
            format!(
                "<a href=\"{}\">{}/</a>",
                escape(&place.url(&[(side.names()[1], &with_slash(&path)), (side.names()[5], "")])),
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
    let back = place.url(&[]);
    let entry_link = |page: &str| {
        escape(&link(
            page,
            &[
                ("origin_id", &id.to_string()),
                ("origin_path", &path),
                ("back", &back),
            ],
        ))
    };
    let actions = format!(
        "<a href=\"{r}\" aria-label=\"Rename {n}\">Rename</a> <a href=\"{d}\" aria-label=\"Delete {n}\">Delete</a>",
        r = entry_link("/file-manager/rename"),
        d = entry_link("/file-manager/delete"),
        n = escape(name),
    );
    format!(
        "<tr><td><input type=\"checkbox\" name=\"item:{v}\" value=\"{k}\" form=\"{form}\" aria-label=\"Select {v}\"></td>\
         <th scope=\"row\">{cell}</th><td>{kind}</td><td class=\"num\">{size_text}</td><td>{m}</td>\
         <td class=\"actions\">{actions}</td></tr>",
        v = escape(name),
        k = if is_dir { "dir" } else { "file" },
        form = eid(side, "transfer"),
        m = escape(l.last_modified.trim_end_matches("+00:00")),
    )
}

/// The HTTPS URL of a file (its collection's data door on this server).
fn data_url(id: Uuid, path: &str, download: bool) -> String {
    let base = format!("/data/{id}{}", crate::routes::data::url_path(path));
    if download {
        format!("{base}?download")
    } else {
        base
    }
}

/// The "Transfer or Sync to…" form of a pane: its selected items go to the other pane's folder.
fn transfer_form(
    place: &Place,
    v: &Visitor,
    side: Side,
    id: Uuid,
    dir: &str,
) -> Result<String, AppError> {
    let other = place.pane(side.other());
    let other_id = other.collection()?;
    let e = |base: &str| eid(side, base);
    Ok(format!(
        "<form id=\"{form}\" method=\"post\" action=\"/file-manager/transfer\" class=\"transfer\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <input type=\"hidden\" name=\"back\" value=\"{back}\">\
         <input type=\"hidden\" name=\"submission_id\" value=\"{submission}\">\
         <input type=\"hidden\" name=\"source_id\" value=\"{id}\">\
         <input type=\"hidden\" name=\"source_path\" value=\"{dir_e}\">\
         <input type=\"hidden\" name=\"destination_id\" value=\"{other_id}\">\
         <input type=\"hidden\" name=\"destination_path\" value=\"{other_dir}\">\
         <details><summary>Transfer &amp; Sync options</summary><div class=\"dialog\">\
         <label for=\"{label_id}\">Label</label><input id=\"{label_id}\" name=\"label\" maxlength=\"128\">\
         <label for=\"{sync_id}\">Sync: transfer only files that</label>\
         <select id=\"{sync_id}\" name=\"sync_level\"><option value=\"\">(always transfer)</option>\
         <option value=\"0\">do not exist at the destination</option><option value=\"1\">differ in size</option>\
         <option value=\"2\">are newer at the source</option><option value=\"3\">differ in checksum</option></select>\
         <label><input type=\"checkbox\" name=\"verify_checksum\" value=\"true\" checked> Verify file integrity after transfer</label>\
         <label><input type=\"checkbox\" name=\"preserve_timestamp\" value=\"true\"> Preserve source modification times</label>\
         <label><input type=\"checkbox\" name=\"delete_destination_extra\" value=\"true\"> Delete files at the destination that are not at the source</label>\
         <label><input type=\"checkbox\" name=\"encrypt_data\" value=\"true\"> Encrypt the transfer</label>\
         <label><input type=\"checkbox\" name=\"notify\" value=\"true\" checked> E-mail me when it ends</label>\
         </div></details>\
         <button type=\"submit\">Start: transfer the selected items to the {to} pane</button></form>",
        form = e("transfer"),
        csrf = v.csrf,
        back = escape(&place.url(&[])),
        submission = Uuid::new_v4(),
        dir_e = escape(dir),
        other_dir = escape(&with_slash(other.path())),
        label_id = e("label"),
        sync_id = e("sync"),
        to = side.other().label(),
    ))
}

async fn pane(s: &AppState, v: &Visitor, place: &Place, side: Side) -> Result<String, AppError> {
    let p = place.pane(side);
    let id = p.collection()?;
    let query = list_query(&p)?;
    let (at, entries, total, unlisted) =
        s.endpoint.list(Some(&v.who), id, p.path(), &query).await?;
    let collection = s
        .endpoint
        .collection_name(id)
        .await?
        .unwrap_or_else(|| id.to_string());
    let dir = with_slash(&at.path);
    let [_, path_name, _, _, filter_name, page_name] = side.names();
    let page = p.page();
    let pages = total.div_ceil(PER_PAGE).max(1);
    let rows: String = entries
        .iter()
        .map(|l| row(place, side, id, &dir, l))
        .collect();
    let items = if total == 1 {
        "1 item".to_string()
    } else {
        format!("{total} items")
    };
    let shown = if p.filter.trim().is_empty() {
        items
    } else {
        format!("{items} match “{}”", escape(p.filter.trim()))
    };
    let empty = if entries.is_empty() {
        "<tr><td colspan=\"6\">Nothing here.</td></tr>"
    } else {
        ""
    };
    let paging = if pages > 1 {
        let to_page = |n: usize, rel: &str, text: &str| {
            format!(
                "<a href=\"{}\" rel=\"{rel}\">{text}</a>",
                escape(&place.url(&[(page_name, &n.to_string())]))
            )
        };
        format!(
            "<nav aria-label=\"Pages, {} pane\" class=\"pages\">{} <span>Page {page} of {pages}</span> {}</nav>",
            side.label(),
            if page > 1 {
                to_page(page - 1, "prev", "Previous page")
            } else {
                String::new()
            },
            if page < pages {
                to_page(page + 1, "next", "Next page")
            } else {
                String::new()
            },
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
    let id_s = id.to_string();
    let back = place.url(&[]);
    let posted_fields = format!(
        "<input type=\"hidden\" name=\"origin_id\" value=\"{id_s}\">\
         <input type=\"hidden\" name=\"origin_path\" value=\"{}\">\
         <input type=\"hidden\" name=\"back\" value=\"{}\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        escape(&dir),
        escape(&back),
        v.csrf
    );
    let transfer = if place.two_panes() {
        transfer_form(place, v, side, id, &dir)?
    } else {
        String::new()
    };
    let e = |base: &str| eid(side, base);
    Ok(format!(
        "<section class=\"pane\" aria-labelledby=\"{h}\"><h2 id=\"{h}\">{collection_e}: {dir_e}</h2>{unlisted}{crumbs}\
         <form method=\"get\" action=\"{PAGE}\" class=\"bar\">{keep_path}\
         <label for=\"{path_id}\">Path</label><input id=\"{path_id}\" name=\"{path_name}\" value=\"{dir_e}\">\
         <button type=\"submit\">Go</button></form>\
         <div class=\"tools\">\
         <form method=\"post\" action=\"/file-manager/mkdir\" class=\"bar\">{posted_fields}\
         <label for=\"{mkdir_id}\">New folder</label><input id=\"{mkdir_id}\" name=\"name\" required>\
         <button type=\"submit\">Create folder</button></form>\
         <form method=\"post\" action=\"/file-manager/upload\" enctype=\"multipart/form-data\" class=\"bar upload\" \
          data-collection=\"{id_s}\" data-folder=\"{dir_e}\" data-csrf=\"{csrf}\">{posted_fields}\
         <label for=\"{files_id}\">Upload files</label><input id=\"{files_id}\" name=\"file\" type=\"file\" multiple required>\
         <button type=\"submit\">Upload</button>\
         <p class=\"hint\">Or drop files on the list below. Large uploads resume where they stopped if the \
         connection drops.</p><div class=\"uploads\" aria-live=\"polite\"></div></form>\
         <p><a href=\"{share}\">Share this folder</a></p>{bookmark}</div>\
         <form method=\"get\" action=\"{PAGE}\" class=\"bar\" role=\"search\">{keep_filter}\
         <label for=\"{filter_id}\">Filter by name</label><input id=\"{filter_id}\" name=\"{filter_name}\" type=\"search\" value=\"{filter}\">\
         <button type=\"submit\">Filter</button></form>\
         {transfer}\
         <table class=\"listing\" id=\"{table_id}\" data-drop=\"true\"><caption>{dir_e} ({shown})</caption>\
         <thead><tr><td></td>{h_name}<th scope=\"col\">Type</th>{h_size}{h_time}<th scope=\"col\">Actions</th></tr></thead>\
         <tbody>{empty}{rows}</tbody></table>{paging}</section>",
        h = e("pane-h"),
        collection_e = escape(&collection),
        crumbs = breadcrumbs(place, side, &collection, &dir),
        keep_path = place.hidden(&[path_name, page_name]),
        keep_filter = place.hidden(&[filter_name, page_name]),
        path_id = e("path"),
        mkdir_id = e("new-folder"),
        files_id = e("files"),
        filter_id = e("filter"),
        table_id = e("listing"),
        dir_e = escape(&dir),
        csrf = v.csrf,
        share = escape(&link(
            "/file-manager/share",
            &[("origin_id", &id_s), ("origin_path", &dir)]
        )),
        filter = escape(p.filter),
        bookmark = super::bookmarks::bookmark_form(&v.csrf, id, &dir, &e("")),
        h_name = sort_header(place, &p, "name", "Name"),
        h_size = sort_header(place, &p, "size", "Size"),
        h_time = sort_header(place, &p, "last_modified", "Modified"),
    ))
}

/// The collection and folder a posted form acts in.
fn target(form: &HashMap<String, String>) -> Result<(Uuid, String), AppError> {
    let get = |k: &str| form.get(k).map(|v| v.trim()).unwrap_or("");
    let path = match get("origin_path") {
        "" => "/~/",
        p => p,
    };
    Ok((collection_id(get("origin_id"))?, path.to_string()))
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

/// The file manager view a form came from (its `back` field), if it is one: never another site or page.
fn view_of(back: Option<&str>) -> Option<&str> {
    let back = back?;
    let local = crate::routes::web::local_path(back)?;
    (local == PAGE || local.starts_with("/file-manager?")).then_some(local)
}

/// Back to the view the form came from (else the folder), saying what was done.
fn back_to(
    form: &HashMap<String, String>,
    id: Uuid,
    folder: &str,
    done: &[(&str, &str)],
) -> Response {
    let base = view_of(form.get("back").map(String::as_str))
        .map_or_else(|| folder_url(id, folder), str::to_string);
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in done {
        q.append_pair(k, v);
    }
    let sep = if base.contains('?') { '&' } else { '?' };
    Redirect::to(&format!("{base}{sep}{}", q.finish())).into_response()
}

async fn mkdir(State(s): State<AppState>, Posted(v, form): Posted) -> Result<Response, AppError> {
    let (id, dir) = target(&form)?;
    let name = new_name(&form, "name")?;
    let dir = with_slash(&dir);
    s.endpoint
        .mkdir(Some(&v.who), id, &format!("{dir}{name}"))
        .await?;
    Ok(back_to(
        &form,
        id,
        &dir,
        &[("done", "mkdir"), ("name", &name)],
    ))
}

/// What a rename or delete page is about: an entry, and the view to return to.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct EntryRef {
    origin_id: String,
    origin_path: String,
    back: String,
}

/// The entry's collection, folder and name.
fn entry_of(id: &str, path: &str) -> Result<(Uuid, String, String), AppError> {
    let id = collection_id(id)?;
    let path = path.trim().trim_end_matches('/');
    let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
    if name.is_empty() {
        return Err(AppError::new(
            StatusCode::BAD_REQUEST,
            "the root of a collection cannot be renamed or deleted",
        ));
    }
    Ok((id, format!("{dir}/"), name.to_string()))
}

/// A page that asks before acting on an entry (rename, delete): the entry must be there and visible to
/// this person before a form about it is shown.
async fn confirm_page(
    s: &AppState,
    v: &Visitor,
    entry: &EntryRef,
    action: &str,
    title: impl Fn(&str) -> String,
    fields: impl Fn(&str, &str) -> String,
    button: &str,
) -> Result<Response, AppError> {
    let (id, dir, name) = entry_of(&entry.origin_id, &entry.origin_path)?;
    s.endpoint
        .stat(Some(&v.who), id, &format!("{dir}{name}"))
        .await?;
    let cancel = view_of(Some(&entry.back)).map_or_else(|| folder_url(id, &dir), str::to_string);
    let body = format!(
        "<form method=\"post\" action=\"{action}\" class=\"dialog\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <input type=\"hidden\" name=\"origin_id\" value=\"{id}\">\
         <input type=\"hidden\" name=\"origin_path\" value=\"{path}\">\
         <input type=\"hidden\" name=\"back\" value=\"{back}\">{fields}\
         <button type=\"submit\">{button}</button> <a href=\"{cancel}\">Cancel</a></form>",
        csrf = v.csrf,
        path = escape(&format!("{dir}{name}")),
        back = escape(&cancel),
        fields = fields(&dir, &name),
        cancel = escape(&cancel),
    );
    Ok(shell(
        StatusCode::OK,
        Some(v.username()),
        Section::Files,
        &title(&name),
        &body,
    ))
}

async fn rename_form(
    State(s): State<AppState>,
    v: Visitor,
    Query(entry): Query<EntryRef>,
) -> Result<Response, AppError> {
    confirm_page(
        &s,
        &v,
        &entry,
        "/file-manager/rename",
        |name| format!("Rename {name}"),
        |_, name| {
            format!(
                "<label for=\"name\">New name for {n}</label>\
                 <input id=\"name\" name=\"name\" value=\"{n}\" required autofocus>",
                n = escape(name)
            )
        },
        "Rename",
    )
    .await
}

async fn delete_form(
    State(s): State<AppState>,
    v: Visitor,
    Query(entry): Query<EntryRef>,
) -> Result<Response, AppError> {
    confirm_page(
        &s,
        &v,
        &entry,
        "/file-manager/delete",
        |name| format!("Delete {name}?"),
        |dir, name| {
            format!(
                "<p>Delete <strong>{}</strong> from {}? A folder is deleted with everything in it. This \
                 cannot be undone.</p>",
                escape(name),
                escape(dir)
            )
        },
        "Delete",
    )
    .await
}

async fn rename(State(s): State<AppState>, Posted(v, form): Posted) -> Result<Response, AppError> {
    let (id, path) = target(&form)?;
    let (_, dir, old) = entry_of(&id.to_string(), &path)?;
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
    Ok(back_to(
        &form,
        id,
        &dir,
        &[("done", "rename"), ("name", &name)],
    ))
}

async fn delete(State(s): State<AppState>, Posted(v, form): Posted) -> Result<Response, AppError> {
    let (id, path) = target(&form)?;
    let (_, dir, name) = entry_of(&id.to_string(), &path)?;
    s.endpoint
        .delete(Some(&v.who), id, &format!("{dir}{name}"), true)
        .await?;
    Ok(back_to(
        &form,
        id,
        &dir,
        &[("done", "delete"), ("name", &name)],
    ))
}

/// `POST /file-manager/transfer`: the selected items of one pane to the other pane's folder, with the
/// options Globus offers; back to the view with a notice that links to the task.
async fn transfer(
    State(s): State<AppState>,
    Posted(v, form): Posted,
) -> Result<Response, AppError> {
    let get = |k: &str| form.get(k).map(|v| v.trim()).unwrap_or("");
    let flag = |k: &str| get(k) == "true";
    let source = collection_id(get("source_id"))?;
    let destination = collection_id(get("destination_id"))?;
    let (from, to) = (
        with_slash(get("source_path")),
        with_slash(get("destination_path")),
    );
    let mut items: Vec<(&str, bool)> = form
        .iter()
        .filter_map(|(k, kind)| Some((k.strip_prefix("item:")?, kind == "dir")))
        .collect();
    items.sort();
    if items.is_empty() {
        return Err(AppError::new(
            StatusCode::BAD_REQUEST,
            "Select at least one file or folder (the boxes in the first column) to transfer.",
        ));
    }
    let data: Vec<Value> = items
        .iter()
        .map(|(name, dir)| {
            json!({
                "DATA_TYPE": "transfer_item",
                "source_path": format!("{from}{name}"),
                "destination_path": format!("{to}{name}"),
                "recursive": dir,
            })
        })
        .collect();
    let mut doc = json!({
        "DATA_TYPE": "transfer",
        "source_endpoint": source.to_string(),
        "destination_endpoint": destination.to_string(),
        "verify_checksum": flag("verify_checksum"),
        "preserve_timestamp": flag("preserve_timestamp"),
        "delete_destination_extra": flag("delete_destination_extra"),
        "encrypt_data": flag("encrypt_data"),
        "notify_on_succeeded": flag("notify"),
        "notify_on_failed": flag("notify"),
        "DATA": data,
    });
    // the form's own id: submitting it twice (a reload, a double click) starts one task
    if let Ok(id) = Uuid::parse_str(get("submission_id")) {
        doc["submission_id"] = json!(id.to_string());
    }
    if !get("label").is_empty() {
        doc["label"] = json!(get("label"));
    }
    if let Ok(level) = get("sync_level").parse::<u8>() {
        doc["sync_level"] = json!(level);
    }
    let task = s.transfer.submit_transfer(&v.who, &doc).await?;
    let what = format!(
        "{} item{} to {to}",
        items.len(),
        if items.len() == 1 { "" } else { "s" }
    );
    Ok(back_to(
        &form,
        source,
        &from,
        &[
            ("done", "transfer"),
            ("name", &what),
            ("task", &task.task_id.to_string()),
        ],
    ))
}

/// The upload form without scripts: a multipart body, each file streamed to a temporary name and renamed
/// only when whole. (With scripts the page uploads in resumable chunks instead.)
async fn upload(
    State(s): State<AppState>,
    v: Visitor,
    mut parts: Multipart,
) -> Result<Response, AppError> {
    let bad = |m: String| AppError::new(StatusCode::BAD_REQUEST, m);
    let mut fields: HashMap<String, String> = HashMap::new();
    let mut names = Vec::new();
    let mut checked = false;
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
        // The form's other fields come first: its token and place are checked before any byte is kept.
        if !checked {
            let token = fields.get("csrf").map(String::as_str).unwrap_or("");
            if !s.auth.csrf_ok(&v.session, token) {
                return Err(AppError::new(
                    StatusCode::FORBIDDEN,
                    "This upload was not sent from a page of this session. Nothing was stored: reload \
                     the page and try again.",
                ));
            }
            checked = true;
        }
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
    if names.is_empty() {
        return Err(bad("choose at least one file to upload".into()));
    }
    let (id, dir) = target(&fields)?;
    let names = names.join(", ");
    Ok(back_to(
        &fields,
        id,
        &with_slash(&dir),
        &[("done", "upload"), ("name", &names)],
    ))
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
            filter: "run,jun".into(),
            ..Place::default()
        };
        assert!(list_query(&place.pane(Side::Origin)).is_ok());
    }

    #[test]
    fn forms_return_only_to_the_file_manager() {
        assert_eq!(
            view_of(Some("/file-manager?origin_id=x")),
            Some("/file-manager?origin_id=x")
        );
        assert_eq!(view_of(Some("/file-manager")), Some("/file-manager"));
        for bad in [
            "//evil.example/file-manager",
            "https://evil.example/",
            "/activity",
            "/file-managerx",
        ] {
            assert_eq!(view_of(Some(bad)), None, "{bad}");
        }
    }
}
