//! Linking and local accounts as the authorisation server decides them, with a clock the test moves.

use std::sync::Arc;

use ferry_auth::{Auth, AuthConfig, AuthError};
use ferry_core::clock::ManualClock;
use ferry_store::{SqliteStore, Store};

async fn auth(local_accounts: bool) -> (Auth, Arc<ManualClock>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&dir.path().join("t.db")).await.unwrap());
    let clock = ManualClock::new();
    let mut cfg = AuthConfig::new("http://127.0.0.1:1", "ferry.local");
    cfg.clock = clock.clone();
    cfg.local_accounts = local_accounts;
    (Auth::open(store, cfg).await.unwrap(), clock, dir)
}

/// Linking hands the other identity's access to whoever holds the session: only a recent sign-in may.
#[tokio::test]
async fn linking_needs_a_recent_sign_in() {
    let (auth, clock, _dir) = auth(true).await;
    let ana = auth
        .create_person("ana", None, None, Some("correct-horse-battery-7"))
        .await
        .unwrap();
    let token = auth
        .login("ana", "correct-horse-battery-7", "127.0.0.1")
        .await
        .unwrap();
    let session = auth.session(&token).await.unwrap().unwrap();
    assert_eq!(session.identity.id, ana.identity.id);
    assert!(auth.may_link(&session));
    clock.advance(ferry_auth::federation::LINK_FRESHNESS + 1);
    // The session still works; it is only too old to link with.
    let session = auth.session(&token).await.unwrap().unwrap();
    assert!(!auth.may_link(&session));
    // Nor may it take an identity that is not in its set out of another's.
    let other = auth
        .create_person("other", None, None, Some("staple-lantern-orbit-42"))
        .await
        .unwrap();
    assert!(matches!(
        auth.unlink_identity(&session.identity, other.identity.id)
            .await,
        Err(AuthError::NotFound(_))
    ));
    assert!(matches!(
        auth.unlink_identity(&session.identity, session.identity.id)
            .await,
        Err(AuthError::Forbidden(_))
    ));
}

#[tokio::test]
async fn local_accounts_switched_off_sign_nobody_in() {
    let (auth, _clock, _dir) = auth(false).await;
    auth.create_person("ana", None, None, Some("correct-horse-battery-7"))
        .await
        .unwrap();
    assert!(matches!(
        auth.login("ana", "correct-horse-battery-7", "127.0.0.1")
            .await,
        Err(AuthError::Forbidden(_))
    ));
}

/// A sign-in that was never started, or comes back twice, is refused before anything else is looked at.
#[tokio::test]
async fn an_unknown_state_is_refused() {
    let (auth, _clock, _dir) = auth(true).await;
    let answer = ferry_auth::UpstreamAnswer {
        state: "never-issued",
        code: Some("c"),
        error: None,
        error_description: None,
        iss: None,
        browser_secret: Some("fus_x"),
    };
    match auth.finish_upstream(answer).await {
        Err(AuthError::Forbidden(m)) => assert!(m.contains("expired or was already used"), "{m}"),
        other => panic!("{:?}", other.map(|s| s.identity.username)),
    }
}
