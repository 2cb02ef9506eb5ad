//! The endpoint administrator's commands, shaped like `globus-connect-server`'s: endpoint, storage-gateway,
//! collection, sharing-policy, user-credentials and auth-policy. They go through the manager API (`/api`) and
//! the Auth API with the caller's credentials (see `session`).

use anyhow::{Context, bail};
use clap::Subcommand;
use ferry_client::{FerryClient, Method};
use ferry_core::endpoint::POSIX_CONNECTOR_ID;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::Global;
use crate::output::{print_list, print_record};
use crate::session::{Conn, Connection};

/// `file:PATH` is read from the file; anything else must be JSON. Errors name the option.
pub fn json_arg(option: &str, raw: &str) -> anyhow::Result<Value> {
    let text = match raw.strip_prefix("file:") {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("{option}: cannot read {path}"))?,
        None => raw.to_string(),
    };
    serde_json::from_str(&text).with_context(|| format!("{option}: not valid JSON"))
}

/// A role or permission principal: an identity id or username (a bare name is `name@<auth domain>`),
/// `group:<id>`, or a full URN.
pub async fn principal_urn(conn: &mut Conn, raw: &str) -> anyhow::Result<String> {
    if raw.starts_with("urn:globus:auth:identity:") || raw.starts_with("urn:globus:auth:group:") {
        return Ok(raw.to_string());
    }
    if let Some(g) = raw.strip_prefix("group:") {
        let id =
            Uuid::parse_str(g).with_context(|| format!("principal: {g:?} is not a group id"))?;
        return Ok(format!("urn:globus:auth:group:{id}"));
    }
    let id = conn
        .identity_id(raw)
        .await
        .map_err(|e| anyhow::anyhow!("principal: {e:#}"))?;
    Ok(format!("urn:globus:auth:identity:{id}"))
}

/// Sets `key` when the option was given.
fn put<T: serde::Serialize>(doc: &mut Map<String, Value>, key: &str, v: Option<T>) {
    if let Some(v) = v {
        doc.insert(key.into(), json!(v));
    }
}

fn put_list(doc: &mut Map<String, Value>, key: &str, v: &[String]) {
    if !v.is_empty() {
        doc.insert(key.into(), json!(v));
    }
}

/// A pair of `--x/--no-x` flags: None when neither was given.
fn either(yes: bool, no: bool) -> Option<bool> {
    (yes || no).then_some(yes)
}

// ---- endpoint ----

#[derive(clap::Args)]
pub struct EndpointFields {
    #[arg(long)]
    display_name: Option<String>,
    #[arg(long)]
    organization: Option<String>,
    #[arg(long)]
    department: Option<String>,
    #[arg(long)]
    description: Option<String>,
    #[arg(long)]
    contact_email: Option<String>,
    #[arg(long)]
    contact_info: Option<String>,
    #[arg(long)]
    info_link: Option<String>,
    /// Comma-separated.
    #[arg(long, value_delimiter = ',')]
    keywords: Vec<String>,
    /// Shown in searches by everyone.
    #[arg(long, conflicts_with = "private")]
    public: bool,
    #[arg(long)]
    private: bool,
}

