use std::os::unix::fs::PermissionsExt;

use ferry_core::ClientKind;
use ferry_tests::TestServer;
use ferry_tests::ferry_server::{self, AdminCredentials, Bootstrap, Config};
use serde_json::Value;

#[tokio::test]
async fn first_start_creates_the_administrator_once() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().join("d"),
        ..Config::default()
    };
    let first = ferry_server::start(cfg.clone()).await.unwrap();
    let Some(Bootstrap::Created { path, credentials }) = &first.bootstrap else {
        panic!("first start must create the admin")
    };
    let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let saved: AdminCredentials =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(saved.client_secret, credentials.client_secret);
    assert_eq!(saved.username, "admin@ferry.local");

    // The administrator's client works.
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/v2/oauth2/token", first.base_url))
        .basic_auth(&saved.client_id, Some(&saved.client_secret))
        .form(&[("grant_type", "client_credentials"), ("scope", "openid")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let clients_before = first.auth.store().list_clients().await.unwrap().len();
    first.shutdown().await;

    let second = ferry_server::start(cfg).await.unwrap();
    assert!(matches!(second.bootstrap, Some(Bootstrap::Existing { .. })));
    assert_eq!(
        second.auth.store().list_clients().await.unwrap().len(),
        clients_before
    );
    let again: AdminCredentials = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("d/admin-credentials.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(again.client_id, saved.client_id);
    second.shutdown().await;
}

#[tokio::test]
async fn tls_with_a_generated_ca() {
    let s = TestServer::start_with(|c| c.tls = true).await;
    assert!(s.url.starts_with("https://127.0.0.1:"));
    let ca = s.running.tls_ca.clone().expect("a CA was generated");
    let pem = std::fs::read(&ca).unwrap();
    let http = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
        .build()
        .unwrap();
    let d: Value = http
        .get(format!("{}/.well-known/openid-configuration", s.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(d["issuer"], s.url);
    // Without trusting the CA, the connection is refused.
    let plain = reqwest::Client::builder()
        .tls_certs_only([])
        .build()
        .unwrap();
    assert!(
        plain
            .get(format!("{}/jwk.json", s.url))
            .send()
            .await
            .is_err()
    );
}

#[tokio::test]
async fn globus_login_client_registration() {
    let s = TestServer::start().await;
    let r = s.http.post(format!("{}/v2/api/clients", s.url))
        .json(&serde_json::json!({"client": {"template_id": "95fdeba8-fac2-42bd-a357-e068d82ff78e", "name": "Globus CLI"}}))
        .send().await.unwrap();
    assert_eq!(r.status(), 200);
    let b: Value = r.json().await.unwrap();
    let cred = &b["included"]["client_credential"];
    assert_eq!(cred["client"], b["client"]["id"]);
    let app = ferry_tests::App {
        id: cred["client"].as_str().unwrap().into(),
        secret: Some(cred["secret"].as_str().unwrap().into()),
    };
    // An instance of a template gets the template's interactive grants only (issue 13).
    assert_eq!(
        b["client"]["grant_types"],
        serde_json::json!(["authorization_code", "refresh_token"])
    );
    let (st, t) = s
        .oauth(
            "/v2/oauth2/token",
            &app,
            &[("grant_type", "client_credentials"), ("scope", "openid")],
        )
        .await;
    assert_eq!(
        (st.as_u16(), t["error"].as_str()),
        (400, Some("unauthorized_client"))
    );
    // The auth-code page of this server is a registered redirect of such a client.
    let uris: Vec<&str> = b["client"]["redirect_uris"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap())
        .collect();
    assert!(uris.contains(&format!("{}/v2/web/auth-code", s.url).as_str()));
    let _ = ClientKind::Confidential;
}

/// A value below its minimum is refused at load, naming the key, its value and the minimum; it is never
/// raised silently (a file, the environment, and a configuration built in code alike).
#[tokio::test]
async fn configuration_below_a_minimum_is_refused_by_name() {
    use ferry_server::Overrides;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ferry.toml");
    for (toml, key, value, min) in [
        (
            "[transfer]\nmax_tasks = 0\n",
            "transfer.max_tasks",
            "0",
            "1",
        ),
        (
            "[transfer]\nmemory_budget_mib = 4\n",
            "transfer.memory_budget_mib",
            "4",
            "8",
        ),
        (
            "[transfer]\ndefault_deadline_secs = 30\n",
            "transfer.default_deadline_secs",
            "30",
            "60",
        ),
        (
            "[transfer]\ninactive_retry_secs = 0\n",
            "transfer.inactive_retry_secs",
            "0",
            "1",
        ),
    ] {
        std::fs::write(&file, toml).unwrap();
        let e = Config::load(Some(&file), Vec::new(), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(key)
                && e.contains(&format!("is {value}"))
                && e.contains(&format!("minimum of {min}")),
            "{e}"
        );
    }
    let e = Config::load(
        None,
        vec![(
            "FERRY_TRANSFER__FILE_CONCURRENCY".to_string(),
            "0".to_string(),
        )],
        &Overrides::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("transfer.file_concurrency"), "{e}");
    let mut cfg = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().join("d"),
        ..Config::default()
    };
    cfg.transfer.range_parallelism = 0;
    let e = ferry_server::start(cfg)
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains("transfer.range_parallelism"), "{e}");
    assert!(!dir.path().join("d").exists(), "nothing was created");
}

/// The configuration never takes the fault-injection key (tests inject faults through `TestHooks` only).
#[test]
fn fault_injection_is_not_configuration() {
    let e = Config::load(
        None,
        vec![(
            "FERRY_TRANSFER__TEST_CORRUPT_ONCE".to_string(),
            "x".to_string(),
        )],
        &ferry_server::Overrides::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("transfer.test_corrupt_once"), "{e}");
}

/// A data directory restarted with `--tls` (or on another address): the administrator's commands read the URL
/// from the credentials file, so every start records the URL it serves there.
#[tokio::test]
async fn every_start_records_its_url_for_the_administrators_commands() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.path().join("d"),
        ..Config::default()
    };
    let creds = || -> AdminCredentials {
        serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("d/admin-credentials.json")).unwrap(),
        )
        .unwrap()
    };
    let first = ferry_server::start(cfg.clone()).await.unwrap();
    assert_eq!(creds().url, first.base_url);
    first.shutdown().await;
    let second = ferry_server::start(Config { tls: true, ..cfg })
        .await
        .unwrap();
    assert!(second.base_url.starts_with("https://"));
    let now = creds();
    assert_eq!(
        now.url, second.base_url,
        "the stored URL follows the server"
    );
    let path = dir.path().join("d/admin-credentials.json");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    second.shutdown().await;
}
