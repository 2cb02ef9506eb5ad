//! A person's sharing and finding commands through the Transfer API: permissions on guest collections
//! (`share`), e-mail invitations (`invite`, a Ferry extension), bookmarks, and the collection search.

use std::collections::HashMap;

use anyhow::bail;
use clap::Subcommand;
use ferry_client::{FerryClient, Method};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::Global;
use crate::files::{CollPath, report};
use crate::output::{Format, print_list, print_record};
use crate::session::{Conn, Connection};

async fn transfer(g: &Global, conn: &Connection) -> anyhow::Result<(Conn, FerryClient)> {
    let mut c = Conn::open(g, conn).await?;
    let t = c.transfer().await?;
    Ok((c, t))
}

// ---- collection search ----

/// The `filter_scope` values of `endpoint_search`.
const SEARCH_SCOPES: [&str; 9] = [
    "all",
    "my-endpoints",
    "my-gcp-endpoints",
    "recently-used",
    "in-use",
    "shared-by-me",
    "shared-with-me",
    "hide-no-permissions",
    "administered-by-me",
];

const ENTITY_TYPES: [&str; 5] = [
    "GCP_mapped_collection",
    "GCP_guest_collection",
    "GCSv5_endpoint",
    "GCSv5_mapped_collection",
    "GCSv5_guest_collection",
];

#[derive(clap::Args)]
pub struct SearchArgs {
    /// Words to look for in names, descriptions, owners and keywords.
    text: Option<String>,
    /// Which collections to search.
    #[arg(long, value_parser = SEARCH_SCOPES)]
    scope: Option<String>,
    /// Only this kind of entity.
    #[arg(long, value_parser = ENTITY_TYPES)]
    entity_type: Option<String>,
    /// Show at most N results.
    #[arg(long, value_name = "N", default_value_t = 25)]
    limit: u64,
    #[command(flatten)]
    conn: Connection,
}

const SEARCH_FIELDS: &[(&str, &str)] = &[
    ("ID", "id"),
    ("Display name", "display_name"),
    ("Owner", "owner_string"),
    ("Entity type", "entity_type"),
];

/// `ferry collection search`: pages through `endpoint_search` while it says there is more.
pub async fn collection_search(g: &Global, a: SearchArgs) -> anyhow::Result<()> {
    let (_, t) = transfer(g, &a.conn).await?;
    let mut found: Vec<Value> = Vec::new();
    loop {
        let want = a.limit.saturating_sub(found.len() as u64).min(100);
        if want == 0 {
            break;
        }
        let mut q = vec![
            ("limit", want.to_string()),
            ("offset", found.len().to_string()),
        ];
        if let Some(x) = &a.text {
            q.push(("filter_fulltext", x.clone()));
        }
        if let Some(x) = &a.scope {
            q.push(("filter_scope", x.clone()));
        }
        if let Some(x) = &a.entity_type {
            q.push(("filter_entity_type", x.clone()));
        }
        let v = t
            .json(Method::GET, "/v0.10/endpoint_search", &q, None)
            .await?;
        let page = v["DATA"].as_array().cloned().unwrap_or_default();
        let empty = page.is_empty();
        found.extend(page);
        if empty || v["has_next_page"] != json!(true) {
            break;
        }
    }
    found.truncate(a.limit as usize);
    print_list(g.format, &found, SEARCH_FIELDS);
    Ok(())
}

// ---- share ----

#[derive(clap::Args)]
#[group(id = "principal", required = true, multiple = false)]
pub struct Principal {
    /// A person: identity id or username (a bare name is name@<auth domain>).
    #[arg(long, value_name = "ID_OR_USERNAME")]
    identity: Option<String>,
    /// The members of a group.
    #[arg(long, value_name = "GROUP_ID")]
    group: Option<Uuid>,
    /// Everyone who is logged in.
    #[arg(long)]
    all_authenticated: bool,
    /// Everyone, logged in or not (the files can be fetched over HTTPS without a token).
    #[arg(long)]
    anonymous: bool,
    /// Someone by e-mail address: the server mails them a link with a single-use code, and the permission
    /// applies to the account that redeems it (`ferry invite redeem CODE`, or the link in a browser).
    #[arg(long, value_name = "ADDRESS")]
    email: Option<String>,
}