#[derive(Subcommand)]
pub enum EndpointCmd {
    /// Join this data directory to a hub as a new endpoint (needs `ferry login --url HUB` first); then run
    /// `ferry serve --role endpoint` with it.
    Setup(crate::site::SetupArgs),
    /// Remove this data directory's endpoint from its hub (the data and the local database stay).
    Delete,
    /// The endpoint's document.
    Show {
        #[command(flatten)]
        conn: Connection,
    },
    /// Change the endpoint's description (only the options given change).
    Update {
        #[command(flatten)]
        fields: EndpointFields,
        #[command(flatten)]
        conn: Connection,
    },
    /// Make an identity (id or username) the endpoint's owner.
    SetOwner {
        identity: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Roles on the endpoint: administrator, activity_manager, activity_monitor.
    #[command(subcommand)]
    Role(EndpointRoleCmd),
}

#[derive(Subcommand)]
pub enum EndpointRoleCmd {
    /// Grant ROLE to PRINCIPAL (identity id or username, group:<id>, or a URN).
    Create {
        #[arg(value_parser = ["administrator", "activity_manager", "activity_monitor"])]
        role: String,
        principal: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// The endpoint's roles and who holds them.
    List {
        #[command(flatten)]
        conn: Connection,
    },
    /// Take a role away (the owner role cannot be deleted).
    Delete {
        role_id: Uuid,
        #[command(flatten)]
        conn: Connection,
    },
}

const ENDPOINT_FIELDS: &[(&str, &str)] = &[
    ("ID", "id"),
    ("Display name", "display_name"),
    ("Organization", "organization"),
    ("Department", "department"),
    ("Description", "description"),
    ("Contact email", "contact_email"),
    ("Keywords", "keywords"),
    ("Public", "public"),
    ("Owner", "owner_id"),
    ("Manager URL", "gcs_manager_url"),
];

const ROLE_FIELDS: &[(&str, &str)] = &[
    ("Role ID", "id"),
    ("Collection", "collection"),
    ("Principal", "principal"),
    ("Role", "role"),
];

async fn identity_id(conn: &mut Conn, raw: &str) -> anyhow::Result<Uuid> {
    let urn = principal_urn(conn, raw).await?;
    urn.strip_prefix("urn:globus:auth:identity:")
        .and_then(|s| Uuid::parse_str(s).ok())
        .with_context(|| format!("{raw:?} is not an identity"))
}

async fn manager(g: &Global, conn: &Connection) -> anyhow::Result<(Conn, FerryClient)> {
    let mut c = Conn::open(g, conn).await?;
    let m = c.manager().await?;
    Ok((c, m))
}

fn one(docs: Vec<Value>) -> anyhow::Result<Value> {
    docs.into_iter()
        .next()
        .context("the server answered without a document")
}

pub async fn endpoint(g: &Global, cmd: EndpointCmd) -> anyhow::Result<()> {
    match cmd {
        EndpointCmd::Setup(args) => crate::site::setup(g, args).await?,
        EndpointCmd::Delete => crate::site::delete(g).await?,
        EndpointCmd::Show { conn } => {
            let (_, m) = manager(g, &conn).await?;
            let doc = one(m.manager(Method::GET, "/endpoint", &[], None).await?)?;
            print_record(g.format, &doc, ENDPOINT_FIELDS);
        }
        EndpointCmd::Update { fields: f, conn } => {
            let mut d = Map::new();
            put(&mut d, "display_name", f.display_name);
            put(&mut d, "organization", f.organization);
            put(&mut d, "department", f.department);
            put(&mut d, "description", f.description);
            put(&mut d, "contact_email", f.contact_email);
            put(&mut d, "contact_info", f.contact_info);
            put(&mut d, "info_link", f.info_link);
            put_list(&mut d, "keywords", &f.keywords);
            put(&mut d, "public", either(f.public, f.private));
            let doc = patch(g, &conn, "/endpoint", d).await?;
            print_record(g.format, &doc, ENDPOINT_FIELDS);
        }
        EndpointCmd::SetOwner { identity, conn } => {
            let (mut c, m) = manager(g, &conn).await?;
            let id = identity_id(&mut c, &identity).await?;
            m.manager(
                Method::PUT,
                "/endpoint/owner",
                &[],
                Some(&json!({"DATA_TYPE": "endpoint_owner#1.0.0", "identity_id": id})),
            )
            .await?;
            println!("The endpoint's owner is now {id}.");
        }
        EndpointCmd::Role(r) => match r {
            EndpointRoleCmd::Create {
                role,
                principal,
                conn,
            } => role_create(g, &conn, None, &role, &principal).await?,
            EndpointRoleCmd::List { conn } => role_list(g, &conn, None).await?,
            EndpointRoleCmd::Delete { role_id, conn } => role_delete(g, &conn, role_id).await?,
        },
    }
    Ok(())
}

async fn role_create(
    g: &Global,
    conn: &Connection,
    collection: Option<Uuid>,
    role: &str,
    principal: &str,
) -> anyhow::Result<()> {
    let (mut c, m) = manager(g, conn).await?;
    let mut doc = json!({"DATA_TYPE": "role#1.0.0", "role": role,
                         "principal": principal_urn(&mut c, principal).await?});
    if let Some(id) = collection {
        doc["collection"] = json!(id);
    }
    let r = one(m.manager(Method::POST, "/roles", &[], Some(&doc)).await?)?;
    print_record(g.format, &r, ROLE_FIELDS);
    Ok(())
}

async fn role_list(g: &Global, conn: &Connection, collection: Option<Uuid>) -> anyhow::Result<()> {
    let (_, m) = manager(g, conn).await?;
    let q: Vec<(&str, String)> = collection
        .map(|c| ("collection_id", c.to_string()))
        .into_iter()
        .collect();
    print_list(g.format, &m.manager_list("/roles", &q).await?, ROLE_FIELDS);
    Ok(())
}

async fn role_delete(g: &Global, conn: &Connection, id: Uuid) -> anyhow::Result<()> {
    delete(g, conn, &format!("/roles/{id}"), &format!("role {id}")).await
}

/// PATCHes the options given (refusing an update that names none) and returns the updated document.
async fn patch(
    g: &Global,
    conn: &Connection,
    path: &str,
    changes: Map<String, Value>,
) -> anyhow::Result<Value> {
    if changes.is_empty() {
        bail!("nothing to update: give at least one option (see --help)");
    }
    let (_, m) = manager(g, conn).await?;
    one(m
        .manager(Method::PATCH, path, &[], Some(&Value::Object(changes)))
        .await?)
}

async fn delete(g: &Global, conn: &Connection, path: &str, what: &str) -> anyhow::Result<()> {
    let (_, m) = manager(g, conn).await?;
    m.manager(Method::DELETE, path, &[], None).await?;
    println!("Deleted {what}.");
    Ok(())
}

// ---- storage gateways ----

#[derive(clap::Args)]
pub struct GatewayArgs {
    /// The folder on the server host that is the gateway's `/`.
    #[arg(long)]
    root: Option<String>,
    /// Identities must be from this domain (repeatable).
    #[arg(long = "domain")]
    domains: Vec<String>,
    /// Path restrictions: `file:PATH.json` or inline JSON (a path_restrictions document).
    #[arg(long)]
    restrict_paths: Option<String>,
    /// An identity mapping document: `file:PATH.json` or inline JSON (repeatable; tried in order).
    #[arg(long = "identity-mapping")]
    identity_mappings: Vec<String>,
    /// Only these accounts may use the gateway (repeatable).
    #[arg(long = "user-allow")]
    users_allow: Vec<String>,
    /// These accounts may not (repeatable).
    #[arg(long = "user-deny")]
    users_deny: Vec<String>,
    #[arg(long = "posix-groups-allow")]
    groups_allow: Vec<String>,
    #[arg(long = "posix-groups-deny")]
    groups_deny: Vec<String>,
}

impl GatewayArgs {
    fn document(self, display_name: Option<String>) -> anyhow::Result<Map<String, Value>> {
        let mut d = Map::new();
        put(&mut d, "display_name", display_name);
        put(&mut d, "root", self.root);
        put_list(&mut d, "allowed_domains", &self.domains);
        if let Some(r) = &self.restrict_paths {
            d.insert("restrict_paths".into(), json_arg("--restrict-paths", r)?);
        }
        if !self.identity_mappings.is_empty() {
            let docs = self
                .identity_mappings
                .iter()
                .map(|m| json_arg("--identity-mapping", m))
                .collect::<anyhow::Result<Vec<_>>>()?;
            d.insert("identity_mappings".into(), json!(docs));
        }
        put_list(&mut d, "users_allow", &self.users_allow);
        put_list(&mut d, "users_deny", &self.users_deny);
        if !self.groups_allow.is_empty() || !self.groups_deny.is_empty() {
            d.insert(
                "policies".into(),
                json!({"DATA_TYPE": "posix_storage_policies#1.0.0",
                       "groups_allow": self.groups_allow, "groups_deny": self.groups_deny}),
            );
        }
        Ok(d)
    }
}

#[derive(Subcommand)]
pub enum GatewayConnector {
    /// A POSIX file system on the server host.
    Posix {
        display_name: String,
        #[command(flatten)]
        args: GatewayArgs,
        #[command(flatten)]
        conn: Connection,
    },
}

#[derive(Subcommand)]
pub enum GatewayUpdate {
    /// Change a POSIX gateway (only the options given change).
    Posix {
        id: Uuid,
        #[arg(long)]
        display_name: Option<String>,
        #[command(flatten)]
        args: GatewayArgs,
        #[command(flatten)]
        conn: Connection,
    },
}

#[derive(Subcommand)]
pub enum GatewayCmd {
    /// Create a storage gateway for one connector (posix).
    #[command(subcommand)]
    Create(GatewayConnector),
    /// The storage gateways you may see.
    List {
        #[command(flatten)]
        conn: Connection,
    },
    /// One gateway, with its private policies (restrictions, mappings, user lists).
    Show {
        id: Uuid,
        #[command(flatten)]
        conn: Connection,
    },
    /// Change a storage gateway (only the options given change).
    #[command(subcommand)]
    Update(GatewayUpdate),
    /// Refused while collections use it.
    Delete {
        id: Uuid,
        #[command(flatten)]
        conn: Connection,
    },
}

const GATEWAY_FIELDS: &[(&str, &str)] = &[
    ("ID", "id"),
    ("Display name", "display_name"),
    ("Connector", "connector_id"),
    ("Root", "root"),
    ("Allowed domains", "allowed_domains"),
    ("Restrict paths", "restrict_paths"),
    ("Users allow", "users_allow"),
    ("Users deny", "users_deny"),
];

pub async fn storage_gateway(g: &Global, cmd: GatewayCmd) -> anyhow::Result<()> {
    let private = [("include", "private_policies".to_string())];
    match cmd {
        GatewayCmd::Create(GatewayConnector::Posix {
            display_name,
            args,
            conn,
        }) => {
            let mut d = args.document(Some(display_name))?;
            d.insert("DATA_TYPE".into(), json!("storage_gateway#1.3.0"));
            d.insert("connector_id".into(), json!(POSIX_CONNECTOR_ID));
            let (_, m) = manager(g, &conn).await?;
            let doc = one(m
                .manager(
                    Method::POST,
                    "/storage_gateways",
                    &[],
                    Some(&Value::Object(d)),
                )
                .await?)?;
            print_record(g.format, &doc, GATEWAY_FIELDS);
        }
        GatewayCmd::List { conn } => {
            let (_, m) = manager(g, &conn).await?;
            print_list(
                g.format,
                &m.manager_list("/storage_gateways", &[]).await?,
                &GATEWAY_FIELDS[..3],
            );
        }
        GatewayCmd::Show { id, conn } => {
            let (_, m) = manager(g, &conn).await?;
            let doc = one(m
                .manager(
                    Method::GET,
                    &format!("/storage_gateways/{id}"),
                    &private,
                    None,
                )
                .await?)?;
            print_record(g.format, &doc, GATEWAY_FIELDS);
        }
        GatewayCmd::Update(GatewayUpdate::Posix {
            id,
            display_name,
            args,
            conn,
        }) => {
            let d = args.document(display_name)?;
            let doc = patch(g, &conn, &format!("/storage_gateways/{id}"), d).await?;
            print_record(g.format, &doc, GATEWAY_FIELDS);
        }
        GatewayCmd::Delete { id, conn } => {
            delete(
                g,
                &conn,
                &format!("/storage_gateways/{id}"),
                &format!("storage gateway {id}"),
            )
            .await?;
        }
    }
    Ok(())
}

// ---- collections ----

#[derive(clap::Args)]
pub struct CollectionArgs {
    #[arg(long, conflicts_with = "private")]
    public: bool,
    #[arg(long)]
    private: bool,
    #[arg(long)]
    description: Option<String>,
    #[arg(long)]
    organization: Option<String>,
    #[arg(long)]
    department: Option<String>,
    #[arg(long)]
    contact_email: Option<String>,
    #[arg(long)]
    contact_info: Option<String>,
    #[arg(long)]
    info_link: Option<String>,
    #[arg(long = "keyword")]
    keywords: Vec<String>,
    /// The folder clients start in (`/~/`); may name $USER or $HOME.
    #[arg(long)]
    default_directory: Option<String>,
    #[arg(long, conflicts_with = "disable_guest_collections")]
    allow_guest_collections: bool,
    #[arg(long)]
    disable_guest_collections: bool,
    /// What guest collections may share: `file:PATH.json` or inline JSON (a path_restrictions document).
    #[arg(long)]
    sharing_restrict_paths: Option<String>,
    #[arg(long = "sharing-user-allow")]
    sharing_users_allow: Vec<String>,
    #[arg(long = "sharing-user-deny")]
    sharing_users_deny: Vec<String>,
    #[arg(long, conflicts_with = "disable_https")]
    enable_https: bool,
    #[arg(long)]
    disable_https: bool,
    #[arg(long, conflicts_with = "no_delete_protected")]
    delete_protected: bool,
    #[arg(long)]
    no_delete_protected: bool,
    #[arg(long)]
    user_message: Option<String>,
    /// An authentication policy (`ferry auth-policy create`) that guest collections' permissions must satisfy.
    #[arg(long)]
    guest_auth_policy_id: Option<Uuid>,
}

impl CollectionArgs {
    fn fill(self, d: &mut Map<String, Value>) -> anyhow::Result<()> {
        put(d, "public", either(self.public, self.private));
        put(d, "description", self.description);
        put(d, "organization", self.organization);
        put(d, "department", self.department);
        put(d, "contact_email", self.contact_email);
        put(d, "contact_info", self.contact_info);
        put(d, "info_link", self.info_link);
        put_list(d, "keywords", &self.keywords);
        put(d, "default_directory", self.default_directory);
        put(
            d,
            "allow_guest_collections",
            either(self.allow_guest_collections, self.disable_guest_collections),
        );
        if let Some(r) = &self.sharing_restrict_paths {
            d.insert(
                "sharing_restrict_paths".into(),
                json_arg("--sharing-restrict-paths", r)?,
            );
        }
        put_list(d, "sharing_users_allow", &self.sharing_users_allow);
        put_list(d, "sharing_users_deny", &self.sharing_users_deny);
        put(
            d,
            "enable_https",
            either(self.enable_https, self.disable_https),
        );
        put(
            d,
            "delete_protected",
            either(self.delete_protected, self.no_delete_protected),
        );
        put(d, "user_message", self.user_message);
        put(d, "guest_auth_policy_id", self.guest_auth_policy_id);
        Ok(())
    }
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum CollectionFilter {
    MappedCollections,
    GuestCollections,
    ManagedByMe,
    CreatedByMe,
}

#[derive(Subcommand)]
pub enum CollectionCmd {
    /// A mapped collection: BASE_PATH of a storage gateway (may name $USER, $HOME or ~).
    Create {
        storage_gateway_id: Uuid,
        base_path: String,
        display_name: String,
        /// The owner [default: you].
        #[arg(long)]
        identity_id: Option<String>,
        #[command(flatten)]
        args: CollectionArgs,
        #[command(flatten)]
        conn: Connection,
    },
    /// A guest collection: share BASE_PATH (inside MAPPED_ID) as your account.
    CreateGuest {
        mapped_id: Uuid,
        base_path: String,
        display_name: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// The collections you may see (--filter narrows them).
    List {
        #[arg(long, value_enum)]
        filter: Vec<CollectionFilter>,
        #[arg(long)]
        mapped_collection_id: Option<Uuid>,
        #[command(flatten)]
        conn: Connection,
    },
    /// One collection's document.
    Show {
        id: Uuid,
        /// Also show the sharing restrictions and user lists (needs the administrator role).
        #[arg(long)]
        include_private_policies: bool,
        #[command(flatten)]
        conn: Connection,
    },
    /// Change a collection (only the options given change).
    Update {
        id: Uuid,
        #[arg(long)]
        display_name: Option<String>,
        #[command(flatten)]
        args: CollectionArgs,
        #[command(flatten)]
        conn: Connection,
    },
    /// Delete a collection (a mapped one takes its guest collections along; refused while delete-protected).
    Delete {
        id: Uuid,
        #[command(flatten)]
        conn: Connection,
    },
    /// Give a mapped collection to another owner.
    SetOwner {
        id: Uuid,
        identity: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Roles on a collection: administrator, access_manager, activity_manager, activity_monitor.
    #[command(subcommand)]
    Role(CollectionRoleCmd),
    /// Find collections you can see, on this server, through the Transfer API's search.
    Search(crate::sharing::SearchArgs),
}

#[derive(Subcommand)]
pub enum CollectionRoleCmd {
    /// Grant ROLE on COLLECTION to PRINCIPAL (identity id or username, group:<id>, or a URN).
    Create {
        collection: Uuid,
        #[arg(value_parser = ["administrator", "access_manager", "activity_manager", "activity_monitor"])]
        role: String,
        principal: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// A collection's roles and who holds them.
    List {
        collection: Uuid,
        #[command(flatten)]
        conn: Connection,
    },
    /// Take a collection role away.
    Delete {
        role_id: Uuid,
        #[command(flatten)]
        conn: Connection,
    },
}

const COLLECTION_FIELDS: &[(&str, &str)] = &[
    ("ID", "id"),
    ("Display name", "display_name"),
    ("Type", "collection_type"),
    ("Base path", "collection_base_path"),
    ("Storage gateway", "storage_gateway_id"),
    ("Mapped collection", "mapped_collection_id"),
    ("Owner", "identity_id"),
    ("Public", "public"),
    ("Guest collections allowed", "allow_guest_collections"),
    ("Sharing restrict paths", "sharing_restrict_paths"),
    ("HTTPS URL", "https_url"),
    ("Delete protected", "delete_protected"),
];

pub async fn collection(g: &Global, cmd: CollectionCmd) -> anyhow::Result<()> {
    match cmd {
        CollectionCmd::Create {
            storage_gateway_id,
            base_path,
            display_name,
            identity_id: owner,
            args,
            conn,
        } => {
            let (mut c, m) = manager(g, &conn).await?;
            let mut d = Map::new();
            d.insert("DATA_TYPE".into(), json!("collection#1.13.0"));
            d.insert("collection_type".into(), json!("mapped"));
            d.insert("storage_gateway_id".into(), json!(storage_gateway_id));
            d.insert("collection_base_path".into(), json!(base_path));
            d.insert("display_name".into(), json!(display_name));
            if let Some(o) = owner {
                d.insert("identity_id".into(), json!(identity_id(&mut c, &o).await?));
            }
            args.fill(&mut d)?;
            let doc = one(m
                .manager(Method::POST, "/collections", &[], Some(&Value::Object(d)))
                .await?)?;
            print_record(g.format, &doc, COLLECTION_FIELDS);
        }
        CollectionCmd::CreateGuest {
            mapped_id,
            base_path,
            display_name,
            conn,
        } => {
            let (_, m) = manager(g, &conn).await?;
            let d = json!({"DATA_TYPE": "collection#1.13.0", "collection_type": "guest",
                           "mapped_collection_id": mapped_id, "collection_base_path": base_path,
                           "display_name": display_name});
            let created = m.manager(Method::POST, "/collections", &[], Some(&d)).await;
            let doc = one(created.map_err(no_account_hint)?)?;
            print_record(g.format, &doc, COLLECTION_FIELDS);
        }
        CollectionCmd::List {
            filter,
            mapped_collection_id,
            conn,
        } => {
            let (_, m) = manager(g, &conn).await?;
            let mut q: Vec<(&str, String)> = Vec::new();
            if !filter.is_empty() {
                let names: Vec<&str> = filter
                    .iter()
                    .map(|f| match f {
                        CollectionFilter::MappedCollections => "mapped_collections",
                        CollectionFilter::GuestCollections => "guest_collections",
                        CollectionFilter::ManagedByMe => "managed_by_me",
                        CollectionFilter::CreatedByMe => "created_by_me",
                    })
                    .collect();
                q.push(("filter", names.join(",")));
            }
            if let Some(id) = mapped_collection_id {
                q.push(("mapped_collection_id", id.to_string()));
            }
            print_list(
                g.format,
                &m.manager_list("/collections", &q).await?,
                &COLLECTION_FIELDS[..4],
            );
        }
        CollectionCmd::Show {
            id,
            include_private_policies,
            conn,
        } => {
            let (_, m) = manager(g, &conn).await?;
            let q: Vec<(&str, String)> = if include_private_policies {
                vec![("include", "private_policies".into())]
            } else {
                vec![]
            };
            let doc = one(m
                .manager(Method::GET, &format!("/collections/{id}"), &q, None)
                .await?)?;
            print_record(g.format, &doc, COLLECTION_FIELDS);
        }
        CollectionCmd::Update {
            id,
            display_name,
            args,
            conn,
        } => {
            let mut d = Map::new();
            put(&mut d, "display_name", display_name);
            args.fill(&mut d)?;
            let doc = patch(g, &conn, &format!("/collections/{id}"), d).await?;
            print_record(g.format, &doc, COLLECTION_FIELDS);
        }
        CollectionCmd::Delete { id, conn } => {
            delete(
                g,
                &conn,
                &format!("/collections/{id}"),
                &format!("collection {id}"),
            )
            .await?;
        }
        CollectionCmd::SetOwner { id, identity, conn } => {
            let (mut c, m) = manager(g, &conn).await?;
            let owner = identity_id(&mut c, &identity).await?;
            m.manager(
                Method::PUT,
                &format!("/collections/{id}/owner"),
                &[],
                Some(&json!({"DATA_TYPE": "collection_owner#1.0.0", "identity_id": owner})),
            )
            .await?;
            println!("Collection {id} now belongs to {owner}.");
        }
        CollectionCmd::Role(r) => match r {
            CollectionRoleCmd::Create {
                collection,
                role,
                principal,
                conn,
            } => role_create(g, &conn, Some(collection), &role, &principal).await?,
            CollectionRoleCmd::List { collection, conn } => {
                role_list(g, &conn, Some(collection)).await?
            }
            CollectionRoleCmd::Delete { role_id, conn } => role_delete(g, &conn, role_id).await?,
        },
        CollectionCmd::Search(a) => crate::sharing::collection_search(g, a).await?,
    }
    Ok(())
}

/// A guest collection acts as its creator's storage account: when the gateway gives the caller none (its allowed
/// domains, identity mapping or user lists), say so and what to do, beside the server's reason.
fn no_account_hint(e: ferry_client::ClientError) -> anyhow::Error {
    const NO_ACCOUNT: &[&str] = &[
        "domain the storage gateway allows",
        "identity mapping",
        "users_allow",
        "users_deny",
        "POSIX group",
    ];
    let refused = matches!(&e, ferry_client::ClientError::Api { status: 403, message, .. }
        if NO_ACCOUNT.iter().any(|n| message.contains(n)));
    if !refused {
        return e.into();
    }
    anyhow::Error::new(e).context(
        "a guest collection acts as its creator's storage account, and the storage gateway gives you none. \
         Create it as someone who has one there (`ferry login` as that person, then this command), or give your \
         identity an account: the gateway's --domain, --identity-mapping and --user-allow decide (an application \
         is <client id>@clients.<auth domain>; see the README, \"Guest collections\")",
    )
}

// ---- sharing policies ----

#[derive(Subcommand)]
pub enum SharingPolicyCmd {
    /// Extra sharing rights for some accounts on a mapped collection (added to its sharing restrictions).
    Create {
        collection_id: Uuid,
        /// The local account it applies to (repeatable; none: everyone).
        #[arg(long = "user")]
        users: Vec<String>,
        #[arg(long = "read")]
        read: Vec<String>,
        #[arg(long = "read-write")]
        read_write: Vec<String>,
        #[arg(long = "none")]
        none: Vec<String>,
        #[command(flatten)]
        conn: Connection,
    },
    /// A mapped collection's sharing policies.
    List {
        collection_id: Uuid,
        #[command(flatten)]
        conn: Connection,
    },
    /// One sharing policy.
    Show {
        id: Uuid,
        #[command(flatten)]
        conn: Connection,
    },
    /// Delete a sharing policy; guest collections lose what it allowed at once.
    Delete {
        id: Uuid,
        #[command(flatten)]
        conn: Connection,
    },
}

const POLICY_FIELDS: &[(&str, &str)] = &[
    ("ID", "id"),
    ("Collection", "collection_id"),
    ("Users", "users"),
    ("Sharing restrict paths", "sharing_restrict_paths"),
];

pub async fn sharing_policy(g: &Global, cmd: SharingPolicyCmd) -> anyhow::Result<()> {
    match cmd {
        SharingPolicyCmd::Create {
            collection_id,
            users,
            read,
            read_write,
            none,
            conn,
        } => {
            if read.is_empty() && read_write.is_empty() && none.is_empty() {
                bail!("give at least one of --read, --read-write, --none");
            }
            let mut d = json!({"DATA_TYPE": "sharing_policy#1.0.0", "collection_id": collection_id,
                "sharing_restrict_paths": {"DATA_TYPE": "path_restrictions#1.0.0",
                    "read": read, "read_write": read_write, "none": none}});
            if !users.is_empty() {
                d["users"] = json!(users);
            }
            let (_, m) = manager(g, &conn).await?;
            let doc = one(m
                .manager(Method::POST, "/sharing_policies", &[], Some(&d))
                .await?)?;
            print_record(g.format, &doc, POLICY_FIELDS);
        }
        SharingPolicyCmd::List {
            collection_id,
            conn,
        } => {
            let (_, m) = manager(g, &conn).await?;
            let docs = m
                .manager_list(
                    "/sharing_policies",
                    &[("collection_id", collection_id.to_string())],
                )
                .await?;
            print_list(g.format, &docs, POLICY_FIELDS);
        }
        SharingPolicyCmd::Show { id, conn } => {
            let (_, m) = manager(g, &conn).await?;
            let doc = one(m
                .manager(Method::GET, &format!("/sharing_policies/{id}"), &[], None)
                .await?)?;
            print_record(g.format, &doc, POLICY_FIELDS);
        }
        SharingPolicyCmd::Delete { id, conn } => {
            delete(
                g,
                &conn,
                &format!("/sharing_policies/{id}"),
                &format!("sharing policy {id}"),
            )
            .await?;
        }
    }
    Ok(())
}

// ---- user credentials ----

#[derive(Subcommand)]
pub enum CredentialCmd {
    /// Register your POSIX account on a gateway (the identity mapping decides which).
    PosixCreate {
        storage_gateway_id: Uuid,
        /// The account you expect to be mapped to; refused if the mapping says otherwise.
        #[arg(long)]
        username: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
    /// Your user credentials (storage accounts), on one gateway with --storage-gateway.
    List {
        #[arg(long)]
        storage_gateway: Option<Uuid>,
        #[command(flatten)]
        conn: Connection,
    },
    /// One of your user credentials.
    Show {
        id: Uuid,
        #[command(flatten)]
        conn: Connection,
    },
    /// Delete a user credential; guest collections acting through it stop working.
    Delete {
        id: Uuid,
        #[command(flatten)]
        conn: Connection,
    },
}

const CREDENTIAL_FIELDS: &[(&str, &str)] = &[
    ("ID", "id"),
    ("Identity", "identity_id"),
    ("Storage gateway", "storage_gateway_id"),
    ("Username", "username"),
];

pub async fn user_credentials(g: &Global, cmd: CredentialCmd) -> anyhow::Result<()> {
    match cmd {
        CredentialCmd::PosixCreate {
            storage_gateway_id,
            username,
            conn,
        } => {
            let mut d = json!({"DATA_TYPE": "user_credential#1.0.0",
                               "storage_gateway_id": storage_gateway_id});
            if let Some(u) = username {
                d["username"] = json!(u);
            }
            let (_, m) = manager(g, &conn).await?;
            let doc = one(m
                .manager(Method::POST, "/user_credentials", &[], Some(&d))
                .await?)?;
            print_record(g.format, &doc, CREDENTIAL_FIELDS);
        }
        CredentialCmd::List {
            storage_gateway,
            conn,
        } => {
            let (_, m) = manager(g, &conn).await?;
            let q: Vec<(&str, String)> = storage_gateway
                .map(|s| ("storage_gateway", s.to_string()))
                .into_iter()
                .collect();
            print_list(
                g.format,
                &m.manager_list("/user_credentials", &q).await?,
                CREDENTIAL_FIELDS,
            );
        }
        CredentialCmd::Show { id, conn } => {
            let (_, m) = manager(g, &conn).await?;
            let doc = one(m
                .manager(Method::GET, &format!("/user_credentials/{id}"), &[], None)
                .await?)?;
            print_record(g.format, &doc, CREDENTIAL_FIELDS);
        }
        CredentialCmd::Delete { id, conn } => {
            delete(
                g,
                &conn,
                &format!("/user_credentials/{id}"),
                &format!("user credential {id}"),
            )
            .await?;
        }
    }
    Ok(())
}

// ---- authentication policies ----

#[derive(clap::Args)]
pub struct AuthPolicyArgs {
    #[arg(long)]
    description: Option<String>,
    /// Identities must be from this domain (repeatable; wildcards like `*.edu`).
    #[arg(long = "include")]
    include: Vec<String>,
    /// Identities from this domain never count (repeatable).
    #[arg(long = "exclude")]
    exclude: Vec<String>,
    /// Globus groups policies into projects; kept for scripts that pass one.
    #[arg(long)]
    project_id: Option<String>,
}

impl AuthPolicyArgs {
    fn fill(self, d: &mut Map<String, Value>) {
        put(d, "description", self.description);
        put_list(d, "domain_constraints_include", &self.include);
        put_list(d, "domain_constraints_exclude", &self.exclude);
        put(d, "project_id", self.project_id);
    }
}

#[derive(Subcommand)]
pub enum AuthPolicyCmd {
    /// A policy that mapped collections name as guest_auth_policy_id.
    Create {
        display_name: String,
        #[command(flatten)]
        args: AuthPolicyArgs,
        #[command(flatten)]
        conn: Connection,
    },
    /// The authentication policies you manage.
    List {
        #[command(flatten)]
        conn: Connection,
    },
    /// One authentication policy.
    Show {
        id: Uuid,
        #[command(flatten)]
        conn: Connection,
    },
    /// Change a policy you created (only the options given change).
    Update {
        id: Uuid,
        #[arg(long)]
        display_name: Option<String>,
        #[command(flatten)]
        args: AuthPolicyArgs,
        #[command(flatten)]
        conn: Connection,
    },
    /// Refused while a collection uses it.
    Delete {
        id: Uuid,
        #[command(flatten)]
        conn: Connection,
    },
}

const AUTH_POLICY_FIELDS: &[(&str, &str)] = &[
    ("ID", "id"),
    ("Display name", "display_name"),
    ("Description", "description"),
    ("Include domains", "domain_constraints_include"),
    ("Exclude domains", "domain_constraints_exclude"),
];

pub async fn auth_policy(g: &Global, cmd: AuthPolicyCmd) -> anyhow::Result<()> {
    let call = |conn: Connection, m: Method, path: String, body: Option<Value>| async move {
        let mut c = Conn::open(g, &conn).await?;
        let auth = c.auth().await?;
        anyhow::Ok(auth.json(m, &path, &[], body.as_ref()).await?)
    };
    match cmd {
        AuthPolicyCmd::Create {
            display_name,
            args,
            conn,
        } => {
            let mut d = Map::new();
            d.insert("display_name".into(), json!(display_name));
            args.fill(&mut d);
            let v = call(
                conn,
                Method::POST,
                "/v2/api/policies".into(),
                Some(json!({"policy": d})),
            )
            .await?;
            print_record(g.format, &v["policy"], AUTH_POLICY_FIELDS);
        }
        AuthPolicyCmd::List { conn } => {
            let v = call(conn, Method::GET, "/v2/api/policies".into(), None).await?;
            let list = v["policies"].as_array().cloned().unwrap_or_default();
            print_list(g.format, &list, &AUTH_POLICY_FIELDS[..2]);
        }
        AuthPolicyCmd::Show { id, conn } => {
            let v = call(conn, Method::GET, format!("/v2/api/policies/{id}"), None).await?;
            print_record(g.format, &v["policy"], AUTH_POLICY_FIELDS);
        }
        AuthPolicyCmd::Update {
            id,
            display_name,
            args,
            conn,
        } => {
            let mut d = Map::new();
            put(&mut d, "display_name", display_name);
            args.fill(&mut d);
            if d.is_empty() {
                bail!("nothing to update: give at least one option (see --help)");
            }
            let v = call(
                conn,
                Method::PUT,
                format!("/v2/api/policies/{id}"),
                Some(json!({"policy": d})),
            )
            .await?;
            print_record(g.format, &v["policy"], AUTH_POLICY_FIELDS);
        }
        AuthPolicyCmd::Delete { id, conn } => {
            call(conn, Method::DELETE, format!("/v2/api/policies/{id}"), None).await?;
            println!("Deleted authentication policy {id}.");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_arguments_name_the_option() {
        let dir = tempfile_dir();
        let f = dir.join("r.json");
        std::fs::write(&f, r#"{"read": ["/data"]}"#).unwrap();
        assert_eq!(
            json_arg("--restrict-paths", &format!("file:{}", f.display())).unwrap()["read"][0],
            "/data"
        );
        assert_eq!(json_arg("--x", r#"{"a": 1}"#).unwrap()["a"], 1);
        let e = json_arg("--restrict-paths", "{nope")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("--restrict-paths"), "{e}");
        let e = json_arg("--restrict-paths", "file:/no/such")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("--restrict-paths: cannot read"), "{e}");
        let _ = std::fs::remove_dir_all(dir);
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("ferry-cli-test-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
