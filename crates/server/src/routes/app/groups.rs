//! Groups: the visitor's groups and invitations (accept, decline); a new group; a group's members, where its
//! managers invite people by username, change roles and remove members, everyone may leave and its admins may
//! delete it. Every change is one call of the Groups domain, the same checks as the Groups API's batch.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use ferry_auth::AuthError;
use ferry_core::GroupRole;
use ferry_proto::groups::{GroupCreate, GroupDoc, MembershipDoc};
use uuid::Uuid;

use super::console::{cell, field, table};
use super::{Done, Posted, Section, Visitor, link, notice, shell};
use crate::error::AppError;
use crate::routes::AppState;
use crate::routes::web::escape;

/// The roles a group grants, as the forms offer them.
const ROLES: [(&str, &str); 3] = [
    ("member", "Member"),
    ("manager", "Manager: invites, removes and changes members"),
    ("admin", "Admin: also grants admin and deletes the group"),
];

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/groups", get(list))
        .route("/groups/new", get(new_form).post(create))
        .route("/groups/{id}", get(group))
        .route("/groups/{id}/membership", post(membership))
        .route("/groups/{id}/delete", post(delete))
}

/// The Groups domain's refusals in words and with what to do on these pages (the one place for that).
fn refusal(e: AuthError) -> AppError {
    let advice = match &e {
        AuthError::Forbidden(_) => Some(
            "This group does not allow this to you: its managers and admins change its members, its admins \
             delete it, and only an invited person answers their invitation. Ask one of the group's admins or \
             managers.",
        ),
        AuthError::NotFound(_) => Some(
            "The group or the membership may be gone, or the group is not one you belong to. \
             Go back to Groups and reload it.",
        ),
        AuthError::Conflict(_) => Some(
            "Reload the group's page to see its members as they are now. A group keeps at least one admin: \
             make another member admin before the last one leaves or steps down.",
        ),
        // the status's own advice fits the rest (a bad form: correct what the message names)
        _ => None,
    };
    let e = AppError::from(e);
    match advice {
        Some(a) => e.advising(a),
        None => e,
    }
}

/// A page of the Groups section for the visitor.
fn page(v: &Visitor, title: &str, body: &str) -> Response {
    shell(
        StatusCode::OK,
        Some(v.username()),
        Section::Groups,
        title,
        body,
    )
}

/// A group named in a URL; an id that is not a UUID names none.
fn group_id(raw: &str) -> Result<Uuid, AppError> {
    Uuid::parse_str(raw.trim())
        .map_err(|_| refusal(AuthError::NotFound("There is no such group.".into())))
}

fn group_url(id: Uuid, done: &str) -> String {
    link(&format!("/groups/{id}"), &[("done", done)])
}

/// A hidden field and its value, for a form of one membership change.
fn hidden(name: &str, value: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"{name}\" value=\"{}\">",
        escape(value)
    )
}

/// A form that posts one membership change of a group, with `inner` (its fields and button) inside.
fn membership_form(csrf: &str, group: Uuid, action: &str, class: &str, inner: &str) -> String {
    format!(
        "<form method=\"post\" action=\"/groups/{group}/membership\" class=\"{class}\">{}{}{inner}</form>",
        hidden("csrf", csrf),
        hidden("action", action),
    )
}

/// Accept and Decline for an invitation to `g`.
fn answer_forms(v: &Visitor, g: &GroupDoc) -> String {
    let me = v.session.identity.id.to_string();
    let name = escape(&g.name);
    ["accept", "decline"]
        .iter()
        .map(|action| {
            let (verb, label) = if *action == "accept" {
                ("Accept", "Accept the invitation to")
            } else {
                ("Decline", "Decline the invitation to")
            };
            membership_form(
                &v.csrf,
                g.id,
                action,
                "inline",
                &format!(
                    "{}<button type=\"submit\" aria-label=\"{label} {name}\">{verb}</button> ",
                    hidden("identity", &me)
                ),
            )
        })
        .collect()
}

/// The visitor's own membership of a group, as the domain reports it.
fn mine(g: &GroupDoc) -> Option<&MembershipDoc> {
    g.my_memberships.first()
}

/// The visitor's role where their membership is active.
fn active_role(g: &GroupDoc) -> Option<GroupRole> {
    mine(g)
        .filter(|m| m.status == "active")
        .and_then(|m| GroupRole::parse(&m.role))
}

