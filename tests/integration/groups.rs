use ferry_core::ClientKind;
use ferry_tests::{App, TestServer};
use serde_json::{Value, json};

const GROUPS: &str = "urn:globus:auth:scope:groups.api.globus.org:all";

async fn token(s: &TestServer, app: &App) -> String {
    s.access_token(app, GROUPS).await
}

async fn call(
    s: &TestServer,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    s.call(method, path, token, body.as_ref()).await
}

/// `GET /v2/groups/{id}?include=memberships` as `token`.
async fn with_members(s: &TestServer, gid: &str, token: &str) -> (u16, Value) {
    let path = format!("/v2/groups/{gid}?include=memberships");
    call(s, reqwest::Method::GET, &path, token, None).await
}

#[tokio::test]
async fn group_lifecycle_and_roles() {
    let s = TestServer::start().await;
    let owner_app = s.app(ClientKind::Confidential).await;
    let member_app = s.app(ClientKind::Confidential).await;
    let stranger_app = s.app(ClientKind::Confidential).await;
    let (owner, member, stranger) = (
        token(&s, &owner_app).await,
        token(&s, &member_app).await,
        token(&s, &stranger_app).await,
    );
    use reqwest::Method as M;

    let (st, g) = call(
        &s,
        M::POST,
        "/v2/groups",
        &owner,
        Some(json!({"name": "Cohort 45", "description": "raw data readers"})),
    )
    .await;
    assert_eq!(st, 200, "{g}");
    let gid = g["id"].as_str().unwrap().to_string();
    assert_eq!(g["my_memberships"][0]["role"], "admin");
    assert_eq!(g["policies"]["group_visibility"], "private");

    // Strangers cannot even see that it exists.
    let (st, b) = call(&s, M::GET, &format!("/v2/groups/{gid}"), &stranger, None).await;
    assert_eq!((st, b["code"].as_str()), (404, Some("NOT_FOUND")));

    let (st, b) = call(&s, M::POST, &format!("/v2/groups/{gid}"), &owner,
        Some(json!({"add": [{"identity_id": member_app.id, "role": "member"}, {"identity_id": uuid::Uuid::new_v4()}]}))).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["add"][0]["identity_id"], member_app.id);
    assert_eq!(b["add"][0]["status"], "active");
    assert_eq!(b["errors"]["add"][0]["code"], "NOT_FOUND");

    let (_, mine) = call(&s, M::GET, "/v2/groups/my_groups", &member, None).await;
    assert_eq!(mine.as_array().unwrap().len(), 1);
    assert_eq!(mine[0]["my_memberships"][0]["role"], "member");

    // Members see the group but not the member list (managers only), and cannot add people.
    let (st, g) = with_members(&s, &gid, &member).await;
    assert_eq!(st, 200);
    assert!(g.get("memberships").is_none());
    let (_, b) = call(
        &s,
        M::POST,
        &format!("/v2/groups/{gid}"),
        &member,
        Some(json!({"add": [{"identity_id": stranger_app.id}]})),
    )
    .await;
    assert_eq!(b["errors"]["add"][0]["code"], "FORBIDDEN");
    let (_, g) = with_members(&s, &gid, &owner).await;
    assert_eq!(g["memberships"].as_array().unwrap().len(), 2);

    // Roles change; the last admin cannot leave.
    let (_, b) = call(
        &s,
        M::POST,
        &format!("/v2/groups/{gid}"),
        &owner,
        Some(json!({"change_role": [{"identity_id": member_app.id, "role": "manager"}]})),
    )
    .await;
    assert_eq!(b["change_role"][0]["role"], "manager");
    let (_, b) = call(
        &s,
        M::POST,
        &format!("/v2/groups/{gid}"),
        &owner,
        Some(json!({"remove": [{"identity_id": owner_app.id}]})),
    )
    .await;
    assert_eq!(b["errors"]["remove"][0]["code"], "CONFLICT");
    let (_, b) = call(
        &s,
        M::POST,
        &format!("/v2/groups/{gid}"),
        &member,
        Some(json!({"change_role": [{"identity_id": member_app.id, "role": "admin"}]})),
    )
    .await;
    assert_eq!(
        b["errors"]["change_role"][0]["code"], "FORBIDDEN",
        "managers cannot make admins"
    );
    let (_, b) = call(
        &s,
        M::POST,
        &format!("/v2/groups/{gid}"),
        &owner,
        Some(json!({"remove": [{"identity_id": member_app.id}]})),
    )
    .await;
    assert_eq!(b["remove"][0]["status"], "removed");
    let (_, mine) = call(&s, M::GET, "/v2/groups/my_groups", &member, None).await;
    assert_eq!(mine, json!([]));

    // Only admins update and delete.
    let (st, _) = call(&s, M::DELETE, &format!("/v2/groups/{gid}"), &stranger, None).await;
    assert_eq!(st, 404);
    let (st, g) = call(
        &s,
        M::PUT,
        &format!("/v2/groups/{gid}"),
        &owner,
        Some(json!({"name": "Cohort 45 readers"})),
    )
    .await;
    assert_eq!((st, g["name"].as_str()), (200, Some("Cohort 45 readers")));
    let (st, _) = call(&s, M::DELETE, &format!("/v2/groups/{gid}"), &owner, None).await;
    assert_eq!(st, 200);
    let (st, _) = call(&s, M::GET, &format!("/v2/groups/{gid}"), &owner, None).await;
    assert_eq!(st, 404);
}

