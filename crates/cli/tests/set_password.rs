//! `ferry identity set-password` as an administrator runs it on the server host, against a data directory that
//! an Auth in this process (the server's view) shares: a reset ends the person's sessions, the strength rules
//! hold (for `identity create` too), and applications or unknown names are refused with a reason.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use ferry_auth::{Auth, AuthConfig, AuthError};
use ferry_core::ClientKind;
use ferry_store::{SqliteStore, Store};

fn ferry(data: &std::path::Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ferry"));
    // Ferry reads FERRY_* variables as configuration: none of the caller's leak in.
    for (k, _) in std::env::vars() {
        if k.starts_with("FERRY_") {
            c.env_remove(k);
        }
    }
    let mut child = c
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test]
async fn set_password_resets_a_local_account_and_refuses_what_it_cannot() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&data.join("ferry.db")).await.unwrap());
    let auth = Auth::open(
        store,
        AuthConfig::new("http://127.0.0.1:8400", "ferry.local"),
    )
    .await
    .unwrap();

    let out = ferry(
        &data,
        &["identity", "create", "bob", "--password-stdin"],
        Some("tern-lantern-8841\n"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = ferry(
        &data,
        &["identity", "create", "carl", "--password", "carl-is-here-1"],
        None,
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("must not be or contain the username"),
        "{}",
        text(&out.stderr)
    );
    let session = auth
        .login("bob", "tern-lantern-8841", "127.0.0.1")
        .await
        .unwrap();
    assert!(auth.session(&session).await.unwrap().is_some());

    // A generated password, shown once.
    let out = ferry(
        &data,
        &["identity", "set-password", "bob", "--format", "json"],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["username"], "bob@ferry.local");
    assert_eq!(shown["sessions_and_tokens"], "revoked");
    let generated = shown["password"].as_str().unwrap().to_string();
    assert_eq!(generated.len(), 20);
    assert!(
        auth.session(&session).await.unwrap().is_none(),
        "the session before the reset is over"
    );
    assert!(matches!(
        auth.login("bob", "tern-lantern-8841", "127.0.0.1").await,
        Err(AuthError::LoginFailed)
    ));
    auth.login("bob@ferry.local", &generated, "127.0.0.1")
        .await
        .unwrap();

    // A chosen one through standard input: refused when weak (naming the rule, changing nothing).
    let out = ferry(
        &data,
        &["identity", "set-password", "bob", "--password-stdin"],
        Some("123456789012\n"),
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("most common"),
        "{}",
        text(&out.stderr)
    );
    auth.login("bob", &generated, "127.0.0.1").await.unwrap();
    let out = ferry(
        &data,
        &["identity", "set-password", "bob", "--password-stdin"],
        Some("quay-crane-7193\n"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        !text(&out.stdout).contains("shown once"),
        "{}",
        text(&out.stdout)
    );
    auth.login("bob", "quay-crane-7193", "127.0.0.1")
        .await
        .unwrap();

    // Not a local person: refused, with why.
    let app = auth
        .create_client("Nightly sync", ClientKind::Confidential, vec![], None)
        .await
        .unwrap();
    let out = ferry(
        &data,
        &["identity", "set-password", &app.client.id.to_string()],
        None,
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("is an application"),
        "{}",
        text(&out.stderr)
    );
    let out = ferry(&data, &["identity", "set-password", "nobody"], None);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no identity 'nobody'"),
        "{}",
        text(&out.stderr)
    );

    let help = ferry(&data, &["identity", "set-password", "--help"], None);
    let help = text(&help.stdout);
    assert!(
        help.contains("--password-stdin") && help.contains("revoked"),
        "{help}"
    );
}
