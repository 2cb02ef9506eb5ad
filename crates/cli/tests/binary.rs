//! The `ferry` binary as a shell user runs it: into a pipe that closes early, and for shell completion.

use std::io::Read;
use std::process::{Command, Stdio};

fn ferry() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ferry"));
    // Ferry rejects unknown FERRY_* variables as configuration: none of the caller's leak in.
    for (k, _) in std::env::vars() {
        if k.starts_with("FERRY_") {
            c.env_remove(k);
        }
    }
    c
}

/// `ferry … | head`: the reader is gone before the first line; the command ends without a panic message.
#[test]
fn a_closed_pipe_ends_the_command_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = ferry()
        .args(["self-diagnostic", "--data-dir"])
        .arg(dir.path().join("none"))
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("panicked"),
        "status {:?}, stderr: {stderr}",
        out.status
    );
}

#[test]
fn completion_scripts_for_each_shell() {
    for (shell, marker) in [
        ("bash", "_ferry()"),
        ("zsh", "#compdef ferry"),
        ("fish", "complete -c ferry"),
    ] {
        let mut child = ferry()
            .args(["completion", shell])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut text = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        assert!(child.wait().unwrap().success(), "{shell}");
        assert!(
            text.contains(marker),
            "{shell}: {}",
            &text[..200.min(text.len())]
        );
        // Subcommands several levels deep are completed.
        assert!(text.contains("create-guest"), "{shell}");
    }
}

/// Generated client secrets are base64url and about one in 32 begins with '-'; such a secret is a value.
#[test]
fn a_secret_beginning_with_a_hyphen_is_taken_as_the_value() {
    let dir = tempfile::tempdir().unwrap();
    // Port 9 on loopback: nothing listens, so the command gets as far as connecting and fails there.
    let out = ferry()
        .args(["whoami", "--url", "http://127.0.0.1:9", "--client-id"])
        .args([
            "2e6d96c8-ed6d-4886-8f31-94012b0fc611",
            "--client-secret",
            "-Biswy0gevugfdmofH4i6Lp",
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(!stderr.contains("unexpected argument"), "{stderr}");
    let out = ferry()
        .args([
            "identity",
            "create",
            "someone",
            "--password",
            "-starts-with-hyphen-1A",
            "--data-dir",
        ])
        .arg(dir.path().join("none"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("unexpected argument"), "{stderr}");
}
