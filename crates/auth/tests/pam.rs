//! Site accounts through the host's real PAM stack (Debian's common-auth and common-account through
//! /etc/pam.d/ferry): a Unix account made here with `useradd` and `chpasswd`, checked with the right and a wrong
//! password, unknown, locked and expired. Needs root (to make accounts, and for pam_unix to read
//! /etc/shadow); skipped, saying why, otherwise.

use std::process::Command;
use std::time::{Duration, Instant};

use ferry_auth::pam::{self, PamRefusal};

const SERVICE: &str = "ferry";
const PASSWORD: &str = "Site-Account pass 7391";

fn root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn tool(name: &str) -> bool {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .any(|d| std::path::Path::new(d).join(name).exists())
}

/// Runs an account tool; tries again while another process holds the passwd or shadow lock (other tests may
/// make accounts at the same time).
fn run(cmd: &str, args: &[&str], stdin: Option<&str>) {
    use std::io::Write;
    for attempt in 0.. {
        let mut child = Command::new(cmd)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{cmd}: {e}"));
        let mut input = child.stdin.take().unwrap();
        if let Some(t) = stdin {
            input.write_all(t.as_bytes()).unwrap();
        }
        drop(input);
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            return;
        }
        assert!(
            attempt < 20 && stderr.contains("lock"),
            "{cmd} {args:?}: {stderr}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A throwaway Unix account, deleted when dropped (a failing assertion included); the PAM service file is
/// removed too if this test wrote it.
struct TempUser {
    name: String,
    wrote_service: bool,
}

impl TempUser {
    fn create() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!("ferrypam{:08x}", nanos ^ std::process::id().rotate_left(16));
        let wrote_service = pam::ensure_service_file(SERVICE).expect("the PAM service file");
        let user = Self {
            name,
            wrote_service,
        };
        run(
            "useradd",
            &[
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                "--comment",
                "Ferry PAM test",
                &user.name,
            ],
            None,
        );
        run(
            "chpasswd",
            &[],
            Some(&format!("{}:{PASSWORD}\n", user.name)),
        );
        user
    }
}

impl Drop for TempUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.name).output();
        if self.wrote_service {
            let _ = std::fs::remove_file(format!("/etc/pam.d/{SERVICE}"));
        }
    }
}