/// `GET /groups`: the visitor's invitations, with Accept and Decline, and their groups.
async fn list(
    State(s): State<AppState>,
    v: Visitor,
    Query(place): Query<Done>,
) -> Result<Response, AppError> {
    let groups = s
        .auth
        .my_groups(&v.session.identity, Some("active,invited"))
        .await
        .map_err(refusal)?;
    let mut invitations = String::new();
    let mut rows = String::new();
    for g in &groups {
        let Some(m) = mine(g) else { continue };
        if m.status == "invited" {
            invitations.push_str(&format!(
                "<tr><th scope=\"row\">{name}</th>{role}{about}{answer}</tr>",
                name = escape(&g.name),
                role = cell("Role offered", &escape(&m.role)),
                about = cell("Description", &escape(&g.description)),
                answer = cell("Answer", &answer_forms(&v, g)),
            ));
        }
        rows.push_str(&format!(
            "<tr><th scope=\"row\"><a href=\"/groups/{id}\">{name}</a></th>{role}{status}{about}</tr>",
            id = g.id,
            name = escape(&g.name),
            role = cell("Your role", &escape(&m.role)),
            status = cell("Status", &escape(&m.status)),
            about = cell("Description", &escape(&g.description)),
        ));
    }
    let done = match place.done.as_str() {
        "decline" => notice("ok", "You declined the invitation."),
        "leave" => notice("ok", "You left the group."),
        "delete" => notice("ok", "The group was deleted."),
        _ => String::new(),
    };
    let invitations = if invitations.is_empty() {
        "<p id=\"no-invitations\">No invitations are waiting for you.</p>".to_string()
    } else {
        table(
            "Invitations waiting for your answer",
            &["Group", "Role offered", "Description", "Answer"],
            &invitations,
        )
    };
    let groups = if rows.is_empty() {
        "<p id=\"no-groups\">You are in no group yet: create one, or ask a group's manager to invite you.</p>"
            .to_string()
    } else {
        table(
            "Groups you are in or invited to",
            &["Name", "Your role", "Status", "Description"],
            &rows,
        )
    };
    let body = format!(
        "{done}<p><a href=\"/groups/new\">Create a group</a></p>\
         <section aria-labelledby=\"invitations-h\"><h2 id=\"invitations-h\">Invitations</h2>{invitations}</section>\
         <section aria-labelledby=\"groups-h\"><h2 id=\"groups-h\">Your groups</h2>\
         <p class=\"hint\">A group can be given access to a shared folder; its active members have that access.</p>\
         {groups}</section>"
    );
    Ok(page(&v, "Groups", &body))
}

/// `GET /groups/new`: the name and description of a new group.
async fn new_form(v: Visitor) -> Response {
    let body = format!(
        "<p><a href=\"/groups\">Back to Groups</a></p>\
         <form method=\"post\" action=\"/groups/new\" class=\"dialog\">{csrf}\
         <label for=\"name\">Name</label>\
         <input id=\"name\" name=\"name\" required maxlength=\"200\" autocomplete=\"off\">\
         <label for=\"description\">Description</label>\
         <textarea id=\"description\" name=\"description\" rows=\"3\" aria-describedby=\"description-hint\">\
         </textarea>\
         <p id=\"description-hint\" class=\"hint\">Optional: what the group is for, shown to its members and to \
         those you invite.</p>\
         <p class=\"hint\">You become the group's admin; it is private, and only its managers see its members.</p>\
         <button type=\"submit\">Create the group</button></form>",
        csrf = hidden("csrf", &v.csrf),
    );
    page(&v, "New group", &body)
}

async fn create(State(s): State<AppState>, Posted(v, form): Posted) -> Result<Response, AppError> {
    let request = GroupCreate {
        name: field(&form, "name").to_string(),
        description: Some(field(&form, "description").to_string()),
        parent_id: None,
        policies: None,
    };
    let g = s
        .auth
        .create_group(&v.session.identity, request)
        .await
        .map_err(refusal)?;
    Ok(Redirect::to(&group_url(g.id, "created")).into_response())
}

/// The `<option>`s of a role choice, `current` selected; admin only for those who may grant it.
fn role_options(current: &str, may_grant_admin: bool) -> String {
    ROLES
        .iter()
        .filter(|(value, _)| may_grant_admin || *value != "admin")
        .map(|(value, label)| {
            let selected = if *value == current { " selected" } else { "" };
            format!("<option value=\"{value}\"{selected}>{label}</option>")
        })
        .collect()
}

