//! Transfer and delete tasks against the real server: copies verified byte for byte, per-file checksums,
//! sync levels, a corrupted copy caught and repaired, bad submissions refused with nothing queued, the same
//! submission id creating one task, the access check at submission and on every file, delete tasks, a full
//! destination, and a server killed with SIGKILL in the middle of a task (run as a child process).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ferry_core::ClientKind;
use ferry_tests::endpoint::{api, gateway, mapped};
use ferry_tests::{App, TestServer};
use reqwest::Method as M;
use serde_json::{Value, json};
use uuid::Uuid;

const TRANSFER: &str = "urn:globus:auth:scope:transfer.api.globus.org:all";

/// A server with one gateway over a temporary folder and a mapped collection on it; the administrator's client
/// acts (it maps to the service account).
struct World {
    s: TestServer,
    admin: App,
    token: String,
    coll: Uuid,
    root: PathBuf,
    _dir: tempfile::TempDir,
}

async fn world_with(tweak: impl FnOnce(&mut ferry_tests::ferry_server::Config)) -> World {
    world_hooked(tweak, Default::default()).await
}

async fn world_hooked(
    tweak: impl FnOnce(&mut ferry_tests::ferry_server::Config),
    hooks: ferry_tests::ferry_server::TestHooks,
) -> World {
    let s = TestServer::start_hooked(tweak, hooks).await;
    let admin = s.admin_app();
    let (coll, dir) = {
        let a = api(&s, &admin).await;
        let (g, dir) = gateway(
            &a,
            json!({"DATA_TYPE": "path_restrictions#1.0.0", "read_write": ["/"], "none": ["/src/hidden"]}),
            json!({}),
        )
        .await;
        (
            mapped(&a, g, json!({"allow_guest_collections": true})).await,
            dir,
        )
    };
    let token = s.access_token(&admin, TRANSFER).await;
    World {
        root: dir.path().to_path_buf(),
        s,
        admin,
        token,
        coll,
        _dir: dir,
    }
}

async fn world() -> World {
    world_with(|c| {
        c.transfer.retry_base_ms = 50;
        c.transfer.inactive_retry_secs = 1;
    })
    .await
}

impl World {
    async fn t(&self, m: M, path: &str, body: Option<Value>) -> (u16, Value) {
        self.s
            .call(m, &format!("/v0.10{path}"), &self.token, body.as_ref())
            .await
    }

    async fn submit(&self, doc: Value) -> (u16, Value) {
        let kind = doc["DATA_TYPE"].as_str().unwrap_or("transfer").to_string();
        self.t(M::POST, &format!("/{kind}"), Some(doc)).await
    }

    fn transfer_doc(&self, items: Value, extra: Value) -> Value {
        let mut d = json!({"DATA_TYPE": "transfer", "source_endpoint": self.coll,
            "destination_endpoint": self.coll, "DATA": items});
        if let (Some(d), Value::Object(e)) = (d.as_object_mut(), extra) {
            d.extend(e);
        }
        d
    }

    async fn run(&self, items: Value, extra: Value) -> Value {
        let (st, r) = self.submit(self.transfer_doc(items, extra)).await;
        assert_eq!(st, 202, "{r}");
        assert_eq!(r["code"], "Accepted");
        self.wait(r["task_id"].as_str().unwrap()).await
    }

    /// Polls the task until it is no longer ACTIVE (as the SDK's task_wait does).
    async fn wait(&self, id: &str) -> Value {
        let start = Instant::now();
        loop {
            let (st, t) = self.t(M::GET, &format!("/task/{id}"), None).await;
            assert_eq!(st, 200, "{t}");
            if t["status"] != "ACTIVE" {
                return t;
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "task still active: {t}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn task_count(&self) -> u64 {
        let (st, b) = self.t(M::GET, "/task_list?limit=1", None).await;
        assert_eq!(st, 200, "{b}");
        b["total"].as_u64().unwrap()
    }
}

fn item(src: &str, dst: &str, recursive: bool) -> Value {
    json!({"DATA_TYPE": "transfer_item", "source_path": src, "destination_path": dst, "recursive": recursive})
}

/// Writes `n` files of varied sizes (some empty, some above the whole-file threshold) under `dir`.
fn dataset(dir: &Path, n: usize) {
    std::fs::create_dir_all(dir.join("sub/deeper")).unwrap();
    for i in 0..n {
        let size = match i % 5 {
            0 => 0,
            1 => 1,
            2 => 4096 + i,
            3 => 100_000 + i * 7,
            _ => 3_000 + i,
        };
        let data: Vec<u8> = (0..size).map(|j| (j * 31 + i * 7) as u8).collect();
        let sub = ["", "sub/", "sub/deeper/"][i % 3];
        std::fs::write(dir.join(format!("{sub}f{i}.dat")), data).unwrap();
    }
}

/// Every file under `a` has an identical copy under `b` and nothing else is there (parts included).
fn same_tree(a: &Path, b: &Path) {
    let list = |root: &Path| {
        let mut v = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let e = e.unwrap();
                let p = e.path();
                if e.file_type().unwrap().is_dir() {
                    stack.push(p);
                } else {
                    v.push(p.strip_prefix(root).unwrap().to_path_buf());
                }
            }
        }
        v.sort();
        v
    };
    let (la, lb) = (list(a), list(b));
    assert_eq!(la, lb, "the trees list different files");
    for p in la {
        assert!(
            std::fs::read(a.join(&p)).unwrap() == std::fs::read(b.join(&p)).unwrap(),
            "{} differs",
            p.display()
        );
    }
}

