//! The data plane's contract with its callers, as an attacker and a collaborator would probe it: a delete or a
//! rename acts on a symbolic link itself (never on what it points to, never outside the root), messages name
//! paths as the collection sees them (never the host's storage paths), and every file a task reads, writes or
//! deletes is in the audit log.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use ferry_core::ClientKind;
use ferry_tests::TestServer;
use ferry_tests::data::{Answer, Door};
use ferry_tests::endpoint::{api, gateway, mapped};
use reqwest::Method as M;
use serde_json::json;
use uuid::Uuid;

fn write(root: &Path, rel: &str, content: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

/// A folder beside the storage root with one file that no operation may touch.
struct Canary {
    dir: PathBuf,
}

impl Canary {
    fn beside(root: &Path) -> Self {
        let dir = root
            .parent()
            .unwrap()
            .join(format!("outside-{}", Uuid::new_v4()));
        write(&dir, "secret", "CANARY");
        Self { dir }
    }
    fn intact(&self) {
        assert_eq!(
            std::fs::read_to_string(self.dir.join("secret")).unwrap(),
            "CANARY"
        );
        assert_eq!(std::fs::read_dir(&self.dir).unwrap().count(), 1);
    }
}

impl Drop for Canary {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn is_link(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink())
}

#[tokio::test]
async fn deleting_renaming_and_stating_a_symlink_act_on_the_link_itself() {
    let s = TestServer::start().await;
    let admin_app = s.admin_app();
    let admin = api(&s, &admin_app).await;
    let (g, dir) = gateway(&admin, json!({"read_write": ["/"]}), json!({})).await;
    let root = dir.path().to_path_buf();
    let coll = mapped(&admin, g, json!({})).await;
    let d = Door::new(&s, &admin_app, coll).await;
    let canary = Canary::beside(&root);
    write(&root, "d/f.txt", "F");
    write(&root, "dir/inner.txt", "I");
    let outside_name = canary
        .dir
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    // Links to a file inside, to a folder inside, and (relative and absolute) to the canary outside.
    for (link, target) in [
        ("lf", "d/f.txt".to_string()),
        ("ld", "dir".to_string()),
        ("lo", format!("../{outside_name}/secret")),
        ("lod", format!("../{outside_name}")),
        ("la", canary.dir.join("secret").display().to_string()),
        ("la2", canary.dir.join("secret").display().to_string()),
        ("lf2", "d/f.txt".to_string()),
        ("ld2", "dir".to_string()),
        ("lo2", format!("../{outside_name}")),
    ] {
        symlink(target, root.join(link)).unwrap();
    }

    // stat reports the link: its own name, what it leads to inside the collection, nothing of the outside.
    let st = d.stat("/lf").await;
    assert_eq!(st.status, 200, "{}", st.text);
    let v = st.json();
    assert_eq!(
        (
            v["name"].as_str(),
            v["type"].as_str(),
            v["link_target"].as_str()
        ),
        (Some("lf"), Some("file"), Some("/d/f.txt")),
        "{v}"
    );
    let v = d.stat("/ld").await.json();
    assert_eq!(
        (v["name"].as_str(), v["type"].as_str()),
        (Some("ld"), Some("dir")),
        "{v}"
    );
    for out in ["/lo", "/la", "/lod"] {
        let st = d.stat(out).await;
        assert_eq!(st.status, 200, "stat {out}: {}", st.text);
        let v = st.json();
        assert_eq!(v["type"], "invalid_symlink", "{v}");
        assert!(v["link_target"].is_null(), "the outside is not shown: {v}");
        assert!(!st.text.contains(&outside_name), "{}", st.text);
    }
    // ... and ls agrees (the name is the link's, and the outside is not named).
    let l = d.ls("/").await;
    assert_eq!(l.status, 200, "{}", l.text);
    assert!(!l.text.contains(&outside_name), "{}", l.text);
    assert!(!l.text.contains(&root.display().to_string()), "{}", l.text);

    // HTTPS DELETE removes the link, not the file it points to.
    let a = d.https(M::DELETE, "/lf", None).await;
    assert_eq!(a.status, 204, "{}", a.text);
    assert!(!is_link(&root.join("lf")));
    assert_eq!(std::fs::read_to_string(root.join("d/f.txt")).unwrap(), "F");
    // ... also when it points outside.
    let a = d.https(M::DELETE, "/la", None).await;
    assert_eq!(a.status, 204, "{}", a.text);
    assert!(!is_link(&root.join("la")));
    canary.intact();
    // A link to a folder: removed without `recursive`, the folder stays whole.
    let a = d.https(M::DELETE, "/ld", None).await;
    assert_eq!(a.status, 204, "{}", a.text);
    assert!(!is_link(&root.join("ld")));
    assert_eq!(
        std::fs::read_to_string(root.join("dir/inner.txt")).unwrap(),
        "I"
    );

    // Transfer rename renames the link; the target keeps its name.
    for (from, to) in [
        ("/lf2", "/lf2-renamed"),
        ("/ld2", "/ld2-renamed"),
        ("/lo", "/lo-renamed"),
        ("/la2", "/la2-renamed"),
    ] {
        let a = d.rename(from, to).await;
        assert_eq!(a.status, 200, "rename {from}: {}", a.text);
        assert!(is_link(&root.join(&to[1..])), "{to} is the link");
        assert!(!root.join(&from[1..]).exists() && !is_link(&root.join(&from[1..])));
    }
    assert_eq!(std::fs::read_to_string(root.join("d/f.txt")).unwrap(), "F");
    assert!(root.join("dir/inner.txt").exists());
    canary.intact();

    // A delete task removes links (to a file, to a folder, recursive or not, out of the root) and nothing else.
    let (t, ev) = d
        .delete_task(
            &["/lf2-renamed", "/ld2-renamed", "/lo-renamed", "/lod"],
            false,
        )
        .await;
    assert_eq!(t["status"], "SUCCEEDED", "{t} {ev}");
    let (t, ev) = d.delete_task(&["/lo2", "/la2-renamed"], true).await;
    assert_eq!(t["status"], "SUCCEEDED", "{t} {ev}");
    for gone in [
        "lf2-renamed",
        "ld2-renamed",
        "lo-renamed",
        "lod",
        "lo2",
        "la2-renamed",
    ] {
        assert!(!is_link(&root.join(gone)), "{gone} removed");
    }
    assert_eq!(std::fs::read_to_string(root.join("d/f.txt")).unwrap(), "F");
    assert_eq!(
        std::fs::read_to_string(root.join("dir/inner.txt")).unwrap(),
        "I"
    );
    canary.intact();
}

/// Every answer a collaborator of a guest collection can provoke, and every event of its tasks.
fn no_host_path(what: &str, text: &str, hidden: &[&str]) {
    for h in hidden {
        assert!(!text.contains(h), "{what} shows {h:?}: {text}");
    }
}

#[tokio::test]
async fn messages_name_collection_paths_never_the_storage_behind_them() {
    let s = TestServer::start().await;
    let admin_app = s.admin_app();
    let admin = api(&s, &admin_app).await;
    let (g, dir) = gateway(&admin, json!({"read_write": ["/"]}), json!({})).await;
    let root = dir.path().to_path_buf();
    write(&root, "cohorts/045/raw/file.txt", "data");
    write(&root, "cohorts/045/raw/full/one.txt", "1");
    write(&root, "cohorts/045/raw/ro/r.txt", "r");
    std::fs::create_dir_all(root.join("cohorts/045/raw/exists")).unwrap();
    let m = mapped(
        &admin,
        g,
        json!({"collection_base_path": "/cohorts/045", "allow_guest_collections": true}),
    )
    .await;
    let owner = Door::new(&s, &admin_app, m).await;
    let created = owner
        .s
        .call(
            M::POST,
            "/v0.10/shared_endpoint",
            &owner.transfer,
            Some(
                &json!({"DATA_TYPE": "shared_endpoint", "host_endpoint": m, "host_path": "/raw",
                         "display_name": "raw"}),
            ),
        )
        .await;
    assert_eq!(created.0, 200, "{}", created.1);
    let guest = Uuid::parse_str(created.1["id"].as_str().unwrap()).unwrap();
    // A collaborator who may write everywhere, and one who may only read.
    let collaborator = s.app(ClientKind::Confidential).await;
    let reader = s.app(ClientKind::Confidential).await;
    let share = Door::new(&s, &admin_app, guest).await;
    for (who, perms) in [(&collaborator, "rw"), (&reader, "r")] {
        let (st, b) = s
            .call(
                M::POST,
                &format!("/v0.10/endpoint/{guest}/access"),
                &share.transfer,
                Some(&json!({"DATA_TYPE": "access", "principal_type": "identity",
                             "principal": who.id, "path": "/", "permissions": perms})),
            )
            .await;
        assert_eq!(st, 200, "{b}");
    }
    let d = Door::new(&s, &collaborator, guest).await;
    let r = Door::new(&s, &reader, guest).await;
    let host = root.display().to_string();
    let hidden = ["/cohorts", "/045", host.as_str()];
    let expect = |what: &str, a: Answer, status: u16, names: &str| {
        assert_eq!(a.status, status, "{what}: {}", a.text);
        no_host_path(what, &a.text, &hidden);
        assert!(a.text.contains(names), "{what} names {names}: {}", a.text);
    };
    expect("ls", d.ls("/nope").await, 404, "/nope");
    expect("stat", d.stat("/nope").await, 404, "/nope");
    expect("ls of a file", d.ls("/file.txt").await, 400, "/file.txt");
    expect("mkdir", d.mkdir("/nope/x").await, 404, "/nope");
    expect("mkdir existing", d.mkdir("/exists").await, 409, "/exists");
    expect(
        "mkdir in a file",
        d.mkdir("/file.txt/x").await,
        400,
        "/file.txt",
    );
    expect(
        "rename missing",
        d.rename("/nope", "/x").await,
        404,
        "/nope",
    );
    expect(
        "rename onto",
        d.rename("/file.txt", "/exists").await,
        409,
        "/exists",
    );
    expect(
        "rename into a file",
        d.rename("/file.txt", "/file.txt2/x").await,
        404,
        "/file.txt2",
    );
    expect("GET", d.https(M::GET, "/nope", None).await, 404, "/nope");
    expect(
        "GET a folder",
        d.https(M::GET, "/exists", None).await,
        400,
        "/exists",
    );
    expect(
        "PUT",
        d.https(M::PUT, "/nope/x", Some(b"x".to_vec())).await,
        404,
        "/nope",
    );
    expect(
        "PUT in a file",
        d.https(M::PUT, "/file.txt/x", Some(b"x".to_vec())).await,
        400,
        "/file.txt",
    );
    expect(
        "DELETE",
        d.https(M::DELETE, "/nope", None).await,
        404,
        "/nope",
    );
    expect(
        "DELETE full",
        d.https(M::DELETE, "/full", None).await,
        409,
        "/full",
    );
    expect("denied", r.mkdir("/ro/x").await, 403, "/ro/x");
    expect(
        "denied PUT",
        r.https(M::PUT, "/ro/x", Some(b"x".to_vec())).await,
        403,
        "/ro/x",
    );
    expect(
        "denied DELETE",
        r.https(M::DELETE, "/file.txt", None).await,
        403,
        "/file.txt",
    );

    // Tasks: a missing source, a destination under a file, a missing delete.
    for items in [
        vec![("/nope", "/copy", false)],
        vec![("/file.txt", "/file.txt/sub/copy", false)],
    ] {
        let (t, ev) = d.transfer_task(&items).await;
        assert_ne!(t["status"], "SUCCEEDED", "{t}");
        let all = format!("{t} {ev}");
        no_host_path("a transfer task", &all, &hidden);
    }
    let (t, ev) = d.delete_task(&["/nope"], false).await;
    assert_eq!(t["status"], "FAILED", "{t}");
    no_host_path("a delete task", &format!("{t} {ev}"), &hidden);
    expect(
        "delete task",
        Answer {
            status: 200,
            text: t.to_string(),
        },
        200,
        "/nope",
    );
    // The storage root of the mapped collection is its own `/` too.
    expect("mapped ls", owner.ls("/nope").await, 404, "/nope");
}

#[tokio::test]
async fn every_file_a_task_reads_writes_or_deletes_is_audited() {
    let s = TestServer::start().await;
    let admin_app = s.admin_app();
    let admin = api(&s, &admin_app).await;
    let (g, dir) = gateway(&admin, json!({"read_write": ["/"]}), json!({})).await;
    let root = dir.path().to_path_buf();
    let coll = mapped(&admin, g, json!({})).await;
    let d = Door::new(&s, &admin_app, coll).await;
    let files = ["a.txt", "sub/b.txt", "sub/c.txt", "big.bin"];
    for f in &files[..3] {
        write(&root, &format!("src/{f}"), f);
    }
    // Large enough to move as several ranges: still one record.
    std::fs::write(root.join("src/big.bin"), vec![7u8; 70 << 20]).unwrap();
    let (t, ev) = d.transfer_task(&[("/src", "/dst", true)]).await;
    assert_eq!(t["status"], "SUCCEEDED", "{t} {ev}");
    let copy_task = t["task_id"].as_str().unwrap().to_string();
    let (t, ev) = d.delete_task(&["/dst"], true).await;
    assert_eq!(t["status"], "SUCCEEDED", "{t} {ev}");
    let delete_task = t["task_id"].as_str().unwrap().to_string();
    assert!(!root.join("dst").exists());

    s.running.endpoint.audit().flush().await;
    let records = s
        .running
        .auth
        .store()
        .query_audit(&ferry_store::AuditFilter {
            collection_id: Some(coll),
            ..Default::default()
        })
        .await
        .unwrap();
    let me = Uuid::parse_str(&admin_app.id).unwrap();
    let count = |action: &str, path: &str, task: &str| {
        records
            .iter()
            .filter(|r| {
                r.action == action
                    && r.allowed
                    && r.identity_id == Some(me)
                    && r.path.as_deref() == Some(path)
                    && r.detail.contains(task)
            })
            .count()
    };
    for f in files {
        let (src, dst) = (format!("/src/{f}"), format!("/dst/{f}"));
        assert_eq!(
            count("task.read", &src, &copy_task),
            1,
            "{src}: {records:#?}"
        );
        assert_eq!(
            count("task.write", &dst, &copy_task),
            1,
            "{dst}: {records:#?}"
        );
        assert_eq!(
            count("task.delete", &dst, &delete_task),
            1,
            "{dst}: {records:#?}"
        );
    }
}

/// The process's peak resident memory so far, in KiB (nextest runs each test in its own process).
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// CPU time this process used so far (user and system), in seconds: a figure that load on the machine does not
/// change as it changes wall time (Linux's USER_HZ is 100).
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

#[tokio::test]
async fn a_page_of_a_huge_folder_does_not_hold_the_whole_folder() {
    // 100,000 by default (a quick suite); the report's figure is for FERRY_LS_ENTRIES=200000.
    let entries: usize = std::env::var("FERRY_LS_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let s = TestServer::start().await;
    let admin_app = s.admin_app();
    let admin = api(&s, &admin_app).await;
    let (g, dir) = gateway(&admin, json!({"read_write": ["/"]}), json!({})).await;
    let coll = mapped(&admin, g, json!({})).await;
    let d = Door::new(&s, &admin_app, coll).await;
    let big = dir.path().join("big");
    std::fs::create_dir(&big).unwrap();
    for i in 0..entries {
        // Long names, as instruments write them: what a listing holds per entry.
        std::fs::File::create(big.join(format!(
            "sample-{i:07}-run-2024-06-01T00-00-00-detector-a.h5"
        )))
        .unwrap();
    }
    let small = d.ls("/").await;
    assert_eq!(small.status, 200, "{}", small.text);
    let before = peak_rss_kib();
    let (started, cpu) = (std::time::Instant::now(), cpu_secs());
    for (query, first) in [
        ("limit=100", 0),
        ("limit=100&orderby=name%20DESC", entries - 1),
        ("limit=100&offset=1000", 1000),
    ] {
        let first = format!("sample-{first:07}-run-2024-06-01T00-00-00-detector-a.h5");
        let (st, b) = s
            .get(
                &format!("/v0.10/operation/endpoint/{coll}/ls?path=/big/&{query}"),
                &d.transfer,
            )
            .await;
        assert_eq!(st, 200, "{b}");
        assert_eq!(
            (b["length"].as_u64(), b["total"].as_u64()),
            (Some(100), Some(entries as u64))
        );
        assert_eq!(b["DATA"][0]["name"], first.as_str(), "{query}");
    }
    let grew = peak_rss_kib().saturating_sub(before);
    println!(
        "ls of {entries} entries, 3 pages of 100: peak RSS +{grew} KiB, {:.2} s ({:.2} s of CPU)",
        started.elapsed().as_secs_f64(),
        cpu_secs() - cpu
    );
    // Every entry held at once would be tens of MiB; a page and a read-ahead buffer are well under 16.
    assert!(grew < 16 * 1024, "peak RSS grew by {grew} KiB");
}