/// A member's row; a manager also gets the forms that change it (an admin's row is for admins only).
fn member_row(v: &Visitor, g: &GroupDoc, m: &MembershipDoc, my_role: Option<GroupRole>) -> String {
    let user = escape(&m.username);
    let is_admin = my_role == Some(GroupRole::Admin);
    let manages = my_role.is_some_and(GroupRole::may_manage_members)
        && (is_admin || m.role != "admin")
        && m.identity_id != v.session.identity.id;
    let change = if manages {
        let id = m.identity_id.to_string();
        let role = membership_form(
            &v.csrf,
            g.id,
            "change_role",
            "bar",
            &format!(
                "{who}<label for=\"role-{id}\" class=\"visually-hidden\">New role for {user}</label>\
                 <select id=\"role-{id}\" name=\"role\">{options}</select>\
                 <button type=\"submit\" aria-label=\"Change role of {user}\">Change role</button>",
                who = hidden("identity", &id),
                options = role_options(&m.role, is_admin),
            ),
        );
        let remove = membership_form(
            &v.csrf,
            g.id,
            "remove",
            "inline",
            &format!(
                "{}<button type=\"submit\" aria-label=\"Remove {user}\">Remove</button>",
                hidden("identity", &id)
            ),
        );
        cell("Change", &format!("{role}{remove}"))
    } else if my_role.is_some_and(GroupRole::may_manage_members) {
        cell("Change", "—")
    } else {
        String::new()
    };
    format!(
        "<tr><th scope=\"row\">{user}</th>{role}{status}{change}</tr>",
        role = cell("Role", &escape(&m.role)),
        status = cell("Status", &escape(&m.status)),
    )
}

/// `GET /groups/{id}`: the group, its members (where the visitor may see them) and the forms their role
/// allows.
async fn group(
    State(s): State<AppState>,
    v: Visitor,
    Path(raw): Path<String>,
    Query(place): Query<Done>,
) -> Result<Response, AppError> {
    let id = group_id(&raw)?;
    let g = s
        .auth
        .get_group(&v.session.identity, id, "memberships")
        .await
        .map_err(refusal)?;
    let my_role = active_role(&g);
    let manages = my_role.is_some_and(GroupRole::may_manage_members);
    let is_admin = my_role == Some(GroupRole::Admin);
    let me = mine(&g);
    let done = match place.done.as_str() {
        "created" => notice("ok", "The group was created; you are its admin."),
        "accept" => notice(
            "ok",
            "You accepted the invitation: you are a member of this group.",
        ),
        "invite" => notice(
            "ok",
            "The invitation was sent: the person accepts or declines it on their Groups page.",
        ),
        "change_role" => notice("ok", "The role was changed."),
        "remove" => notice("ok", "The member was removed."),
        _ => String::new(),
    };
    let invited = match me {
        Some(m) if m.status == "invited" => format!(
            "<p class=\"notice warn\">You are invited to this group as {role}.</p><p>{forms}</p>",
            role = escape(&m.role),
            forms = answer_forms(&v, &g),
        ),
        _ => String::new(),
    };
    let overview: String = [
        ("Name", g.name.clone()),
        ("Description", g.description.clone()),
        ("Group id", g.id.to_string()),
        (
            "Your role",
            me.map_or("none".into(), |m| format!("{} ({})", m.role, m.status)),
        ),
        ("Visible to", g.policies.group_visibility.clone()),
    ]
    .iter()
    .map(|(k, val)| format!("<dt>{k}</dt><dd>{}</dd>", escape(val)))
    .collect();
    let members = match &g.memberships {
        Some(list) => {
            let rows: String = list.iter().map(|m| member_row(&v, &g, m, my_role)).collect();
            let mut columns = vec!["Member", "Role", "Status"];
            if manages {
                columns.push("Change");
            }
            table("Members of this group", &columns, &rows)
        }
        None => "<p id=\"members-hidden\">Only the group's managers and admins see who its members are.</p>"
            .to_string(),
    };
    let invite = if manages {
        let form = membership_form(
            &v.csrf,
            g.id,
            "invite",
            "dialog",
            &format!(
                "<label for=\"username\">Username</label>\
                 <input id=\"username\" name=\"username\" required autocomplete=\"off\" \
                 aria-describedby=\"username-hint\">\
                 <p id=\"username-hint\" class=\"hint\">A person's full username (name@domain). They see the \
                 invitation on their Groups page and accept or decline it.</p>\
                 <label for=\"invite-role\">Role</label>\
                 <select id=\"invite-role\" name=\"role\">{}</select>\
                 <button type=\"submit\">Invite</button>",
                role_options("member", is_admin)
            ),
        );
        format!(
            "<section aria-labelledby=\"invite-h\"><h2 id=\"invite-h\">Invite someone</h2>{form}</section>"
        )
    } else {
        String::new()
    };
    let leave = match (my_role, me) {
        (Some(_), Some(m)) => format!(
            "<section aria-labelledby=\"leave-h\"><h2 id=\"leave-h\">Leave</h2>{}</section>",
            membership_form(
                &v.csrf,
                g.id,
                "leave",
                "bar",
                &format!(
                    "{}<button type=\"submit\">Leave this group</button>\
                     <span class=\"hint\">A group keeps at least one admin: its last admin cannot leave.</span>",
                    hidden("identity", &m.identity_id.to_string())
                ),
            )
        ),
        _ => String::new(),
    };
    let delete = if is_admin {
        format!(
            "<section aria-labelledby=\"delete-h\"><h2 id=\"delete-h\">Delete the group</h2>\
             <form method=\"post\" action=\"/groups/{id}/delete\" class=\"dialog\">{csrf}\
             <p class=\"hint\">Deleting the group ends every membership, and the access its members had \
             through it. This cannot be undone.</p>\
             <label class=\"confirm\"><input type=\"checkbox\" name=\"confirm\" value=\"yes\" required> \
             Yes, delete {name} for all its members</label>\
             <button type=\"submit\" class=\"danger\">Delete the group</button></form></section>",
            csrf = hidden("csrf", &v.csrf),
            name = escape(&g.name),
        )
    } else {
        String::new()
    };
    let body = format!(
        "{done}{invited}<p><a href=\"/groups\">Back to Groups</a></p>\
         <section aria-labelledby=\"overview-h\"><h2 id=\"overview-h\">Overview</h2><dl>{overview}</dl></section>\
         <section aria-labelledby=\"members-h\"><h2 id=\"members-h\">Members</h2>{members}</section>\
         {invite}{leave}{delete}"
    );
    Ok(page(&v, &format!("Group: {}", g.name), &body))
}

