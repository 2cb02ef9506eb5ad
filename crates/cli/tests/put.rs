//! `ferry put` as a person runs it, against a real server in this process on 127.0.0.1: a file sent in checked
//! tus chunks arrives equal; a put killed mid-way is resumed by the next run, which sends only the rest; a file
//! changed since, an upload the server forgot, or `--no-resume` start over and say so; a path outside the
//! caller's rights is refused with the collection path named and nothing left behind.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use ferry_tests::endpoint::{api, gateway, mapped};
use ferry_tests::{App, TestServer, names, random};
use serde_json::{Value, json};
use uuid::Uuid;

/// The server's idle limit for an upload (`ferry_endpoint::UPLOAD_IDLE_SECS`): moved past on its clock.
const IDLE: i64 = ferry_endpoint::UPLOAD_IDLE_SECS;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A server, a gateway over a temporary folder (`root`) writable within `rw`, a mapped collection on it, and the
/// administrator's client as the CLI's credentials, with its own config folder.
struct Setup {
    s: TestServer,
    coll: Uuid,
    admin: App,
    root: PathBuf,
    home: tempfile::TempDir,
    _storage: tempfile::TempDir,
}

impl Setup {
    async fn new(rw: &str) -> Setup {
        let s = TestServer::start().await;
        let admin = s.admin_app();
        let a = api(&s, &admin).await;
        let (g, storage) = gateway(&a, json!({"read_write": [rw]}), json!({})).await;
        let coll = mapped(&a, g, json!({})).await;
        Setup {
            root: storage.path().to_path_buf(),
            s,
            coll,
            admin,
            home: tempfile::tempdir().unwrap(),
            _storage: storage,
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_ferry"));
        // Ferry reads FERRY_* variables as configuration: none of the caller's leak in.
        for (k, _) in std::env::vars() {
            if k.starts_with("FERRY_") {
                c.env_remove(k);
            }
        }
        c.env("HOME", self.home.path())
            .env("XDG_CONFIG_HOME", self.home.path().join("config"))
            .args(args)
            .args(["--url", &self.s.url, "--client-id", &self.admin.id])
            .arg("--client-secret")
            .arg(self.admin.secret.as_deref().unwrap())
            .arg("--data-dir")
            .arg(self.home.path().join("no-data"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    /// Runs `ferry ARGS` to its end, off the runtime that serves it.
    async fn ferry(&self, args: &[&str]) -> Output {
        let mut c = self.command(args);
        tokio::task::spawn_blocking(move || c.output().unwrap())
            .await
            .unwrap()
    }

    /// A local file of `len` random bytes, and them; the collection's folder `/in` to put it in.
    fn local_file(&self, name: &str, len: usize) -> (PathBuf, Vec<u8>) {
        std::fs::create_dir_all(self.root.join("in")).unwrap();
        let local = self.home.path().join(name);
        let data = random(len);
        std::fs::write(&local, &data).unwrap();
        (local, data)
    }

    fn dest(&self, path: &str) -> String {
        format!("{}:{path}", self.coll)
    }

    /// The state files of unfinished uploads.
    fn states(&self) -> Vec<PathBuf> {
        match std::fs::read_dir(self.home.path().join("config/ferry/uploads")) {
            Ok(d) => d.map(|e| e.unwrap().path()).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// The upload URL the one state file records.
    fn recorded_url(&self) -> Option<String> {
        let states = self.states();
        let [one] = states.as_slice() else {
            return None;
        };
        let v: Value = serde_json::from_slice(&std::fs::read(one).ok()?).ok()?;
        v["url"].as_str().map(str::to_string)
    }

    /// `HEAD` of an upload: status and `Upload-Offset`.
    async fn offset(&self, url: &str) -> (u16, Option<u64>) {
        let token = self
            .s
            .access_token(
                &self.admin,
                &format!("https://auth.globus.org/scopes/{}/https", self.coll),
            )
            .await;
        let r = self
            .s
            .http
            .head(url)
            .bearer_auth(token)
            .header("tus-resumable", "1.0.0")
            .send()
            .await
            .unwrap();
        let offset = r
            .headers()
            .get("upload-offset")
            .and_then(|v| v.to_str().ok()?.parse().ok());
        (r.status().as_u16(), offset)
    }

    /// Starts `ferry put LOCAL DEST` at 1 MiB/s (1 MiB chunks); the child, and the upload's URL once the server
    /// holds part of the file.
    async fn put_under_way(&self, local: &Path, dest: &str) -> (Child, String) {
        let local = local.to_str().unwrap();
        let mut child: Child = self
            .command(&["put", local, dest, "--limit-rate", "1M"])
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        let url = loop {
            assert!(
                Instant::now() < deadline,
                "no bytes arrived within a minute"
            );
            if let Some(url) = self.recorded_url()
                && let (200, Some(n)) = self.offset(&url).await
                && n > 0
            {
                break url;
            }
            assert!(
                child.try_wait().unwrap().is_none(),
                "ferry put ended before it could be interrupted"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        (child, url)
    }

    /// Starts `ferry put LOCAL DEST` at 1 MiB/s (1 MiB chunks) and kills it once the server holds part of the
    /// file; the upload's URL and the offset the server reports after the kill.
    async fn interrupted_put(&self, local: &Path, dest: &str) -> (String, u64) {
        self.interrupted_put_by(local, dest, libc::SIGKILL).await.0
    }

    /// [`Self::interrupted_put`] with this signal; also what the command printed.
    async fn interrupted_put_by(
        &self,
        local: &Path,
        dest: &str,
        signal: libc::c_int,
    ) -> ((String, u64), Output) {
        let (child, url) = self.put_under_way(local, dest).await;
        let pid = libc::pid_t::try_from(child.id()).unwrap();
        // SAFETY: signals our own child, which has not been waited for (its pid is not reused).
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
        let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
            .await
            .unwrap();
        assert!(
            !text(&out.stderr).contains("panicked"),
            "{}",
            text(&out.stderr)
        );
        let (status, offset) = self.offset(&url).await;
        assert_eq!(status, 200);
        ((url, offset.unwrap()), out)
    }
}

/// The put succeeded after saying why it started over (`why`), and sent the whole file anew.
fn started_over(out: &Output, why: &str) {
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains(why), "{stderr}");
    assert!(!stdout.contains("resumed"), "{stdout}");
}

fn hash_of(p: &Path) -> blake3::Hash {
    blake3::hash(&std::fs::read(p).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_put_in_chunks_arrives_equal() {
    let t = Setup::new("/").await;
    let (local, data) = t.local_file("data.bin", 3 * 1024 * 1024 + 5);

    let out = t
        .ferry(&["put", local.to_str().unwrap(), &t.dest("/in/")])
        .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(&format!("({} bytes)", data.len())),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(hash_of(&t.root.join("in/data.bin")), blake3::hash(&data));
    assert_eq!(names(&t.root.join("in")), ["data.bin"]);
    assert!(t.states().is_empty(), "a finished upload leaves no state");

    // An empty file, and JSON for programs.
    let empty = t.home.path().join("empty");
    std::fs::write(&empty, b"").unwrap();
    let out = t
        .ferry(&[
            "put",
            empty.to_str().unwrap(),
            &t.dest("/in/"),
            "--format",
            "json",
        ])
        .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (doc["size"].as_u64(), doc["sent"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(std::fs::read(t.root.join("in/empty")).unwrap(), b"");

    let help = t.ferry(&["put", "--help"]).await;
    let help = text(&help.stdout);
    assert!(
        help.contains("--no-resume") && help.contains("--limit-rate"),
        "{help}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_put_resumes_where_the_server_stands() {
    let t = Setup::new("/").await;
    let (local, data) = t.local_file("big.bin", 5 * 1024 * 1024 + 123);
    let dest = t.dest("/in/big.bin");

    // Ctrl-C: the command says how to go on, and ends as interrupted commands do (130).
    let ((url, before), out) = t.interrupted_put_by(&local, &dest, libc::SIGINT).await;
    assert_eq!(out.status.code(), Some(130), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("run the same command again to resume"),
        "{}",
        text(&out.stderr)
    );
    assert!(before > 0 && before < data.len() as u64, "{before}");
    assert_eq!(before % (1 << 20), 0, "whole checked chunks only: {before}");
    // Nothing under the real name, only the hidden temporary file.
    assert!(!t.root.join("in/big.bin").exists());
    assert_eq!(names(&t.root.join("in")).len(), 1);
    let state = &t.states()[0];
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(state).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let out = t.ferry(&["put", local.to_str().unwrap(), &dest]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rest = data.len() as u64 - before;
    assert!(
        text(&out.stderr).contains(&format!("at byte {before} of {}", data.len())),
        "{}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains(&format!("resumed at byte {before}, {rest} sent now")),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(hash_of(&t.root.join("in/big.bin")), blake3::hash(&data));
    assert_eq!(names(&t.root.join("in")), ["big.bin"]);
    assert!(t.states().is_empty());
    assert_eq!(t.offset(&url).await.0, 404, "the upload is over");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_file_a_forgotten_upload_and_no_resume_start_over() {
    let t = Setup::new("/").await;
    let local = t.home.path().join("c.bin");
    let dest = t.dest("/c.bin");
    let args = ["put", local.to_str().unwrap(), &dest];
    let put = || t.ferry(&args);

    // Changed since the interruption: started over, and the old upload cancelled.
    std::fs::write(&local, random(3 << 20)).unwrap();
    let (url, _) = t.interrupted_put(&local, &dest).await;
    let changed = random((3 << 20) + 1);
    std::fs::write(&local, &changed).unwrap();
    started_over(&put().await, "changed since its upload");
    assert_eq!(hash_of(&t.root.join("c.bin")), blake3::hash(&changed));
    assert_eq!(t.offset(&url).await.0, 404, "the old upload was cancelled");

    // Changed while under way: the upload stops before the next chunk, and nothing takes the name.
    let (child, url) = t.put_under_way(&local, &dest).await;
    let mid = random((3 << 20) + 2);
    std::fs::write(&local, &mid).unwrap();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("changed while it was uploaded"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(hash_of(&t.root.join("c.bin")), blake3::hash(&changed));
    let (status, offset) = t.offset(&url).await;
    assert!(
        status == 200 && offset < Some(mid.len() as u64),
        "{offset:?}"
    );
    started_over(&put().await, "changed since its upload");
    assert_eq!(hash_of(&t.root.join("c.bin")), blake3::hash(&mid));
    let changed = mid;

    // Forgotten by the server (idle past its limit and swept): started over.
    let (_, _) = t.interrupted_put(&local, &dest).await;
    t.s.advance(IDLE + 1);
    assert_eq!(t.s.running.endpoint.sweep_uploads().await.unwrap(), 1);
    started_over(&put().await, "no longer knows");
    assert_eq!(hash_of(&t.root.join("c.bin")), blake3::hash(&changed));

    // Asked to.
    let (url, _) = t.interrupted_put(&local, &dest).await;
    let out = t
        .ferry(&["put", local.to_str().unwrap(), &dest, "--no-resume"])
        .await;
    started_over(&out, "--no-resume");
    assert_eq!(t.offset(&url).await.0, 404);
    assert_eq!(hash_of(&t.root.join("c.bin")), blake3::hash(&changed));
    assert_eq!(names(&t.root), ["c.bin"]);
    assert!(t.states().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_outside_the_rights_is_refused_and_leaves_nothing() {
    let t = Setup::new("/open").await;
    std::fs::create_dir(t.root.join("open")).unwrap();
    let local = t.home.path().join("x.bin");
    std::fs::write(&local, random(100_000)).unwrap();

    let dest = t.dest("/closed.bin");
    let out = t.ferry(&["put", local.to_str().unwrap(), &dest]).await;
    let err = text(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains(&dest) && err.contains("403"), "{err}");
    assert!(
        !err.contains(t.root.to_str().unwrap()),
        "no host path: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(names(&t.root), ["open"]);
    assert!(t.states().is_empty());

    // Within them, it goes.
    let out = t
        .ferry(&["put", local.to_str().unwrap(), &t.dest("/open/")])
        .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(names(&t.root.join("open")), ["x.bin"]);
}

/// A relay to the server on 127.0.0.1 that cuts the first connection carrying more than `cut` bytes to the
/// server, as a dropped network would (the following ones pass); its URL.
async fn cutting_relay(server: &str, cut: usize) -> String {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let upstream: std::net::SocketAddr = server.strip_prefix("http://").unwrap().parse().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let armed = Arc::new(AtomicBool::new(true));
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let armed = armed.clone();
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                    return;
                };
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let back = tokio::spawn(async move { tokio::io::copy(&mut sr, &mut cw).await });
                let mut buf = vec![0u8; 64 * 1024];
                let mut carried = 0;
                while let Ok(n) = cr.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    carried += n;
                    if carried > cut && armed.swap(false, Ordering::SeqCst) {
                        // Both ways cut at once: the client's next write finds the connection gone.
                        back.abort();
                        return;
                    }
                    if sw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                let _ = sw.shutdown().await;
                let _ = back.await;
            });
        }
    });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_connection_is_reported_and_the_next_run_resumes() {
    let mut t = Setup::new("/").await;
    let (local, data) = t.local_file("cut.bin", 20 * 1024 * 1024 + 7);
    let dest = t.dest("/in/cut.bin");
    // The relay stands in for the server, for this client and the test: its URL is the one recorded.
    t.s.url = cutting_relay(&t.s.url, 12 * 1024 * 1024).await;

    let out = t.ferry(&["put", local.to_str().unwrap(), &dest]).await;
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "ended by a signal? {err}");
    assert!(
        err.contains("run the same command again to resume") && err.contains(&dest),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(!t.root.join("in/cut.bin").exists());
    // The first 8 MiB chunk arrived whole; none of the cut one was kept.
    let (status, before) = t.offset(&t.recorded_url().unwrap()).await;
    assert_eq!((status, before), (200, Some(8 << 20)));

    let out = t.ferry(&["put", local.to_str().unwrap(), &dest]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(&format!("resumed at byte {}", 8 << 20)),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(hash_of(&t.root.join("in/cut.bin")), blake3::hash(&data));
}