#[tokio::test]
async fn a_recursive_transfer_copies_verifies_and_reports_every_file() {
    let w = world().await;
    dataset(&w.root.join("src"), 40);
    // Larger than the whole-file threshold: copied as ranges.
    let big: Vec<u8> = (0..9_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(w.root.join("src/sub/big.bin"), &big).unwrap();
    let t = w
        .run(
            json!([item("/src/", "/dst/", true)]),
            json!({"label": "first copy"}),
        )
        .await;
    assert_eq!(t["status"], "SUCCEEDED", "{t}");
    assert_eq!(t["files"], 41);
    assert_eq!(t["files_transferred"], 41);
    assert_eq!(t["directories"], 3);
    assert_eq!(t["subtasks_failed"], 0);
    assert_eq!(t["label"], "first copy");
    assert!(t["bytes_transferred"].as_u64().unwrap() >= big.len() as u64);
    assert!(t["nice_status"].is_null() && t["completion_time"].is_string());
    same_tree(&w.root.join("src"), &w.root.join("dst"));

    // Every file is reported with the BLAKE3 of the source's bytes.
    let id = t["task_id"].as_str().unwrap();
    let (st, page) = w
        .t(M::GET, &format!("/task/{id}/successful_transfers"), None)
        .await;
    assert_eq!(st, 200, "{page}");
    assert!(page["next_marker"].is_null());
    let rows = page["DATA"].as_array().unwrap();
    assert_eq!(rows.len(), 41);
    for r in rows {
        let src = r["source_path"].as_str().unwrap();
        let bytes = std::fs::read(w.root.join(&src[1..])).unwrap();
        assert_eq!(r["checksum_algorithm"], "BLAKE3");
        assert_eq!(
            r["checksum"],
            blake3::hash(&bytes).to_hex().as_str(),
            "{src}"
        );
        assert_eq!(r["size"], bytes.len());
        assert_eq!(
            r["destination_path"].as_str().unwrap(),
            src.replacen("/src/", "/dst/", 1)
        );
    }
    let (_, ev) = w.t(M::GET, &format!("/task/{id}/event_list"), None).await;
    let codes: Vec<&str> = ev["DATA"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["SUCCEEDED", "STARTED"], "{ev}");
    assert_eq!(ev["total"], 2);
    let (_, l) = w
        .t(
            M::GET,
            "/task_list?filter=status:SUCCEEDED/type:TRANSFER/label:~FIRST",
            None,
        )
        .await;
    assert_eq!(l["total"], 1, "{l}");
    let (_, p) = w.t(M::GET, &format!("/task/{id}/pause_info"), None).await;
    assert_eq!(p["DATA_TYPE"], "pause_info_limited");
    // The collection now shows among those recently used, not among those in use (the task ended).
    let (_, recent) = w
        .t(M::GET, "/endpoint_search?filter_scope=recently-used", None)
        .await;
    let ids: Vec<&str> = recent["DATA"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [w.coll.to_string()], "{recent}");
    let (_, busy) = w
        .t(M::GET, "/endpoint_search?filter_scope=in-use", None)
        .await;
    assert_eq!(busy["DATA"].as_array().unwrap().len(), 0, "{busy}");

    // MD5 when asked, as Globus computes it.
    let t = w
        .run(
            json!([{"DATA_TYPE": "transfer_item", "source_path": "/src/sub/big.bin",
                    "destination_path": "/md5/big.bin", "checksum_algorithm": "MD5"}]),
            json!({}),
        )
        .await;
    assert_eq!(t["status"], "SUCCEEDED", "{t}");
    let (_, page) = w
        .t(
            M::GET,
            &format!(
                "/task/{}/successful_transfers",
                t["task_id"].as_str().unwrap()
            ),
            None,
        )
        .await;
    assert_eq!(page["DATA"][0]["checksum_algorithm"], "MD5");
    assert_eq!(page["DATA"][0]["checksum"].as_str().unwrap().len(), 32);
    assert_eq!(std::fs::read(w.root.join("md5/big.bin")).unwrap(), big);
}

#[tokio::test]
async fn sync_levels_skip_what_is_up_to_date_and_checksum_repairs_a_corrupted_copy() {
    let w = world().await;
    dataset(&w.root.join("src"), 20);
    let t = w.run(json!([item("/src", "/dst", true)]), json!({})).await;
    assert_eq!(t["status"], "SUCCEEDED", "{t}");

    // Nothing changed: every level skips everything.
    for level in [0, 1, 3] {
        let t = w
            .run(
                json!([item("/src", "/dst", true)]),
                json!({"sync_level": level}),
            )
            .await;
        assert_eq!(t["status"], "SUCCEEDED", "{t}");
        assert_eq!(t["files_skipped"], 20, "level {level}: {t}");
        assert_eq!(t["files_transferred"], 0, "level {level}");
    }

    // One byte of a copy flips on disk (bit rot): only a checksum comparison sees it, and repairs it.
    let victim = w.root.join("dst/sub/f4.dat");
    let mut bytes = std::fs::read(&victim).unwrap();
    bytes[10] ^= 0x55;
    std::fs::write(&victim, &bytes).unwrap();
    let t = w
        .run(
            json!([item("/src", "/dst", true)]),
            json!({"sync_level": "size"}),
        )
        .await;
    assert_eq!(t["files_transferred"], 0, "size does not look inside: {t}");
    let t = w
        .run(
            json!([item("/src", "/dst", true)]),
            json!({"sync_level": 3}),
        )
        .await;
    assert_eq!(t["status"], "SUCCEEDED", "{t}");
    assert_eq!(t["files_transferred"], 1, "{t}");
    assert_eq!(t["files_skipped"], 19);
    same_tree(&w.root.join("src"), &w.root.join("dst"));

    // A newer source file is copied again at the mtime level; delete_destination_extra removes strays.
    std::fs::write(w.root.join("dst/stray.txt"), "not in the source").unwrap();
    std::fs::create_dir_all(w.root.join("dst/stray-dir")).unwrap();
    let f = std::fs::File::options()
        .write(true)
        .open(w.root.join("src/f3.dat"))
        .unwrap();
    f.set_modified(std::time::SystemTime::now() + Duration::from_secs(60))
        .unwrap();
    let t = w
        .run(
            json!([item("/src", "/dst", true)]),
            json!({"sync_level": 2, "delete_destination_extra": true, "preserve_timestamp": true}),
        )
        .await;
    assert_eq!(t["status"], "SUCCEEDED", "{t}");
    assert_eq!(t["files_transferred"], 1, "{t}");
    assert!(!w.root.join("dst/stray.txt").exists());
    assert!(!w.root.join("dst/stray-dir").exists());
    let (ms, md) = (
        std::fs::metadata(w.root.join("src/f3.dat"))
            .unwrap()
            .modified()
            .unwrap(),
        std::fs::metadata(w.root.join("dst/f3.dat"))
            .unwrap()
            .modified()
            .unwrap(),
    );
    assert_eq!(
        ms.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs(),
        md.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs(),
        "preserve_timestamp"
    );
    same_tree(&w.root.join("src"), &w.root.join("dst"));
}

#[tokio::test]
async fn a_copy_corrupted_before_verification_is_a_fault_that_is_retried_never_a_success() {
    let w = world_hooked(
        |c| c.transfer.retry_base_ms = 50,
        ferry_tests::ferry_server::TestHooks {
            corrupt_once: Some("victim".into()),
            ..Default::default()
        },
    )
    .await;
    std::fs::create_dir_all(w.root.join("src")).unwrap();
    // One file read whole, and one large enough to move as ranges (compared chunk by chunk as written).
    let small: Vec<u8> = (0..50_000u32).map(|i| (i * 7) as u8).collect();
    let large: Vec<u8> = (0..(9u32 << 20)).map(|i| (i % 251) as u8).collect();
    std::fs::write(w.root.join("src/victim-small.bin"), &small).unwrap();
    std::fs::write(w.root.join("src/victim-large.bin"), &large).unwrap();
    let t = w
        .run(
            json!([
                item("/src/victim-small.bin", "/dst/victim-small.bin", false),
                item("/src/victim-large.bin", "/dst/victim-large.bin", false)
            ]),
            json!({}),
        )
        .await;
    assert_eq!(t["status"], "SUCCEEDED", "{t}");
    assert_eq!(t["faults"], 2, "{t}");
    assert_eq!(
        std::fs::read(w.root.join("dst/victim-small.bin")).unwrap(),
        small
    );
    assert!(
        std::fs::read(w.root.join("dst/victim-large.bin")).unwrap() == large,
        "the large copy was repaired"
    );
    let (_, ev) = w
        .t(
            M::GET,
            &format!("/task/{}/event_list", t["task_id"].as_str().unwrap()),
            None,
        )
        .await;
    let mismatches = ev["DATA"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["code"] == "CHECKSUM_MISMATCH")
        .count();
    assert_eq!(mismatches, 2, "{ev}");

    // Without verification the corruption would go unseen: that is what verify_checksum is for.
    let mut leftovers: Vec<_> = std::fs::read_dir(w.root.join("dst"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    leftovers.sort();
    assert_eq!(
        leftovers,
        ["victim-large.bin", "victim-small.bin"],
        "no temporary file is left"
    );
}

#[tokio::test]
async fn bad_submissions_get_documented_codes_and_queue_nothing() {
    let w = world().await;
    dataset(&w.root.join("src"), 3);
    let before = w.task_count().await;
    let unknown = Uuid::new_v4();
    let past = "2001-01-01T00:00:00+00:00";
    let unknown_text = unknown.to_string();
    let cases: Vec<(Value, u16, &str, &str)> = vec![
        (
            w.transfer_doc(json!([]), json!({})),
            400,
            "ClientError.BadRequest.NoTransferItems",
            "at least one item",
        ),
        (
            json!({"DATA_TYPE": "transfer", "source_endpoint": unknown, "destination_endpoint": w.coll,
                   "DATA": [item("/src", "/x", true)]}),
            404,
            "EndpointNotFound",
            &unknown_text[..8],
        ),
        (
            json!({"DATA_TYPE": "transfer", "source_endpoint": w.coll, "destination_endpoint": unknown,
                   "DATA": [item("/src", "/x", true)]}),
            404,
            "EndpointNotFound",
            "",
        ),
        (
            w.transfer_doc(json!([item("/src", "/src/inner", true)]), json!({})),
            400,
            "ClientError.BadRequest",
            "inside",
        ),
        (
            w.transfer_doc(json!([item("/src", "/src", true)]), json!({})),
            400,
            "ClientError.BadRequest",
            "same",
        ),
        (
            w.transfer_doc(json!([item("src/f0.dat", "/x", false)]), json!({})),
            400,
            "ClientError.BadRequest",
            "absolute",
        ),
        (
            w.transfer_doc(json!([item("/src", "/x", true)]), json!({"sync_level": 7})),
            400,
            "ClientError.BadRequest",
            "sync_level",
        ),
        (
            w.transfer_doc(json!([item("/src", "/x", true)]), json!({"deadline": past})),
            400,
            "ClientError.BadRequest",
            "deadline",
        ),
        (
            w.transfer_doc(
                json!([item("/src", "/x", true)]),
                json!({"frobnicate": true}),
            ),
            400,
            "ClientError.BadRequest",
            "frobnicate",
        ),
        (
            w.transfer_doc(json!([item("/../etc", "/x", true)]), json!({})),
            400,
            "ClientError.BadRequest",
            "source_path",
        ),
        (
            json!({"DATA_TYPE": "delete", "endpoint": w.coll, "DATA": []}),
            400,
            "ClientError.BadRequest.NoDeleteItems",
            "",
        ),
        (
            json!({"DATA_TYPE": "delete", "endpoint": w.coll, "DATA": [{"DATA_TYPE": "delete_item", "path": "/"}]}),
            400,
            "ClientError.BadRequest",
            "root",
        ),
    ];
    for (doc, status, code, needle) in cases {
        let (st, b) = w.submit(doc.clone()).await;
        assert_eq!(st, status, "{doc}: {b}");
        assert_eq!(b["code"], code, "{doc}: {b}");
        assert!(
            b["message"].as_str().unwrap().contains(needle),
            "{doc}: {b}"
        );
        assert!(b["request_id"].is_string() && b["resource"].is_string());
    }
    assert_eq!(w.task_count().await, before, "nothing was queued");

    // A stranger with no permission on a guest collection is refused before anything is queued.
    let (st, b) = w
        .t(
            M::POST,
            "/shared_endpoint",
            Some(
                json!({"DATA_TYPE": "shared_endpoint", "host_endpoint": w.coll, "host_path": "/src",
                        "display_name": "share"}),
            ),
        )
        .await;
    assert_eq!(st, 200, "{b}");
    let guest = b["id"].as_str().unwrap().to_string();
    let stranger = w.s.app(ClientKind::Confidential).await;
    let st_token = w.s.access_token(&stranger, TRANSFER).await;
    let doc = json!({"DATA_TYPE": "transfer", "source_endpoint": guest, "destination_endpoint": guest,
        "DATA": [item("/f0.dat", "/copy.dat", false)]});
    let (st, b) =
        w.s.call(M::POST, "/v0.10/transfer", &st_token, Some(&doc))
            .await;
    assert_eq!(
        (st, b["code"].as_str()),
        (403, Some("EndpointPermissionDenied")),
        "{b}"
    );
    assert!(!w.root.join("src/copy.dat").exists());

    // Tasks are private: another caller's task is not found.
    assert_eq!(w.task_count().await, before, "nothing was queued");
    let t = w.run(json!([item("/src", "/copy", true)]), json!({})).await;
    let id = t["task_id"].as_str().unwrap();
    let (st, b) =
        w.s.call(M::GET, &format!("/v0.10/task/{id}"), &st_token, None)
            .await;
    assert_eq!(
        (st, b["code"].as_str()),
        (404, Some("ClientError.NotFound")),
        "{b}"
    );
    let (st, b) = w.t(M::GET, "/task/not-a-task", None).await;
    assert_eq!(st, 404, "{b}");
}

#[tokio::test]
async fn one_submission_id_makes_one_task() {
    let w = world().await;
    dataset(&w.root.join("src"), 3);
    let (_, sid) = w.t(M::GET, "/submission_id", None).await;
    let sid = sid["value"].as_str().unwrap().to_string();
    let doc = w.transfer_doc(
        json!([item("/src", "/once", true)]),
        json!({"submission_id": sid}),
    );
    let before = w.task_count().await;
    let (st1, a) = w.submit(doc.clone()).await;
    let (st2, b) = w.submit(doc).await;
    assert_eq!((st1, st2), (202, 200), "{a} {b}");
    assert_eq!(b["code"], "Duplicate");
    assert_eq!(a["task_id"], b["task_id"]);
    assert_eq!(w.task_count().await, before + 1);
    assert_eq!(
        w.wait(a["task_id"].as_str().unwrap()).await["status"],
        "SUCCEEDED"
    );
}

#[tokio::test]
async fn delete_tasks_remove_recursively_with_globs_and_ignore_missing() {
    let w = world().await;
    dataset(&w.root.join("tree"), 12);
    std::fs::write(w.root.join("a.log"), "x").unwrap();
    std::fs::write(w.root.join("b.log"), "y").unwrap();
    std::fs::write(w.root.join("keep.txt"), "z").unwrap();
    let del = |path: &str, extra: Value| {
        let mut d = json!({"DATA_TYPE": "delete", "endpoint": w.coll,
            "DATA": [{"DATA_TYPE": "delete_item", "path": path}]});
        if let (Some(d), Value::Object(e)) = (d.as_object_mut(), extra) {
            d.extend(e);
        }
        d
    };
    // A folder without recursive fails and removes nothing.
    let (st, r) = w.submit(del("/tree", json!({}))).await;
    assert_eq!(st, 202, "{r}");
    let t = w.wait(r["task_id"].as_str().unwrap()).await;
    assert_eq!(t["status"], "FAILED", "{t}");
    assert!(
        t["fatal_error"]["description"]
            .as_str()
            .unwrap()
            .contains("recursive"),
        "{t}"
    );
    assert!(w.root.join("tree/f0.dat").exists());

    let (_, r) = w.submit(del("/tree", json!({"recursive": true}))).await;
    let t = w.wait(r["task_id"].as_str().unwrap()).await;
    assert_eq!(t["status"], "SUCCEEDED", "{t}");
    assert_eq!(t["type"], "DELETE");
    assert!(t["destination_endpoint"].is_null());
    assert!(!w.root.join("tree").exists());

    let (_, r) = w
        .submit(del("/*.log", json!({"interpret_globs": true})))
        .await;
    let t = w.wait(r["task_id"].as_str().unwrap()).await;
    assert_eq!(t["status"], "SUCCEEDED", "{t}");
    assert!(!w.root.join("a.log").exists() && !w.root.join("b.log").exists());
    assert!(w.root.join("keep.txt").exists());

    let (_, r) = w.submit(del("/gone", json!({}))).await;
    let t = w.wait(r["task_id"].as_str().unwrap()).await;
    assert_eq!(t["status"], "FAILED");
    assert_eq!(t["fatal_error"]["code"], "FILE_NOT_FOUND", "{t}");
    let (_, r) = w
        .submit(del("/gone", json!({"ignore_missing": true})))
        .await;
    let t = w.wait(r["task_id"].as_str().unwrap()).await;
    assert_eq!(t["status"], "SUCCEEDED", "{t}");
}

/// A delete task stopped after it removed a path but before it recorded so (a server killed mid-way) counts the
/// path as deleted when it resumes: the attempt was recorded before it started, so a path gone at the next
/// attempt is this task's own work, not FILE_NOT_FOUND.
#[tokio::test]
async fn a_resumed_delete_counts_a_path_its_earlier_attempt_removed() {
    use ferry_store::tasks::{ItemOutcome, ItemState, TaskCounters};
    let w = world().await;
    std::fs::write(w.root.join("x"), "x").unwrap();
    // A real submission gives the stored form of a delete's options.
    let (_, r) = w
        .submit(json!({"DATA_TYPE": "delete", "endpoint": w.coll,
                       "DATA": [{"DATA_TYPE": "delete_item", "path": "/x"}]}))
        .await;
    let done = w.wait(r["task_id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    let store = w.s.running.auth.store().clone();
    let model = store
        .get_task(Uuid::parse_str(r["task_id"].as_str().unwrap()).unwrap())
        .await
        .unwrap()
        .unwrap();
    let items = |attempted: bool| {
        let store = store.clone();
        let mut row = model.clone();
        row.id = Uuid::new_v4();
        row.submission_id = Uuid::new_v4().to_string();
        row.status = ferry_store::tasks::TaskStatus::Active;
        row.completion_time = None;
        row.counters = TaskCounters::default();
        // Not claimed until the clock is moved past it.
        row.run_after = ferry_core::Clock::now(&*w.s.clock) + 600;
        async move {
            let item = ferry_store::tasks::NewItem {
                kind: ferry_store::tasks::ItemKind::Path,
                src: "/gone-already".into(),
                dst: None,
                recursive: false,
                size: None,
                mtime: None,
                checksum_algorithm: None,
                external_checksum: None,
                done_checksum: None,
            };
            store.create_task(&row, &[item]).await.unwrap();
            if attempted {
                let seq = store
                    .pending_items(row.id, &[ferry_store::tasks::ItemKind::Path], -1, 10)
                    .await
                    .unwrap()[0]
                    .seq;
                let started = ItemOutcome {
                    seq,
                    state: ItemState::Pending,
                    attempts: 1,
                    checksum_algorithm: None,
                    checksum: None,
                    error_code: None,
                    error: None,
                    error_time: None,
                    progress: None,
                };
                // Written as the earlier worker did: under its lease, given back when it stopped.
                let worker = "earlier-node/boot/1-process/0";
                let claimed = store.claim_task(worker, row.run_after, 30).await.unwrap();
                assert_eq!(claimed.map(|t| t.id), Some(row.id));
                let lease = ferry_store::tasks::Lease {
                    worker,
                    now: row.run_after,
                };
                store
                    .finish_items(row.id, &[started], &TaskCounters::default(), &lease)
                    .await
                    .unwrap();
                store
                    .release_lease(row.id, worker, row.run_after)
                    .await
                    .unwrap();
            }
            row.id.to_string()
        }
    };
    let resumed = items(true).await;
    let fresh = items(false).await;
    w.s.advance(700);
    let t = w.wait(&resumed).await;
    assert_eq!(t["status"], "SUCCEEDED", "{t}");
    let t = w.wait(&fresh).await;
    assert_eq!(t["status"], "FAILED", "{t}");
    assert_eq!(t["fatal_error"]["code"], "FILE_NOT_FOUND", "{t}");
}

/// A worker that loses its task's lease mid-task (it expired and another worker claimed the task) writes
/// nothing more: no outcome, progress, event or status, and it does not release the other worker's lease. The
/// task still ends SUCCEEDED once, every file verified, none recorded or counted twice. The copies are held at
/// a gate so that the worker is mid-task when its lease goes; the clock is moved, never waited for.
#[tokio::test]
async fn a_worker_that_lost_its_lease_writes_nothing_more_and_the_task_still_succeeds_once() {
    use std::sync::Arc;
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let w = world_hooked(
        |c| {
            c.transfer.retry_base_ms = 50;
            c.transfer.inactive_retry_secs = 1;
            c.metrics.enabled = true;
        },
        ferry_tests::ferry_server::TestHooks {
            copy_gate: Some(gate.clone()),
            ..Default::default()
        },
    )
    .await;
    let src = w.root.join("src");
    dataset(&src, 24);
    // One large file, copied in ranges with its progress saved as it goes.
    let big: Vec<u8> = (0..6u32 << 20).map(|i| (i % 251) as u8).collect();
    std::fs::write(src.join("sub/big.dat"), big).unwrap();
    let files = 25;
    let (st, r) = w
        .submit(w.transfer_doc(json!([item("/src", "/dst", true)]), json!({"perf_cc": 4})))
        .await;
    assert_eq!(st, 202, "{r}");
    let id_text = r["task_id"].as_str().unwrap().to_string();
    let id = Uuid::parse_str(&id_text).unwrap();
    let doc_until = |what: &'static str, want: i64| {
        let (w, id_text) = (&w, &id_text);
        async move {
            let start = Instant::now();
            loop {
                let (_, t) = w.t(M::GET, &format!("/task/{id_text}"), None).await;
                if t[what].as_i64() == Some(want) {
                    return;
                }
                assert!(start.elapsed() < Duration::from_secs(60), "{what}: {t}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    // Listed; then three files copied and recorded by the first worker.
    doc_until("files", files).await;
    gate.add_permits(3);
    doc_until("files_transferred", 3).await;
    let store = w.s.running.auth.store().clone();
    let before = ferry_store::conformance::task_state(store.as_ref(), id).await;
    assert!(w.s.running.transfer.runs(id));

    // The lease expires and another node's worker claims the task (if the first worker renewed in between,
    // the clock moves again).
    let other = "other-node/boot/1-worker/0";
    let mut claimed = None;
    for _ in 0..5 {
        w.s.advance(31);
        claimed = store.claim_task(other, w.s.now(), 600).await.unwrap();
        if claimed.is_some() {
            break;
        }
    }
    assert_eq!(claimed.map(|t| t.id), Some(id));
    // The first worker's copies go on, and each write they end in is refused: it stops.
    gate.add_permits(10_000);
    let start = Instant::now();
    while w.s.running.transfer.runs(id) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the worker that lost its lease is still running"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        ferry_store::conformance::task_state(store.as_ref(), id).await,
        before,
        "the worker that lost its lease wrote for the task"
    );
    assert!(
        store.renew_lease(id, other, w.s.now(), 600).await.unwrap(),
        "the other worker's lease was released"
    );
    let metrics =
        w.s.http
            .get(format!("{}/metrics", w.s.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l == "ferry_task_lease_losses_total 1"),
        "one lease loss counted: {metrics}"
    );

    // The other worker goes away without a word; once its lease expires, this server's worker claims the
    // task again and finishes it.
    w.s.advance(601);
    let t = w.wait(&id_text).await;
    assert_eq!(t["status"], "SUCCEEDED", "{t}");
    assert_eq!(t["files_transferred"], files, "{t}");
    same_tree(&src, &w.root.join("dst"));
    let (_, items, events) = ferry_store::conformance::task_state(store.as_ref(), id).await;
    let done: Vec<_> = items
        .iter()
        .filter(|i| i.kind == ferry_store::tasks::ItemKind::File)
        .collect();
    assert_eq!(done.len(), files as usize);
    assert!(
        done.iter()
            .all(|i| i.state == ferry_store::tasks::ItemState::Done && i.checksum.is_some()),
        "every file verified"
    );
    let mut dsts: Vec<_> = done.iter().map(|i| i.dst.clone()).collect();
    dsts.sort();
    dsts.dedup();
    assert_eq!(dsts.len(), files as usize, "a file recorded twice");
    assert_eq!(
        events.iter().filter(|e| e.code == "SUCCEEDED").count(),
        1,
        "{events:?}"
    );
}

#[tokio::test]
async fn cancel_stops_a_task_and_update_changes_label_and_deadline() {
    let w = world().await;
    // Many files, one at a time, so that the task is still running when it is cancelled.
    dataset(&w.root.join("src"), 400);
    let (st, r) = w
        .submit(w.transfer_doc(json!([item("/src", "/dst", true)]), json!({"perf_cc": 1})))
        .await;
    assert_eq!(st, 202, "{r}");
    let id = r["task_id"].as_str().unwrap();
    let (st, b) = w
        .t(
            M::PUT,
            &format!("/task/{id}"),
            Some(json!({"DATA_TYPE": "task", "label": "renamed",
            "deadline": "2099-01-01T00:00:00+00:00"})),
        )
        .await;
    assert_eq!((st, b["code"].as_str()), (200, Some("Updated")), "{b}");
    let (st, b) = w
        .t(
            M::PUT,
            &format!("/task/{id}"),
            Some(json!({"status": "SUCCEEDED"})),
        )
        .await;
    assert_eq!(st, 400, "{b}");
    let (st, b) = w.t(M::POST, &format!("/task/{id}/cancel"), None).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["code"], "Canceled");
    let t = w.wait(id).await;
    assert_eq!(t["status"], "FAILED");
    assert_eq!(t["fatal_error"]["code"], "CANCELED");
    assert_eq!(t["label"], "renamed");
    assert!(t["deadline"].as_str().unwrap().starts_with("2099-01-01"));
    let (_, b) = w.t(M::POST, &format!("/task/{id}/cancel"), None).await;
    assert_eq!(b["code"], "TaskComplete");
    // Nothing more is written after the cancel settles, and no temporary file stays.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let count = |p: &Path| walk_count(p);
    let n = count(&w.root.join("dst"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(count(&w.root.join("dst")), n);
    assert_eq!(parts(&w.root.join("dst")), 0);
}

fn walk_count(p: &Path) -> usize {
    if !p.exists() {
        return 0;
    }
    std::fs::read_dir(p)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                walk_count(&e.path())
            } else {
                1
            }
        })
        .sum()
}

/// Temporary `.ferry-part` files under a folder.
fn parts(p: &Path) -> usize {
    if !p.exists() {
        return 0;
    }
    std::fs::read_dir(p)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                parts(&e.path())
            } else {
                e.file_name().to_string_lossy().ends_with(".ferry-part") as usize
            }
        })
        .sum()
}

#[tokio::test]
async fn every_file_goes_through_the_access_check_as_it_moves() {
    let w = world().await;
    dataset(&w.root.join("src"), 6);
    std::fs::create_dir_all(w.root.join("src/hidden")).unwrap();
    std::fs::write(w.root.join("src/hidden/secret.txt"), "no").unwrap();
    // The gateway refuses /src/hidden: with skip_source_errors the copy goes on and reports it.
    let t = w
        .run(
            json!([item("/src", "/dst", true)]),
            json!({"skip_source_errors": true}),
        )
        .await;
    assert_eq!(t["status"], "SUCCEEDED", "{t}");
    assert!(!w.root.join("dst/hidden").exists());
    assert!(w.root.join("dst/sub/f1.dat").exists());
    let (_, errs) = w
        .t(
            M::GET,
            &format!("/task/{}/skipped_errors", t["task_id"].as_str().unwrap()),
            None,
        )
        .await;
    let rows = errs["DATA"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{errs}");
    assert_eq!(rows[0]["source_path"], "/src/hidden");
    assert_eq!(rows[0]["error_code"], "PERMISSION_DENIED");
    assert_eq!(t["subtasks_skipped_errors"], 1);
    // Without it the task does not pretend: it goes INACTIVE saying why.
    let t = w.run(json!([item("/src", "/dst2", true)]), json!({})).await;
    assert_eq!(t["status"], "INACTIVE", "{t}");
    assert_eq!(t["nice_status"], "PERMISSION_DENIED");
    assert!(
        t["nice_status_details"]
            .as_str()
            .unwrap()
            .contains("/src/hidden"),
        "{t}"
    );
    let (_, b) = w
        .t(
            M::POST,
            &format!("/task/{}/cancel", t["task_id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(b["code"], "Canceled");
}

// ---- a full destination ----

/// A tmpfs of `mib` MiB mounted on a new folder (unmounted on drop). The tests run as root, as CI does.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn new(mib: u32) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let st = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("mount runs");
        assert!(
            st.success(),
            "mounting a small tmpfs failed: the out-of-space tests need root (CI runs as root)"
        );
        Self { dir }
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}

/// Real names in a folder: complete copies of the source's files, or absent; and no temporary files left.
fn nothing_half_written(src: &Path, dst: &Path) {
    for e in std::fs::read_dir(dst).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().into_string().unwrap();
        assert!(
            !name.ends_with(".ferry-part"),
            "temporary file left: {name}"
        );
        if e.file_type().unwrap().is_file() && src.join(&name).exists() {
            assert!(
                std::fs::read(e.path()).unwrap() == std::fs::read(src.join(&name)).unwrap(),
                "{name} is half-written"
            );
        }
    }
}

#[tokio::test]
async fn a_full_destination_fails_or_waits_as_fail_on_quota_errors_asks_and_leaves_nothing_half_written()
 {
    let w = world().await;
    let disk = SmallDisk::new(8);
    let a = api(&w.s, &w.admin).await;
    let gw = a
        .ok(
            M::POST,
            "/api/storage_gateways",
            Some(
                json!({"DATA_TYPE": "storage_gateway#1.2.0", "display_name": "small disk",
                "connector_id": "145812c8-decc-41f1-83cf-bb2a85a2a70b",
                "root_path": disk.path().to_str().unwrap(),
                "restrict_paths": {"DATA_TYPE": "path_restrictions#1.0.0", "read_write": ["/"]}}),
            ),
        )
        .await;
    let g = Uuid::parse_str(gw["id"].as_str().unwrap()).unwrap();
    let small = mapped(&a, g, json!({})).await;
    std::fs::create_dir_all(w.root.join("src")).unwrap();
    for (name, mib) in [("a.bin", 3), ("b.bin", 3), ("c.bin", 5)] {
        let data: Vec<u8> = (0..mib * 1024 * 1024u32).map(|i| (i % 253) as u8).collect();
        std::fs::write(w.root.join("src").join(name), data).unwrap();
    }
    let doc = |extra: Value| {
        let mut d = json!({"DATA_TYPE": "transfer", "source_endpoint": w.coll, "destination_endpoint": small,
            "DATA": [item("/src", "/in", true)], "perf_cc": 1});
        if let (Some(d), Value::Object(e)) = (d.as_object_mut(), extra) {
            d.extend(e);
        }
        d
    };
    // 11 MiB into 8: with fail_on_quota_errors the task fails at once.
    let (st, r) = w.submit(doc(json!({"fail_on_quota_errors": true}))).await;
    assert_eq!(st, 202, "{r}");
    let t = w.wait(r["task_id"].as_str().unwrap()).await;
    assert_eq!(t["status"], "FAILED", "{t}");
    assert_eq!(t["fatal_error"]["code"], "QUOTA_EXCEEDED", "{t}");
    nothing_half_written(&w.root.join("src"), &disk.path().join("in"));

    // Without it the task waits, INACTIVE, and goes on by itself once there is room.
    std::fs::remove_dir_all(disk.path().join("in")).unwrap();
    let (st, r) = w.submit(doc(json!({}))).await;
    assert_eq!(st, 202, "{r}");
    let id = r["task_id"].as_str().unwrap().to_string();
    let t = w.wait(&id).await;
    assert_eq!(t["status"], "INACTIVE", "{t}");
    assert_eq!(t["nice_status"], "QUOTA_EXCEEDED", "{t}");
    nothing_half_written(&w.root.join("src"), &disk.path().join("in"));
    // Room is made (a bigger disk under the same folder is not possible; the 5 MiB file moves away instead).
    std::fs::rename(w.root.join("src/c.bin"), w.root.join("c.bin")).unwrap();
    std::fs::write(w.root.join("src/c.bin"), b"small now").unwrap();
    let start = Instant::now();
    let t = loop {
        let (_, t) = w.t(M::GET, &format!("/task/{id}"), None).await;
        if t["status"] == "SUCCEEDED" || t["status"] == "FAILED" {
            break t;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "did not resume: {t}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(t["status"], "SUCCEEDED", "{t}");
    same_tree(&w.root.join("src"), &disk.path().join("in"));
}

// ---- kill -9 ----

/// Not a test of its own: the server process the crash tests start and kill. It serves only when
/// FERRY_CHILD_DATA names a data directory (and returns at once otherwise).
#[test]
fn crash_child_server_process() {
    let Ok(data) = std::env::var("FERRY_CHILD_DATA") else {
        return;
    };
    let data = PathBuf::from(data);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut cfg = ferry_tests::ferry_server::Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: data.clone(),
            storage_root: Some(data.join("storage")),
            ..Default::default()
        };
        cfg.transfer.retry_base_ms = 50;
        cfg.transfer.inactive_retry_secs = 1;
        let running = ferry_tests::ferry_server::start(cfg).await.unwrap();
        std::fs::write(data.join("child-url.tmp"), &running.base_url).unwrap();
        std::fs::rename(data.join("child-url.tmp"), data.join("child-url")).unwrap();
        running.wait().await;
    });
}

struct Child {
    proc: std::process::Child,
    url: String,
}

fn start_child(data: &Path) -> Child {
    let _ = std::fs::remove_file(data.join("child-url"));
    let proc = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "transfer::crash_child_server_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("FERRY_CHILD_DATA", data)
        .env("FERRY_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Owned by a Child at once, so that a failed wait below still kills and reaps it.
    let mut child = Child {
        proc,
        url: String::new(),
    };
    let start = Instant::now();
    loop {
        if let Ok(url) = std::fs::read_to_string(data.join("child-url")) {
            child.url = url;
            return child;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the child server did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Child {
    /// SIGKILL (see Drop).
    fn kill9(self) {
        drop(self);
    }
}

impl Drop for Child {
    /// SIGKILL, also when a test fails half-way: no server outlives its test.
    fn drop(&mut self) {
        let _ = self.proc.kill();
        let _ = self.proc.wait();
    }
}

async fn child_call(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    m: M,
    path: &str,
    body: Option<&Value>,
) -> Value {
    let mut rb = http.request(m, format!("{url}{path}")).bearer_auth(token);
    if let Some(b) = body {
        rb = rb.json(b);
    }
    let r = rb.send().await.unwrap();
    let st = r.status();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    assert!(st.is_success(), "{path}: {st} {v}");
    v
}

/// A Transfer token of the administrator's client of a child server.
async fn child_token(http: &reqwest::Client, url: &str, data: &Path) -> String {
    let creds: Value = serde_json::from_str(
        &std::fs::read_to_string(data.join("admin-credentials.json")).unwrap(),
    )
    .unwrap();
    let r: Value = http
        .post(format!("{url}/v2/oauth2/token"))
        .basic_auth(
            creds["client_id"].as_str().unwrap(),
            creds["client_secret"].as_str(),
        )
        .form(&[("grant_type", "client_credentials"), ("scope", TRANSFER)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["access_token"].as_str().expect("a token").to_string()
}

/// Submits a transfer of `/src` to `/dst` of the default collection, kills the server with SIGKILL five times
/// while it runs (each time once it has made some progress since the last restart), and checks that the task
/// still ends SUCCEEDED with every copy equal to its source, and that no real name ever held a partial copy.
async fn survive_kills(data: &Path, progress_key: &str, step: u64) {
    let http = reqwest::Client::new();
    let storage = data.join("storage");
    let mut child = start_child(data);
    let token = child_token(&http, &child.url, data).await;
    let found = child_call(&http, &child.url, &token, M::GET,
        "/v0.10/endpoint_search?filter_scope=administered-by-me&filter_entity_type=GCSv5_mapped_collection", None).await;
    let coll = found["DATA"][0]["id"]
        .as_str()
        .expect("the default collection")
        .to_string();
    let doc = json!({"DATA_TYPE": "transfer", "source_endpoint": coll, "destination_endpoint": coll,
        "DATA": [item("/src", "/dst", true)], "verify_checksum": true});
    let r = child_call(
        &http,
        &child.url,
        &token,
        M::POST,
        "/v0.10/transfer",
        Some(&doc),
    )
    .await;
    let id = r["task_id"].as_str().unwrap().to_string();
    let mut seen = 0u64;
    for kill in 0..5 {
        // Wait for progress beyond what the last run reached, then a little more, then SIGKILL.
        let start = Instant::now();
        loop {
            let t = child_call(
                &http,
                &child.url,
                &token,
                M::GET,
                &format!("/v0.10/task/{id}"),
                None,
            )
            .await;
            assert_ne!(t["status"], "FAILED", "{t}");
            assert_ne!(
                t["status"], "SUCCEEDED",
                "kill {kill}: the task finished too soon to be killed 5 times"
            );
            let now = t[progress_key].as_u64().unwrap_or(0);
            if now >= seen + step {
                seen = now;
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "no progress: {t}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(37 * (kill + 1))).await;
        child.kill9();
        // Whatever has a real name is a complete copy.
        check_real_names(&storage.join("src"), &storage.join("dst"));
        child = start_child(data);
    }
    let token = child_token(&http, &child.url, data).await;
    let start = Instant::now();
    let t = loop {
        let t = child_call(
            &http,
            &child.url,
            &token,
            M::GET,
            &format!("/v0.10/task/{id}"),
            None,
        )
        .await;
        if t["status"] != "ACTIVE" {
            break t;
        }
        assert!(start.elapsed() < Duration::from_secs(300), "{t}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    child.kill9();
    assert_eq!(t["status"], "SUCCEEDED", "{t}");
    same_tree(&storage.join("src"), &storage.join("dst"));
}

/// Every file under `dst` that has a real name equals its source.
fn check_real_names(src: &Path, dst: &Path) {
    if !dst.exists() {
        return;
    }
    for e in std::fs::read_dir(dst).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        if e.file_type().unwrap().is_dir() {
            check_real_names(&src.join(&name), &e.path());
        } else if !name.to_string_lossy().ends_with(".ferry-part") {
            let (a, b) = (
                std::fs::read(src.join(&name)).unwrap(),
                std::fs::read(e.path()).unwrap(),
            );
            assert!(
                a == b,
                "{} has a real name but is not a complete copy",
                e.path().display()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_many_file_transfer_survives_five_kill_9s() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let src = data.join("storage/src");
    for d in 0..100 {
        std::fs::create_dir_all(src.join(format!("d{d:03}"))).unwrap();
        for f in 0..150 {
            let body: Vec<u8> = (0..4096 + f).map(|i| (i + d * 7 + f) as u8).collect();
            std::fs::write(src.join(format!("d{d:03}/f{f:03}")), body).unwrap();
        }
    }
    survive_kills(&data, "files_transferred", 500).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_gib_transfer_survives_five_kill_9s() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let src = data.join("storage/src");
    std::fs::create_dir_all(&src).unwrap();
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(src.join("one.gib")).unwrap());
        let mut block = vec![0u8; 1 << 20];
        for i in 0..1024u32 {
            for (j, b) in block.iter_mut().enumerate() {
                *b = (j as u32 ^ i.wrapping_mul(2654435761)) as u8;
            }
            f.write_all(&block).unwrap();
        }
    }
    survive_kills(&data, "bytes_transferred", 64 << 20).await;
}

// ---- webhooks ----

/// A webhook receiver on 127.0.0.1: answers 500 to the first request and 200 after, keeping every request's
/// headers and body.
async fn receiver() -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        for _ in 0..20 {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let (head, body) = loop {
                let n = sock.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    break (String::new(), String::new());
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some((h, b)) = text.split_once("\r\n\r\n") {
                    let len = h
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if b.len() >= len {
                        break (h.to_string(), b[..len].to_string());
                    }
                }
            };
            let first = log.lock().unwrap().is_empty();
            log.lock().unwrap().push((head, body));
            let status = if first {
                "500 Internal Server Error"
            } else {
                "200 OK"
            };
            let _ = sock
                .write_all(
                    format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                        .as_bytes(),
                )
                .await;
        }
    });
    (url, seen)
}

#[tokio::test]
async fn webhooks_get_signed_events_retried_until_delivered_and_private_targets_are_refused() {
    use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents};
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    // By default a webhook may not point inside the server's own network.
    let strict = world().await;
    let (st, b) = strict
        .t(
            M::POST,
            "/webhook",
            Some(json!({"url": "http://127.0.0.1:9/hook"})),
        )
        .await;
    assert_eq!(
        (st, b["code"].as_str()),
        (400, Some("ClientError.BadRequest")),
        "{b}"
    );
    assert!(b["message"].as_str().unwrap().contains("private"), "{b}");
    let (st, b) = strict
        .t(
            M::POST,
            "/webhook",
            Some(json!({"url": "ftp://example.org/x"})),
        )
        .await;
    assert_eq!(st, 400, "{b}");
    // Every spelling of an inward address: IPv4 in other notations, IPv4 inside IPv6 (mapped, compatible,
    // NAT64, 6to4), site-local, "this network", benchmarking, multicast, reserved, and names for this host.
    for url in [
        "http://2130706433/",
        "http://0x7f.1/",
        "http://0177.0.0.1/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::127.0.0.1]/",
        "http://[64:ff9b::7f00:1]/",
        "http://[2002:7f00:1::1]/",
        "http://[fec0::1]/",
        "http://0.0.0.0/",
        "http://0.1.2.3/",
        "http://192.0.0.170/",
        "http://198.18.0.1/",
        "http://224.0.0.1/",
        "http://240.0.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://localhost:9/",
        "http://localhost./",
    ] {
        let (st, b) = strict
            .t(M::POST, "/webhook", Some(json!({"url": url})))
            .await;
        assert_eq!(st, 400, "{url} was accepted: {b}");
    }
    let (_, listed) = strict.t(M::GET, "/webhook_list", None).await;
    assert_eq!(listed["DATA"], json!([]), "nothing was stored");

    let w = world_with(|c| {
        c.transfer.retry_base_ms = 50;
        c.transfer.webhooks_allow_private = true;
    })
    .await;
    let (url, seen) = receiver().await;
    let (st, hook) = w.t(M::POST, "/webhook", Some(json!({"url": url}))).await;
    assert_eq!(st, 200, "{hook}");
    let (_, listed) = w.t(M::GET, "/webhook_list", None).await;
    assert_eq!(listed["DATA"][0]["url"], url);

    dataset(&w.root.join("src"), 3);
    let t = w
        .run(
            json!([item("/src", "/dst", true)]),
            json!({"label": "hooked"}),
        )
        .await;
    assert_eq!(t["status"], "SUCCEEDED");
    // The first attempt gets a 500; the event comes again (after 2 s) and is accepted.
    let start = Instant::now();
    while seen.lock().unwrap().len() < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no retry: {:?}",
            seen.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (head, body) = seen.lock().unwrap()[1].clone();
    assert_eq!(
        seen.lock().unwrap()[0].1,
        body,
        "the retry carries the same event"
    );
    let event: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(event["event"], "task.succeeded");
    assert_eq!(event["task_id"], t["task_id"]);
    assert_eq!(event["label"], "hooked");
    // The signature is a JWS of exactly the body, by the key the server publishes.
    let jws = head
        .lines()
        .find_map(|l| l.strip_prefix("ferry-signature: "))
        .expect("a Ferry-Signature header")
        .trim();
    let (input, sig) = jws.rsplit_once('.').unwrap();
    let payload = URL_SAFE_NO_PAD
        .decode(input.split_once('.').unwrap().1)
        .unwrap();
    assert_eq!(payload, body.as_bytes());
    let (_, jwks) = w.s.get("/jwk.json", "").await;
    let key = &jwks["keys"][0];
    let n = URL_SAFE_NO_PAD.decode(key["n"].as_str().unwrap()).unwrap();
    let e = URL_SAFE_NO_PAD.decode(key["e"].as_str().unwrap()).unwrap();
    let public = RsaPublicKeyComponents { n: &n, e: &e };
    public
        .verify(
            &RSA_PKCS1_2048_8192_SHA256,
            input.as_bytes(),
            &URL_SAFE_NO_PAD.decode(sig).unwrap(),
        )
        .expect("the signature verifies");
    let mut tampered = input.to_string();
    tampered.push('x');
    assert!(
        public
            .verify(
                &RSA_PKCS1_2048_8192_SHA256,
                tampered.as_bytes(),
                &URL_SAFE_NO_PAD.decode(sig).unwrap()
            )
            .is_err()
    );

    // Removed, it is called no more.
    let id = hook["id"].as_str().unwrap();
    let (st, _) = w.t(M::DELETE, &format!("/webhook/{id}"), None).await;
    assert_eq!(st, 200);
    let before = seen.lock().unwrap().len();
    w.run(json!([item("/src", "/dst2", true)]), json!({})).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(seen.lock().unwrap().len(), before);
}
