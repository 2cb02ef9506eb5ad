//! Commands that go through Ferry's APIs with a token, like any other client would.

use anyhow::bail;
use clap::Subcommand;
use ferry_client::FerryClient;
use ferry_core::scope::{GROUPS_ALL, GROUPS_RS};
use ferry_proto::groups::GroupCreate;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::Global;
use crate::output::{print_list, print_record};
use crate::session::{Conn, Connection};

#[derive(Subcommand)]
pub enum GroupCmd {
    /// Create a group; you become its admin.
    Create {
        name: String,
        #[arg(long)]
        description: Option<String>,
        #[command(flatten)]
        conn: Connection,
    },
    /// The groups you are an active member of.
    List {
        #[command(flatten)]
        conn: Connection,
    },
    /// A group, with its members when you may see them.
    Show {
        group: Uuid,
        #[command(flatten)]
        conn: Connection,
    },
    /// Delete a group (its admins only); its members lose what it granted at once.
    Delete {
        group: Uuid,
        #[command(flatten)]
        conn: Connection,
    },
    /// Manage members (USER is an identity id or a username; a bare name is a person of this server: alice is
    /// alice@<auth domain>).
    #[command(subcommand)]
    Member(MemberCmd),
}

#[derive(Subcommand)]
pub enum MemberCmd {
    /// Add USER to the group with --role (member, manager or admin).
    Add {
        group: Uuid,
        user: String,
        #[arg(long, default_value = "member", value_parser = ["member", "manager", "admin"])]
        role: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Remove USER from the group.
    Remove {
        group: Uuid,
        user: String,
        #[command(flatten)]
        conn: Connection,
    },
    /// Change USER's role in the group.
    SetRole {
        group: Uuid,
        user: String,
        #[arg(value_parser = ["member", "manager", "admin"])]
        role: String,
        #[command(flatten)]
        conn: Connection,
    },
}

struct Session {
    groups: FerryClient,
    conn: Conn,
}

async fn connect(g: &Global, c: &Connection) -> anyhow::Result<Session> {
    let mut conn = Conn::open(g, c).await?;
    Ok(Session {
        groups: conn.for_rs(GROUPS_RS, GROUPS_ALL).await?,
        conn,
    })
}

const GROUP_FIELDS: &[(&str, &str)] = &[
    ("Group ID", "id"),
    ("Name", "name"),
    ("Description", "description"),
    ("My role", "my_role"),
];

fn group_row(doc: &ferry_proto::groups::GroupDoc) -> Value {
    let mut v = json!(doc);
    v["my_role"] = json!(doc.my_memberships.first().map(|m| m.role.clone()));
    v
}

async fn member_action(
    g: &Global,
    conn: &Connection,
    group: Uuid,
    user: &str,
    action: &str,
    role: Option<&str>,
) -> anyhow::Result<()> {
    let mut s = connect(g, conn).await?;
    let id = s.conn.identity_id(user).await?;
    let mut item = json!({"identity_id": id});
    if let Some(r) = role {
        item["role"] = json!(r);
    }
    let out = s
        .groups
        .group_batch(group, &json!({ action: [item] }))
        .await?;
    if let Some(err) = out["errors"][action].get(0) {
        bail!(
            "{}",
            err["detail"]
                .as_str()
                .unwrap_or("the membership change failed")
        );
    }
    print_record(
        g.format,
        &out[action][0],
        &[
            ("Group ID", "group_id"),
            ("Identity ID", "identity_id"),
            ("Username", "username"),
            ("Role", "role"),
            ("Status", "status"),
        ],
    );
    Ok(())
}

pub async fn group(g: &Global, cmd: GroupCmd) -> anyhow::Result<()> {
    match cmd {
        GroupCmd::Create {
            name,
            description,
            conn,
        } => {
            let s = connect(g, &conn).await?;
            let doc = s
                .groups
                .create_group(&GroupCreate {
                    name,
                    description,
                    parent_id: None,
                    policies: None,
                })
                .await?;
            print_record(g.format, &group_row(&doc), GROUP_FIELDS);
        }
        GroupCmd::List { conn } => {
            let s = connect(g, &conn).await?;
            let rows: Vec<Value> = s.groups.my_groups().await?.iter().map(group_row).collect();
            print_list(g.format, &rows, GROUP_FIELDS);
        }
        GroupCmd::Show { group, conn } => {
            let s = connect(g, &conn).await?;
            let doc = s.groups.get_group(group).await?;
            let mut v = group_row(&doc);
            v["members"] = json!(
                doc.memberships
                    .unwrap_or_default()
                    .iter()
                    .map(|m| format!("{} ({})", m.username, m.role))
                    .collect::<Vec<_>>()
            );
            let mut fields = GROUP_FIELDS.to_vec();
            fields.push(("Members", "members"));
            print_record(g.format, &v, &fields);
        }
        GroupCmd::Delete { group, conn } => {
            let s = connect(g, &conn).await?;
            let doc = s.groups.delete_group(group).await?;
            println!("Deleted group {} ({})", doc.name, doc.id);
        }
        GroupCmd::Member(MemberCmd::Add {
            group,
            user,
            role,
            conn,
        }) => member_action(g, &conn, group, &user, "add", Some(&role)).await?,
        GroupCmd::Member(MemberCmd::Remove { group, user, conn }) => {
            member_action(g, &conn, group, &user, "remove", None).await?
        }
        GroupCmd::Member(MemberCmd::SetRole {
            group,
            user,
            role,
            conn,
        }) => member_action(g, &conn, group, &user, "change_role", Some(&role)).await?,
    }
    Ok(())
}