#[tokio::test]
async fn bad_group_requests_change_nothing() {
    let s = TestServer::start().await;
    let app = s.app(ClientKind::Confidential).await;
    let t = token(&s, &app).await;
    use reqwest::Method as M;
    let r = s
        .http
        .post(format!("{}/v2/groups", s.url))
        .bearer_auth(&t)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let b: Value = r.json().await.unwrap();
    assert!(
        b["message"].as_str().unwrap().contains("invalid JSON"),
        "{b}"
    );
    let (st, b) = call(
        &s,
        M::POST,
        "/v2/groups",
        &t,
        Some(json!({"name": "x", "colour": "red"})),
    )
    .await;
    assert_eq!(st, 400);
    assert!(b["message"].as_str().unwrap().contains("colour"), "{b}");
    let (st, _) = call(&s, M::POST, "/v2/groups", &t, Some(json!({"name": "  "}))).await;
    assert_eq!(st, 400);
    let (st, _) = call(&s, M::POST, "/v2/groups", &t, Some(json!({"name": "x", "policies": {"group_visibility": "public", "group_members_visibility": "members"}}))).await;
    assert_eq!(st, 400);
    let (_, mine) = call(&s, M::GET, "/v2/groups/my_groups", &t, None).await;
    assert_eq!(mine, json!([]), "no group was created by the bad requests");

    let (_, g) = call(&s, M::POST, "/v2/groups", &t, Some(json!({"name": "ok"}))).await;
    let gid = g["id"].as_str().unwrap();
    let (st, b) = call(
        &s,
        M::POST,
        &format!("/v2/groups/{gid}"),
        &t,
        Some(json!({"explode": []})),
    )
    .await;
    assert_eq!(st, 400);
    assert!(b["message"].as_str().unwrap().contains("explode"));
    let (st, _) = call(&s, M::GET, "/v2/groups/not-a-uuid", &t, None).await;
    assert_eq!(st, 404);
    let (st, _) = call(
        &s,
        M::GET,
        "/v2/groups/my_groups?statuses=sleeping",
        &t,
        None,
    )
    .await;
    assert_eq!(st, 400);
}

