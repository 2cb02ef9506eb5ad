//! From an identity to the storage account it reaches a gateway as (`$USER`): allowed domains, the identity
//! mapping documents in order (expression rules, or an external program), then `users_deny` / `users_allow` and the POSIX
//! connector's `groups_allow` / `groups_deny`.
//! The answer is either an account name or the reason there is none; a refusal is not an error of the server.

use std::process::Stdio;
use std::time::Duration;

use ferry_core::Identity;
use ferry_core::endpoint::StorageGatewayDoc;
use ferry_core::mapping::{MappingDocument, MappingInput, default_username, map_expression};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An external mapping program that takes longer than this is killed, and the identity gets no account.
const PROGRAM_TIMEOUT: Duration = Duration::from_secs(10);
/// Output beyond this is not read: a mapping answer is a few hundred bytes.
const PROGRAM_OUTPUT_LIMIT: u64 = 1 << 20;

pub type Outcome = std::result::Result<String, String>;

fn input_of(identity: &Identity) -> MappingInput {
    MappingInput {
        id: identity.id.to_string(),
        username: identity.username.clone(),
        email: identity.email.clone(),
        name: Some(identity.name.clone()),
        organization: identity.organization.clone(),
    }
}

fn domain_of(username: &str) -> &str {
    username.rsplit_once('@').map(|(_, d)| d).unwrap_or("")
}

/// The account `identity` reaches `gateway` as, or why it has none.
pub async fn account_for(gateway: &StorageGatewayDoc, identity: &Identity) -> Outcome {
    let domain = domain_of(&identity.username);
    if !gateway.allowed_domains.is_empty()
        && !gateway
            .allowed_domains
            .iter()
            .any(|d| d.eq_ignore_ascii_case(domain))
    {
        return Err(format!(
            "{} is not from a domain the storage gateway allows ({})",
            identity.username,
            gateway.allowed_domains.join(", ")
        ));
    }
    let username = mapped_name(gateway, identity).await?;
    if username.is_empty()
        || username.len() > 255
        || username.contains(['/', '\0', '\n'])
        || username == "."
        || username == ".."
    {
        return Err(format!(
            "the identity mapping gave {username:?}, which is not a usable account name"
        ));
    }
    if gateway.users_deny.contains(&username) {
        return Err(format!(
            "account {username} is in the storage gateway's users_deny"
        ));
    }
    if !gateway.users_allow.is_empty() && !gateway.users_allow.contains(&username) {
        return Err(format!(
            "account {username} is not in the storage gateway's users_allow"
        ));
    }
    posix_groups(gateway, &username).await?;
    Ok(username)
}

/// The POSIX connector's `groups_allow` / `groups_deny`: the account's groups on this host decide (looked up off
/// the runtime's threads: the look-up may ask a directory server).
async fn posix_groups(
    gateway: &StorageGatewayDoc,
    username: &str,
) -> std::result::Result<(), String> {
    let p = &gateway.policies;
    if p.groups_allow.is_empty() && p.groups_deny.is_empty() {
        return Ok(());
    }
    let groups = ferry_storage::posix_groups(username)
        .await
        .unwrap_or_default();
    if let Some(g) = p.groups_deny.iter().find(|g| groups.contains(g)) {
        return Err(format!(
            "account {username} is in POSIX group {g}, which the storage gateway denies"
        ));
    }
    if !p.groups_allow.is_empty() && !p.groups_allow.iter().any(|g| groups.contains(g)) {
        return Err(format!(
            "account {username} is in none of the POSIX groups the storage gateway allows ({})",
            p.groups_allow.join(", ")
        ));
    }
    Ok(())
}

async fn mapped_name(gateway: &StorageGatewayDoc, identity: &Identity) -> Outcome {
    if gateway.identity_mappings.is_empty() {
        return Ok(default_username(&identity.username).to_string());
    }
    let input = input_of(identity);
    for (i, doc) in gateway.identity_mappings.iter().enumerate() {
        let found = match doc {
            MappingDocument::Expression { mappings } => map_expression(mappings, &input)
                .map_err(|e| format!("identity_mappings[{i}]: {e}"))?,
            MappingDocument::External { command } => run_program(command, gateway, identity)
                .await
                .map_err(|e| format!("identity_mappings[{i}] (external program): {e}"))?,
        };
        if let Some(name) = found {
            return Ok(name);
        }
    }
    Err(format!(
        "no identity mapping of the storage gateway matches {}",
        identity.username
    ))
}