#[derive(Subcommand)]
pub enum ShareCmd {
    /// Give someone access to a file or folder of a guest collection you manage.
    ///
    /// A path ending in / is a folder; one without is checked, and taken as a folder when it is one. The
    /// collection alone shares all of it.
    Create {
        /// COLLECTION_ID:/path to share.
        target: CollPath,
        #[command(flatten)]
        principal: Principal,
        /// r: read; rw: read and write.
        #[arg(long, value_parser = ["r", "rw"], default_value = "r")]
        permissions: String,
        /// When the permission ends (ISO 8601, e.g. 2030-01-31T00:00:00Z).
        #[arg(long, value_name = "ISO8601")]
        expires: Option<String>,
        /// Tell this address about the new permission by e-mail.
        #[arg(long, value_name = "ADDRESS")]
        notify_email: Option<String>,
        /// A message for the e-mail (the notification's or the invitation's).
        #[arg(long, value_name = "TEXT")]
        message: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
    /// The permissions of a guest collection (those of its administrators and access managers included).
    List {
        collection: Uuid,
        #[command(flatten)]
        conn: Connection,
    },
    /// Change a permission's rights or end date (only the options given change).
    Update {
        collection: Uuid,
        rule_id: Uuid,
        #[arg(long, value_parser = ["r", "rw"])]
        permissions: Option<String>,
        /// When the permission ends (ISO 8601).
        #[arg(long, value_name = "ISO8601")]
        expires: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
    /// Withdraw a permission (or a pending invitation's).
    Delete {
        collection: Uuid,
        rule_id: Uuid,
        #[command(flatten)]
        conn: Connection,
    },
}

const ACCESS_FIELDS: &[(&str, &str)] = &[
    ("Rule ID", "rule"),
    ("Principal type", "principal_type"),
    ("Principal", "principal"),
    ("Name", "name"),
    ("Path", "path"),
    ("Permissions", "permissions"),
    ("Expires", "expiration_date"),
];

fn access_path(collection: Uuid, rest: &str) -> String {
    format!("/v0.10/endpoint/{collection}/{rest}")
}

/// The identity id of an id or username.
async fn identity_id(conn: &mut Conn, raw: &str) -> anyhow::Result<Uuid> {
    conn.identity_id(raw)
        .await
        .map_err(|e| anyhow::anyhow!("--identity: {e:#}"))
}

/// The rule's path as the server wants it: folders end in `/`. A path without one is looked up.
async fn rule_path(t: &FerryClient, target: &CollPath) -> anyhow::Result<String> {
    let Some(p) = target.path.as_deref() else {
        return Ok("/".into());
    };
    if p.ends_with('/') {
        return Ok(p.to_string());
    }
    let stat = t
        .json(
            Method::GET,
            &format!("/v0.10/operation/endpoint/{}/stat", target.collection),
            &[("path", p.to_string())],
            None,
        )
        .await;
    match stat {
        Ok(doc) if doc["type"] == "dir" => Ok(format!("{p}/")),
        Ok(_) => Ok(p.to_string()),
        Err(ferry_client::ClientError::Api { status: 404, .. }) => bail!(
            "{target} does not exist; to share a folder that will be created later, end the path with /"
        ),
        Err(e) => Err(e.into()),
    }
}

/// Usernames of identity principals, for people reading the list; empty when Auth will not say.
async fn usernames(conn: &mut Conn, rules: &[Value]) -> HashMap<String, String> {
    let ids: Vec<&str> = rules
        .iter()
        .filter(|r| r["principal_type"] == "identity")
        .filter_map(|r| r["principal"].as_str())
        .filter(|p| !p.is_empty())
        .collect();
    if ids.is_empty() {
        return HashMap::new();
    }
    let Ok(auth) = conn.auth().await else {
        return HashMap::new();
    };
    let found = auth
        .json(
            Method::GET,
            "/v2/api/identities",
            &[("ids", ids.join(","))],
            None,
        )
        .await
        .unwrap_or(Value::Null);
    found["identities"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| {
            Some((
                i["id"].as_str()?.to_string(),
                i["username"].as_str()?.to_string(),
            ))
        })
        .collect()
}

pub async fn share(g: &Global, cmd: ShareCmd) -> anyhow::Result<()> {
    match cmd {
        ShareCmd::Create {
            target,
            principal: who,
            permissions,
            expires,
            notify_email,
            message,
            conn,
        } => {
            let (mut c, t) = transfer(g, &conn).await?;
            let (kind, principal, described) = if let Some(raw) = &who.identity {
                let id = identity_id(&mut c, raw).await?;
                ("identity", id.to_string(), raw.clone())
            } else if let Some(id) = who.group {
                (
                    "group",
                    id.to_string(),
                    format!("the members of group {id}"),
                )
            } else if who.all_authenticated {
                (
                    "all_authenticated_users",
                    String::new(),
                    "everyone logged in".into(),
                )
            } else if who.anonymous {
                ("anonymous", String::new(), "everyone".into())
            } else if let Some(addr) = &who.email {
                (
                    "invitation",
                    addr.clone(),
                    format!("whoever redeems the invitation sent to {addr}"),
                )
            } else {
                bail!(
                    "say whom to share with: --identity, --group, --all-authenticated, --anonymous or --email"
                );
            };
            let path = rule_path(&t, &target).await?;
            let mut d = Map::new();
            d.insert("DATA_TYPE".into(), json!("access"));
            d.insert("principal_type".into(), json!(kind));
            d.insert("principal".into(), json!(principal));
            d.insert("path".into(), json!(path));
            d.insert("permissions".into(), json!(permissions));
            for (key, v) in [
                ("expiration_date", expires),
                ("notify_email", notify_email),
                ("notify_message", message),
            ] {
                if let Some(v) = v {
                    d.insert(key.into(), json!(v));
                }
            }
            let v = t
                .json(
                    Method::POST,
                    &access_path(target.collection, "access"),
                    &[],
                    Some(&Value::Object(d)),
                )
                .await?;
            let rights = if permissions == "rw" {
                "read and write"
            } else {
                "read"
            };
            let rule = v["access_id"]
                .as_str()
                .map_or_else(|| v["access_id"].to_string(), str::to_string);
            report(
                g,
                &v,
                &format!(
                    "Permission {rule}: {described} may {rights} {}:{path}.",
                    target.collection
                ),
            );
        }
        ShareCmd::List { collection, conn } => {
            let (mut c, t) = transfer(g, &conn).await?;
            let v = t
                .json(
                    Method::GET,
                    &access_path(collection, "access_list"),
                    &[],
                    None,
                )
                .await?;
            let mut rules = v["DATA"].as_array().cloned().unwrap_or_default();
            if g.format == Format::Json {
                println!("{}", serde_json::to_string_pretty(&rules)?);
                return Ok(());
            }
            let names = usernames(&mut c, &rules).await;
            for r in &mut rules {
                // Role holders' implicit permissions have a role id instead of a rule id.
                r["rule"] = match (&r["id"], &r["role_type"]) {
                    (Value::Null, Value::String(role)) => json!(format!("({role} role)")),
                    (id, _) => id.clone(),
                };
                if let Some(n) = r["principal"].as_str().and_then(|p| names.get(p)) {
                    r["name"] = json!(n);
                }
            }
            print_list(g.format, &rules, ACCESS_FIELDS);
        }
        ShareCmd::Update {
            collection,
            rule_id,
            permissions,
            expires,
            conn,
        } => {
            let mut d = Map::new();
            if let Some(p) = permissions {
                d.insert("permissions".into(), json!(p));
            }
            if let Some(e) = expires {
                d.insert("expiration_date".into(), json!(e));
            }
            if d.is_empty() {
                bail!("nothing to update: give --permissions or --expires");
            }
            d.insert("DATA_TYPE".into(), json!("access"));
            let (_, t) = transfer(g, &conn).await?;
            let v = t
                .json(
                    Method::PUT,
                    &access_path(collection, &format!("access/{rule_id}")),
                    &[],
                    Some(&Value::Object(d)),
                )
                .await?;
            report(g, &v, &format!("Updated permission {rule_id}."));
        }
        ShareCmd::Delete {
            collection,
            rule_id,
            conn,
        } => {
            let (_, t) = transfer(g, &conn).await?;
            let v = t
                .json(
                    Method::DELETE,
                    &access_path(collection, &format!("access/{rule_id}")),
                    &[],
                    None,
                )
                .await?;
            report(g, &v, &format!("Deleted permission {rule_id}."));
        }
    }
    Ok(())
}

// ---- invitations ----

#[derive(Subcommand)]
pub enum InviteCmd {
    /// Accept an invitation: its permission becomes yours (the account you are logged in as).
    Redeem {
        /// The code from the invitation e-mail.
        code: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// The invitations sent for a guest collection you manage, and whether they were redeemed.
    List {
        collection: Uuid,
        #[command(flatten)]
        conn: Connection,
    },
}

const INVITATION_FIELDS: &[(&str, &str)] = &[
    ("ID", "id"),
    ("Email", "email"),
    ("Rule ID", "access_id"),
    ("Expires", "expires"),
    ("Redeemed", "redeemed"),
];

pub async fn invite(g: &Global, cmd: InviteCmd) -> anyhow::Result<()> {
    match cmd {
        InviteCmd::Redeem { code, conn } => {
            let (_, t) = transfer(g, &conn).await?;
            let v = t
                .json(
                    Method::POST,
                    "/v0.10/invitation/redeem",
                    &[],
                    Some(&json!({"code": code.trim()})),
                )
                .await?;
            let rights = if v["permissions"] == "rw" {
                "read and write"
            } else {
                "read"
            };
            let name = v["collection_display_name"].as_str().unwrap_or("");
            let coll = v["collection_id"].as_str().unwrap_or("?");
            let path = v["path"].as_str().unwrap_or("/");
            report(
                g,
                &v,
                &format!("You may now {rights} {coll}:{path} ({name})."),
            );
        }
        InviteCmd::List { collection, conn } => {
            let (_, t) = transfer(g, &conn).await?;
            let v = t
                .json(
                    Method::GET,
                    &access_path(collection, "invitation_list"),
                    &[],
                    None,
                )
                .await?;
            let docs = v["DATA"].as_array().cloned().unwrap_or_default();
            print_list(g.format, &docs, INVITATION_FIELDS);
        }
    }
    Ok(())
}

// ---- bookmarks ----

#[derive(Subcommand)]
pub enum BookmarkCmd {
    /// Your bookmarks.
    List {
        #[command(flatten)]
        conn: Connection,
    },
    /// Bookmark a folder: NAME for COLLECTION_ID:/path (COLLECTION_ID alone: its default folder).
    Create {
        name: String,
        target: CollPath,
        #[command(flatten)]
        conn: Connection,
    },
    /// Give a bookmark another name.
    Rename {
        id: Uuid,
        new_name: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Delete a bookmark.
    Delete {
        id: Uuid,
        #[command(flatten)]
        conn: Connection,
    },
}

const BOOKMARK_FIELDS: &[(&str, &str)] = &[
    ("ID", "id"),
    ("Name", "name"),
    ("Collection", "endpoint_id"),
    ("Path", "path"),
];

pub async fn bookmark(g: &Global, cmd: BookmarkCmd) -> anyhow::Result<()> {
    match cmd {
        BookmarkCmd::List { conn } => {
            let (_, t) = transfer(g, &conn).await?;
            let v = t
                .json(Method::GET, "/v0.10/bookmark_list", &[], None)
                .await?;
            let docs = v["DATA"].as_array().cloned().unwrap_or_default();
            print_list(g.format, &docs, BOOKMARK_FIELDS);
        }
        BookmarkCmd::Create { name, target, conn } => {
            let (_, t) = transfer(g, &conn).await?;
            let doc = json!({"DATA_TYPE": "bookmark", "name": name,
                             "endpoint_id": target.collection, "path": target.path()});
            let v = t
                .json(Method::POST, "/v0.10/bookmark", &[], Some(&doc))
                .await?;
            print_record(g.format, &v, BOOKMARK_FIELDS);
        }
        BookmarkCmd::Rename { id, new_name, conn } => {
            let (_, t) = transfer(g, &conn).await?;
            let v = t
                .json(
                    Method::PUT,
                    &format!("/v0.10/bookmark/{id}"),
                    &[],
                    Some(&json!({"name": new_name})),
                )
                .await?;
            print_record(g.format, &v, BOOKMARK_FIELDS);
        }
        BookmarkCmd::Delete { id, conn } => {
            let (_, t) = transfer(g, &conn).await?;
            let v = t
                .json(Method::DELETE, &format!("/v0.10/bookmark/{id}"), &[], None)
                .await?;
            report(g, &v, &format!("Deleted bookmark {id}."));
        }
    }
    Ok(())
}