/// Runs a check and times it.
fn timed(user: &str, password: &str) -> (Result<(), PamRefusal>, Duration) {
    let t = Instant::now();
    let r = pam::check(SERVICE, user, password);
    (r, t.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_account_signs_in_through_pam_and_refusals_are_told_apart() {
    if !root() {
        eprintln!(
            "skipped: needs root (to create a Unix account, and for pam_unix to read /etc/shadow)"
        );
        return;
    }
    for t in ["useradd", "chpasswd", "usermod", "chage", "userdel"] {
        if !tool(t) {
            eprintln!("skipped: {t} is not installed");
            return;
        }
    }
    let user = TempUser::create();
    let name = user.name.clone();

    let (ok, right) = timed(&name, PASSWORD);
    assert_eq!(ok, Ok(()));
    // The async form, as the login page calls it (the blocking pool, a permit).
    assert_eq!(pam::authenticate(SERVICE, &name, PASSWORD).await, Ok(()));

    // A wrong password and an unknown account look the same; each waits out pam_unix's fail delay, so the
    // two run side by side.
    let (wrong, unknown) = {
        let n = name.clone();
        let a = std::thread::spawn(move || timed(&n, "not the password"));
        let b = std::thread::spawn(|| timed("ferrypam-nobody-here", PASSWORD));
        (a.join().unwrap(), b.join().unwrap())
    };
    assert_eq!(wrong.0, Err(PamRefusal::WrongCredentials));
    assert_eq!(unknown.0, Err(PamRefusal::WrongCredentials));
    assert_eq!(
        wrong.0.as_ref().unwrap_err().to_string(),
        "the username or password is incorrect"
    );

    // Locked (`usermod -L`): the right password is refused.
    run("usermod", &["-L", &name], None);
    let (locked, locked_time) = timed(&name, PASSWORD);
    assert_eq!(locked, Err(PamRefusal::WrongCredentials));
    run("usermod", &["-U", &name], None);
    assert_eq!(pam::check(SERVICE, &name, PASSWORD), Ok(()));

    // Expired (`chage -E 0`): the password is right, the account is refused, with PAM's reason for the log.
    run("chage", &["-E", "0", &name], None);
    let (expired, expired_time) = timed(&name, PASSWORD);
    match &expired {
        Err(r @ PamRefusal::AccountUnusable(reason)) => {
            assert!(reason.to_lowercase().contains("expired"), "{reason}");
            assert_eq!(
                r.to_string(),
                "this account cannot sign in now; ask the facility's administrators"
            );
        }
        other => panic!("expected AccountUnusable, got {other:?}"),
    }

    // An unknown service falls back to /etc/pam.d/other on Debian; a name that is not one is refused first.
    assert!(matches!(
        pam::check("../shadow", &name, PASSWORD),
        Err(PamRefusal::Unavailable(m)) if m.contains("service name")
    ));

    // Not root: pam_unix cannot read /etc/shadow, so a local account's password cannot be checked at all
    // (right or wrong alike); that is reported as such, while a name that is no local account stays a plain
    // refusal. Each runs in this test binary re-run as `nobody`.
    run("chage", &["-E", "-1", &name], None);
    let as_nobody = |who: String, password: &'static str| {
        std::thread::spawn(move || {
            let t = Instant::now();
            let outcome = check_as_nobody(&who, password);
            (outcome, t.elapsed())
        })
    };
    let right_nobody = as_nobody(name.clone(), PASSWORD);
    let unknown_nobody = as_nobody("ferrypam-nobody-here".into(), PASSWORD);
    let (right_nobody, right_nobody_time) = right_nobody.join().unwrap();
    let (unknown_nobody, unknown_nobody_time) = unknown_nobody.join().unwrap();
    assert!(
        right_nobody.starts_with("Err(Unavailable(") && right_nobody.contains("only root may read"),
        "{right_nobody}"
    );
    assert_eq!(unknown_nobody, "Err(WrongCredentials)");

    eprintln!(
        "PAM timings: right password {right:?}; wrong password {:?}; unknown account {:?}; locked {locked_time:?}; \
         expired {expired_time:?}; as nobody: local account {right_nobody_time:?}, unknown {unknown_nobody_time:?}",
        wrong.1, unknown.1
    );
    // Successes are quick; refused passwords wait out the fail delay (which is the point of it).
    assert!(right < Duration::from_secs(1), "{right:?}");
    drop(user);
    assert!(
        !std::fs::read_to_string("/etc/passwd")
            .unwrap()
            .contains(&format!("{name}:")),
        "the account is gone"
    );
}

const CHILD: &str = "PAM_TEST_CHECK_AS_CALLER";

/// `pam::check` in this test binary re-run as `nobody`: the outcome's Debug text.
fn check_as_nobody(user: &str, password: &str) -> String {
    use std::os::unix::process::CommandExt;
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "check_as_the_caller",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, format!("{user}:{password}"))
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        // libtest may print "test check_as_the_caller ... " on the same line first.
        .find_map(|l| {
            l.split_once("OUTCOME ")
                .map(|(_, outcome)| outcome.trim_end())
        })
        .unwrap_or_else(|| {
            panic!(
                "no outcome from the child: {stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
        .to_string()
}

/// The child side of [`check_as_nobody`]; does nothing in a normal run.
#[test]
fn check_as_the_caller() {
    let Ok(spec) = std::env::var(CHILD) else {
        return;
    };
    let (user, password) = spec.split_once(':').unwrap();
    println!("OUTCOME {:?}", pam::check(SERVICE, user, password));
}