/// Runs an external mapping program with GCS's contract: `-c CONNECTOR_ID -s GATEWAY_ID` appended, one identity
/// as `identity_mapping_input#1.0.0` on stdin, `identity_mapping_output#1.0.0` expected on stdout.
async fn run_program(
    command: &[String],
    gateway: &StorageGatewayDoc,
    identity: &Identity,
) -> std::result::Result<Option<String>, String> {
    let (program, args) = command.split_first().ok_or("the mapping has no command")?;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .arg("-c")
        .arg(gateway.connector_id.to_string())
        .arg("-s")
        .arg(gateway.id.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {program}: {e}"))?;
    let mut ident = serde_json::to_value(input_of(identity)).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut ident {
        m.insert("status".into(), json!("used"));
    }
    let request = json!({
        "DATA_TYPE": "identity_mapping_input#1.0.0",
        "identities": [ident],
    });
    let work = async {
        if let Some(mut stdin) = child.stdin.take() {
            // A program that exits without reading its input is not an error of ours.
            let _ = stdin.write_all(request.to_string().as_bytes()).await;
        }
        let mut out = Vec::new();
        if let Some(stdout) = child.stdout.take() {
            stdout
                .take(PROGRAM_OUTPUT_LIMIT)
                .read_to_end(&mut out)
                .await
                .map_err(|e| format!("reading its output: {e}"))?;
        }
        let status = child.wait().await.map_err(|e| e.to_string())?;
        Ok::<_, String>((status, out))
    };
    let (status, out) = tokio::time::timeout(PROGRAM_TIMEOUT, work)
        .await
        .map_err(|_| format!("{program} did not answer within {PROGRAM_TIMEOUT:?}"))??;
    if !status.success() {
        return Err(format!("{program} exited with {status}"));
    }
    let answer: Value = serde_json::from_slice(&out)
        .map_err(|e| format!("{program} did not print a JSON document: {e}"))?;
    if answer.get("DATA_TYPE").and_then(Value::as_str) != Some("identity_mapping_output#1.0.0") {
        return Err(format!(
            "{program} answered without DATA_TYPE identity_mapping_output#1.0.0"
        ));
    }
    let id = identity.id.to_string();
    Ok(answer
        .get("result")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|r| r.get("id").and_then(Value::as_str) == Some(id.as_str()))
        .and_then(|r| r.get("output").and_then(Value::as_str))
        .map(str::to_string))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::IdentityKind;
    use uuid::Uuid;

    fn ident(username: &str) -> Identity {
        Identity {
            id: Uuid::new_v4(),
            username: username.into(),
            name: "Ana".into(),
            email: Some("ana@uni.edu".into()),
            organization: None,
            kind: IdentityKind::Person,
            created: 0,
            identity_provider: None,
        }
    }

    fn gateway(extra: Value) -> StorageGatewayDoc {
        let mut doc = json!({"display_name": "g"});
        crate::docs::merge_into(&mut doc, extra);
        serde_json::from_value(doc).unwrap()
    }

    #[tokio::test]
    async fn domains_mappings_and_lists() {
        let ana = ident("ana@uni.edu");
        assert_eq!(
            account_for(&gateway(json!({})), &ana).await,
            Ok("ana".into())
        );
        let e = account_for(&gateway(json!({"allowed_domains": ["lab.org"]})), &ana)
            .await
            .unwrap_err();
        assert!(e.contains("lab.org"), "{e}");
        assert!(
            account_for(&gateway(json!({"allowed_domains": ["UNI.edu"]})), &ana)
                .await
                .is_ok()
        );
        let mapped = gateway(json!({"identity_mappings": [{
            "DATA_TYPE": "expression_identity_mapping#1.0.0",
            "mappings": [{"source": "{username}", "match": "(.*)@uni\\.edu", "output": "u_{0}"}]
        }]}));
        assert_eq!(account_for(&mapped, &ana).await, Ok("u_ana".into()));
        assert!(account_for(&mapped, &ident("bob@else.org")).await.is_err());
        let denied = gateway(json!({"users_deny": ["ana"]}));
        assert!(
            account_for(&denied, &ana)
                .await
                .unwrap_err()
                .contains("users_deny")
        );
        let allow = gateway(json!({"users_allow": ["bob"]}));
        assert!(
            account_for(&allow, &ana)
                .await
                .unwrap_err()
                .contains("users_allow")
        );
        // POSIX groups on this host: root is in group root; ana is unknown here, so in no group.
        let root = ident("root@uni.edu");
        let groups = |allow: &[&str], deny: &[&str]| {
            gateway(
                json!({"policies": {"DATA_TYPE": "posix_storage_policies#1.0.0",
                "groups_allow": allow, "groups_deny": deny}}),
            )
        };
        assert_eq!(
            account_for(&groups(&["root"], &[]), &root).await,
            Ok("root".into())
        );
        let e = account_for(&groups(&[], &["root"]), &root)
            .await
            .unwrap_err();
        assert!(e.contains("POSIX group root"), "{e}");
        let e = account_for(&groups(&["root"], &[]), &ana)
            .await
            .unwrap_err();
        assert!(e.contains("none of the POSIX groups"), "{e}");
    }

    #[tokio::test]
    async fn external_program_contract() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("map.sh");
        // Answers with the identity id it was given (read from stdin) and a fixed account; checks its flags.
        std::fs::write(
            &script,
            "#!/bin/sh\n[ \"$1\" = \"-c\" ] && [ \"$3\" = \"-s\" ] || exit 3\nid=$(cat | sed -e 's/.*\"id\":\"\\([^\"]*\\)\".*/\\1/')\nprintf '{\"DATA_TYPE\":\"identity_mapping_output#1.0.0\",\"result\":[{\"id\":\"%s\",\"output\":\"mapped_user\"}]}' \"$id\"\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let g = gateway(json!({"identity_mappings": [{
            "DATA_TYPE": "external_identity_mapping#1.0.0",
            "command": [script.to_str().unwrap()]
        }]}));
        assert_eq!(
            account_for(&g, &ident("ana@uni.edu")).await,
            Ok("mapped_user".into())
        );
        let broken = gateway(json!({"identity_mappings": [{
            "DATA_TYPE": "external_identity_mapping#1.0.0",
            "command": ["/bin/false"]
        }]}));
        let e = account_for(&broken, &ident("ana@uni.edu"))
            .await
            .unwrap_err();
        assert!(e.contains("exited"), "{e}");
    }
}