/// The batch's invite/accept/decline as globus-sdk's BatchMembershipActions sends them: managers invite, only
/// the invitee answers, and an invitation gives no access until it is accepted.
#[tokio::test]
async fn invitations_are_accepted_or_declined_by_the_invitee_only() {
    let s = TestServer::start().await;
    let [owner_app, alice_app, bob_app, mallory_app] = [
        s.app(ClientKind::Confidential).await,
        s.app(ClientKind::Confidential).await,
        s.app(ClientKind::Confidential).await,
        s.app(ClientKind::Confidential).await,
    ];
    let owner = token(&s, &owner_app).await;
    let alice = token(&s, &alice_app).await;
    let bob = token(&s, &bob_app).await;
    let mallory = token(&s, &mallory_app).await;
    use reqwest::Method as M;
    let (_, g) = call(
        &s,
        M::POST,
        "/v2/groups",
        &owner,
        Some(json!({"name": "Invited"})),
    )
    .await;
    let gid = g["id"].as_str().unwrap().to_string();
    let batch = |t: &str, body: Value| {
        let (path, t) = (format!("/v2/groups/{gid}"), t.to_string());
        let s = &s;
        async move { call(s, M::POST, &path, &t, Some(body)).await }
    };
    let alice_id: uuid::Uuid = alice_app.id.parse().unwrap();
    let group: uuid::Uuid = gid.parse().unwrap();
    let active_of = |id: uuid::Uuid| {
        let auth = s.running.auth.clone();
        async move {
            (
                auth.active_group_ids(id).await.unwrap(),
                auth.store().active_group_ids(id).await.unwrap(),
            )
        }
    };

    let (st, b) = batch(
        &owner,
        json!({"invite": [{"identity_id": alice_app.id, "role": "member"},
                          {"identity_id": bob_app.id, "role": "manager"}]}),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["invite"][0]["status"], "invited");
    assert_eq!(b["invite"][1]["role"], "manager");
    let (_, b) = batch(&owner, json!({"invite": [{"identity_id": alice_app.id}]})).await;
    assert_eq!(
        b["errors"]["invite"][0]["code"], "CONFLICT",
        "invited twice"
    );

    // Invited is not a member: no group in the ACL's view, no manager rights, the group is in my_groups only
    // under its status.
    assert_eq!(
        active_of(alice_id).await,
        (vec![], vec![]),
        "invited is not active"
    );
    let (_, b) = batch(&bob, json!({"invite": [{"identity_id": mallory_app.id}]})).await;
    assert_eq!(
        b["errors"]["invite"][0]["code"], "FORBIDDEN",
        "an invited manager cannot invite"
    );
    let (_, mine) = call(&s, M::GET, "/v2/groups/my_groups", &alice, None).await;
    assert_eq!(mine, json!([]));
    let (_, mine) = call(
        &s,
        M::GET,
        "/v2/groups/my_groups?statuses=invited",
        &alice,
        None,
    )
    .await;
    assert_eq!(mine[0]["my_memberships"][0]["status"], "invited");

    // Nobody answers for someone else: not the owner, not another invitee, not a stranger.
    for (t, code) in [(&owner, "FORBIDDEN"), (&bob, "FORBIDDEN")] {
        let (_, b) = batch(t, json!({"accept": [{"identity_id": alice_app.id}]})).await;
        assert_eq!(b["errors"]["accept"][0]["code"], code, "{b}");
    }
    let (st, _) = batch(&mallory, json!({"accept": [{"identity_id": alice_app.id}]})).await;
    assert_eq!(st, 404, "a stranger does not see the private group");
    // A non-manager member cannot invite.
    let (_, b) = batch(&alice, json!({"invite": [{"identity_id": mallory_app.id}]})).await;
    assert_eq!(b["errors"]["invite"][0]["code"], "FORBIDDEN");

    let (_, b) = batch(&alice, json!({"accept": [{"identity_id": alice_app.id}]})).await;
    assert_eq!(b["accept"][0]["status"], "active", "{b}");
    assert_eq!(active_of(alice_id).await, (vec![group], vec![group]));
    let (_, b) = batch(&alice, json!({"accept": [{"identity_id": alice_app.id}]})).await;
    assert_eq!(
        b["errors"]["accept"][0]["code"], "NOT_FOUND",
        "no invitation is left"
    );
    let (_, b) = batch(&alice, json!({"invite": [{"identity_id": mallory_app.id}]})).await;
    assert_eq!(
        b["errors"]["invite"][0]["code"], "FORBIDDEN",
        "a member is no manager"
    );

    let (_, b) = batch(&bob, json!({"decline": [{"identity_id": bob_app.id}]})).await;
    assert_eq!(b["decline"][0]["status"], "declined", "{b}");
    let (st, _) = call(&s, M::GET, &format!("/v2/groups/{gid}"), &bob, None).await;
    assert_eq!(
        st, 404,
        "a declined invitation shows the private group no more"
    );
    let (_, g) = with_members(&s, &gid, &owner).await;
    let status_of = |id: &str| {
        g["memberships"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["identity_id"] == id)
            .map(|m| m["status"].clone())
    };
    assert_eq!(status_of(&alice_app.id), Some(json!("active")));
    assert_eq!(status_of(&bob_app.id), Some(json!("declined")));
    // A declined invitation may be renewed; only then can it be accepted.
    let (_, b) = batch(&owner, json!({"invite": [{"identity_id": bob_app.id}]})).await;
    assert_eq!(b["invite"][0]["status"], "invited", "{b}");
}