/// `POST /groups/{id}/membership`: one change (`action` as the Groups API names it) of the identity a form
/// names by id, or, for an invitation, by username.
async fn membership(
    State(s): State<AppState>,
    Path(raw): Path<String>,
    Posted(v, form): Posted,
) -> Result<Response, AppError> {
    let id = group_id(&raw)?;
    let action = field(&form, "action");
    let username = field(&form, "username");
    let identity = if !username.is_empty() {
        match s.auth.store().find_identity(username).await? {
            Some(i) => i.id,
            None => {
                return Err(AppError::new(
                    StatusCode::BAD_REQUEST,
                    "Nobody has that username, so nobody was invited.",
                )
                .advising(
                    "Give the person's full username (name@domain), as they sign in with it.",
                ));
            }
        }
    } else {
        Uuid::parse_str(field(&form, "identity")).map_err(|_| {
            refusal(AuthError::InvalidRequest(
                "The form names no member: reload the group's page and use its forms.".into(),
            ))
        })?
    };
    let role = Some(field(&form, "role")).filter(|r| !r.is_empty());
    s.auth
        .change_membership(&v.session.identity, id, action, identity, role)
        .await
        .map_err(refusal)?;
    let to = match action {
        "decline" | "leave" => link("/groups", &[("done", action)]),
        _ => group_url(id, action),
    };
    Ok(Redirect::to(&to).into_response())
}

/// `POST /groups/{id}/delete`: an admin deletes the group, once the form's confirmation is ticked.
async fn delete(
    State(s): State<AppState>,
    Path(raw): Path<String>,
    Posted(v, form): Posted,
) -> Result<Response, AppError> {
    let id = group_id(&raw)?;
    if field(&form, "confirm") != "yes" {
        return Err(AppError::new(
            StatusCode::BAD_REQUEST,
            "The group was not deleted: the confirmation was not ticked.",
        )
        .advising("Go back, tick “Yes, delete …” and press Delete the group again."));
    }
    s.auth
        .delete_group(&v.session.identity, id)
        .await
        .map_err(refusal)?;
    Ok(Redirect::to("/groups?done=delete").into_response())
}
