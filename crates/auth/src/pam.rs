//! Site accounts: a facility's Unix or LDAP accounts, their password checked through the host's PAM stack.
//!
//! libpam is loaded when first needed (`dlopen("libpam.so.0")`): building Ferry needs no PAM headers, and a
//! host without PAM answers [`PamRefusal::Unavailable`] ("PAM is not available on this host: …") instead of
//! failing to link. A check runs the PAM service (default `ferry`, i.e. `/etc/pam.d/ferry`) as `login` does:
//! `pam_authenticate` for the password, then `pam_acct_mgmt` for expired, locked or otherwise refused accounts.
//!
//! It blocks: on a wrong password pam_unix makes libpam sleep about 2 s (its built-in delay, ±25%), and LDAP
//! modules wait on the network. [`authenticate`] runs it on the blocking pool, a few at once.
//!
//! Root: pam_unix reads `/etc/shadow`, which only root may read. Not as root it asks its helper `unix_chkpwd`,
//! which checks the caller's own password only, so every other local account fails exactly like a wrong
//! password. When Ferry is not root, cannot read `/etc/shadow`, and the refused name is an account of
//! `/etc/passwd` with its password in the shadow file, the refusal is reported as `Unavailable` with that
//! reason; accounts from elsewhere (LDAP through sssd) are checked normally.
//!
//! Secrets: the password is copied only into buffers PAM asks for (allocated with `malloc`, as PAM frees
//! them) and into the owned copy [`authenticate`] hands to the blocking thread; each is overwritten with
//! zeros when it is no longer needed. Nothing here logs a password.

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::panic::AssertUnwindSafe;
use std::sync::OnceLock;

/// Why a site account was not let in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PamRefusal {
    /// Wrong password or no such account: the person is told the same in both cases.
    #[error("the username or password is incorrect")]
    WrongCredentials,
    /// The password was right but the account may not sign in (expired, locked, password to be changed).
    /// The text is PAM's reason, for the log; the person sees only the message below.
    #[error("this account cannot sign in now; ask the facility's administrators")]
    AccountUnusable(String),
    /// PAM cannot check anything: no libpam, a misconfigured service, an unreachable account database.
    #[error("{0}")]
    Unavailable(String),
    /// The username or password can be no account's (the text names the rule); PAM was not asked.
    #[error("{0}")]
    InvalidInput(String),
}

impl PamRefusal {
    /// The whole story, for the server's log (never shown to the person).
    pub fn detail(&self) -> String {
        match self {
            PamRefusal::AccountUnusable(reason) => format!("account refused by PAM: {reason}"),
            other => other.to_string(),
        }
    }
}

impl From<PamRefusal> for crate::AuthError {
    fn from(r: PamRefusal) -> Self {
        use crate::AuthError;
        match r {
            PamRefusal::WrongCredentials => AuthError::LoginFailed,
            r @ PamRefusal::AccountUnusable(_) => AuthError::Forbidden(r.to_string()),
            // The detail names host configuration: it goes to the log ([`authenticate`]), not to the person.
            PamRefusal::Unavailable(_) => AuthError::Unavailable(
                "sign-in with site accounts is not available now; ask the facility's administrators"
                    .into(),
            ),
            PamRefusal::InvalidInput(m) => AuthError::InvalidRequest(m),
        }
    }
}

/// The PAM service used when the configuration names none.
pub const DEFAULT_SERVICE: &str = "ferry";

/// PAM checks running at once: each holds a blocking thread for seconds on a failure (the fail delay), so a
/// flood of wrong passwords queues here instead of taking the blocking pool from everything else.
pub const CONCURRENT_CHECKS: usize = 8;

const MAX_USERNAME: usize = 256;
const MAX_PASSWORD: usize = 4096;

/// What `/etc/pam.d/<service>` holds on Debian and Ubuntu: the host's usual password check and account
/// rules. (Red Hat family hosts use `auth include system-auth` / `account include system-auth` instead.)
pub fn service_file_text() -> &'static str {
    "# Ferry's sign-in with site accounts: the host's usual password check and account rules.\n\
     @include common-auth\n\
     @include common-account\n"
}

/// Writes `/etc/pam.d/<service>` with [`service_file_text`] when no such file exists; returns whether it
/// wrote one. An existing file is never touched (the administrator may have tailored it).
pub fn ensure_service_file(service: &str) -> Result<bool, String> {
    ensure_service_file_in(std::path::Path::new("/etc/pam.d"), service)
}

fn ensure_service_file_in(dir: &std::path::Path, service: &str) -> Result<bool, String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    valid_service(service)?;
    if !dir.is_dir() {
        return Err(format!(
            "{} does not exist: is PAM installed on this host?",
            dir.display()
        ));
    }
    let path = dir.join(service);
    // create_new: an existing file (or one made between a check and the write) is left alone.
    let mut file = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => return Err(format!("cannot create {}: {e}", path.display())),
    };
    file.write_all(service_file_text().as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(true)
}

/// A PAM service name is a file name under /etc/pam.d: `[a-z0-9_-]+`, nothing that could leave it.
fn valid_service(service: &str) -> Result<(), String> {
    let ok = !service.is_empty()
        && service.len() <= 64
        && service
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "the PAM service name {service:?} is not valid: use 1 to 64 of a-z, 0-9, '_' and '-'"
        ))
    }
}

/// Refuses names no account can have, and those that would mean something else to PAM modules or tools
/// (`-` starts an option; `/` and `:` are path and passwd-field separators).
fn valid_username(username: &str) -> Result<(), PamRefusal> {
    let bad = |why: &str| Err(PamRefusal::InvalidInput(format!("the username {why}")));
    if username.is_empty() {
        return bad("is empty");
    }
    if username.len() > MAX_USERNAME {
        return bad(&format!("is longer than {MAX_USERNAME} bytes"));
    }
    if username.contains('\0') {
        return bad("contains a NUL character");
    }
    if username.contains('/') {
        return bad("contains '/'");
    }
    if username.contains(':') {
        return bad("contains ':'");
    }
    if username
        .chars()
        .any(|c| c.is_whitespace() || c.is_control())
    {
        return bad("contains spaces or control characters");
    }
    if username.starts_with('-') {
        return bad("starts with '-'");
    }
    Ok(())
}

fn valid_password(password: &str) -> Result<(), PamRefusal> {
    let bad = |why: &str| Err(PamRefusal::InvalidInput(format!("the password {why}")));
    // pam_unix's `nullok` (Debian's default) lets an account with an empty password in with an empty one; a
    // web sign-in never should.
    if password.is_empty() {
        return bad("is empty");
    }
    if password.len() > MAX_PASSWORD {
        return bad(&format!("is longer than {MAX_PASSWORD} bytes"));
    }
    if password.contains('\0') {
        return bad("contains a NUL character");
    }
    Ok(())
}

// ---- libpam's ABI (Linux-PAM, security/_pam_types.h and pam_appl.h) ----

const PAM_SUCCESS: c_int = 0;
const PAM_SERVICE_ERR: c_int = 3;
const PAM_SYSTEM_ERR: c_int = 4;
const PAM_BUF_ERR: c_int = 5;
const PAM_PERM_DENIED: c_int = 6;
const PAM_AUTH_ERR: c_int = 7;
const PAM_CRED_INSUFFICIENT: c_int = 8;
const PAM_AUTHINFO_UNAVAIL: c_int = 9;
const PAM_USER_UNKNOWN: c_int = 10;
const PAM_MAXTRIES: c_int = 11;
const PAM_NEW_AUTHTOK_REQD: c_int = 12;
const PAM_ACCT_EXPIRED: c_int = 13;
const PAM_CONV_ERR: c_int = 19;
const PAM_AUTHTOK_EXPIRED: c_int = 27;

const PAM_PROMPT_ECHO_OFF: c_int = 1;
const PAM_PROMPT_ECHO_ON: c_int = 2;
const PAM_ERROR_MSG: c_int = 3;
const PAM_TEXT_INFO: c_int = 4;

const PAM_SILENT: c_int = 0x8000;
/// Refuse accounts whose password is empty, whatever `nullok` in the stack says.
const PAM_DISALLOW_NULL_AUTHTOK: c_int = 0x0001;
/// Linux-PAM never sends more messages at once than this (PAM_MAX_NUM_MSG).
const PAM_MAX_NUM_MSG: c_int = 32;

#[repr(C)]
struct PamMessage {
    msg_style: c_int,
    msg: *const c_char,
}

#[repr(C)]
struct PamResponse {
    resp: *mut c_char,
    resp_retcode: c_int,
}

type ConvFn = unsafe extern "C" fn(
    c_int,
    *const *const PamMessage,
    *mut *mut PamResponse,
    *mut c_void,
) -> c_int;

#[repr(C)]
struct PamConv {
    conv: Option<ConvFn>,
    appdata_ptr: *mut c_void,
}

type StartFn =
    unsafe extern "C" fn(*const c_char, *const c_char, *const PamConv, *mut *mut c_void) -> c_int;
type StepFn = unsafe extern "C" fn(*mut c_void, c_int) -> c_int;
type StrerrorFn = unsafe extern "C" fn(*mut c_void, c_int) -> *const c_char;

/// The entry points of the loaded libpam. The library is never unloaded.
struct Lib {
    start: StartFn,
    authenticate: StepFn,
    acct_mgmt: StepFn,
    end: StepFn,
    strerror: StrerrorFn,
}

fn lib() -> Result<&'static Lib, PamRefusal> {
    static LIB: OnceLock<Result<Lib, String>> = OnceLock::new();
    LIB.get_or_init(|| load(c"libpam.so.0"))
        .as_ref()
        .map_err(|e| PamRefusal::Unavailable(e.clone()))
}

/// The text of the last `dlerror`, or `fallback`.
fn dl_error(fallback: &str) -> String {
    // SAFETY: dlerror returns NULL or a NUL-terminated string valid until the next dl* call on this thread.
    let e = unsafe { libc::dlerror() };
    if e.is_null() {
        fallback.to_string()
    } else {
        // SAFETY: non-null, NUL-terminated (above).
        unsafe { CStr::from_ptr(e) }.to_string_lossy().into_owned()
    }
}

fn load(name: &CStr) -> Result<Lib, String> {
    let unavailable = |why: String| format!("PAM is not available on this host: {why}");
    // SAFETY: a NUL-terminated name; RTLD_NOW resolves everything here instead of failing later mid-call.
    let handle = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    if handle.is_null() {
        return Err(unavailable(dl_error(&format!(
            "cannot load {}",
            name.to_string_lossy()
        ))));
    }
    let symbol = |s: &CStr| -> Result<*mut c_void, String> {
        // SAFETY: a live handle and a NUL-terminated symbol name.
        let p = unsafe { libc::dlsym(handle, s.as_ptr()) };
        if p.is_null() {
            Err(unavailable(dl_error(&format!(
                "{} has no {}",
                name.to_string_lossy(),
                s.to_string_lossy()
            ))))
        } else {
            Ok(p)
        }
    };
    // SAFETY: each symbol is the libpam function of that name, whose C signature the type spells.
    unsafe {
        Ok(Lib {
            start: std::mem::transmute::<*mut c_void, StartFn>(symbol(c"pam_start")?),
            authenticate: std::mem::transmute::<*mut c_void, StepFn>(symbol(c"pam_authenticate")?),
            acct_mgmt: std::mem::transmute::<*mut c_void, StepFn>(symbol(c"pam_acct_mgmt")?),
            end: std::mem::transmute::<*mut c_void, StepFn>(symbol(c"pam_end")?),
            strerror: std::mem::transmute::<*mut c_void, StrerrorFn>(symbol(c"pam_strerror")?),
        })
    }
}

/// Overwrites memory with zeros in a way the optimiser keeps (the buffer is freed or dropped next).
fn wipe(bytes: &mut [u8]) {
    for b in bytes.iter_mut() {
        // SAFETY: a valid, aligned, exclusive reference.
        unsafe { std::ptr::write_volatile(b, 0) };
    }
    std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
}

/// What the conversation function answers with, and what modules said (their reasons, for the log).
struct Conversation<'a> {
    username: &'a [u8],
    password: &'a [u8],
    messages: Vec<String>,
}

/// A NUL-terminated copy in memory from `malloc`, which PAM frees (and Linux-PAM's modules overwrite first).
fn malloc_copy(bytes: &[u8]) -> *mut c_char {
    // SAFETY: malloc of len + 1 bytes, then exactly that many written.
    unsafe {
        let p = libc::malloc(bytes.len() + 1) as *mut u8;
        if !p.is_null() {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len());
            *p.add(bytes.len()) = 0;
        }
        p as *mut c_char
    }
}

/// Frees a reply array of `n` entries that PAM will not take, wiping each answer first.
///
/// # Safety
/// `replies` is from `calloc(n, …)`, each `resp` null or from [`malloc_copy`].
unsafe fn free_replies(replies: *mut PamResponse, n: usize) {
    for i in 0..n {
        // SAFETY: within the array (caller).
        let r = unsafe { &mut *replies.add(i) };
        if !r.resp.is_null() {
            // SAFETY: a NUL-terminated buffer we allocated.
            let len = unsafe { libc::strlen(r.resp) };
            wipe(unsafe { std::slice::from_raw_parts_mut(r.resp as *mut u8, len) });
            unsafe { libc::free(r.resp as *mut c_void) };
            r.resp = std::ptr::null_mut();
        }
    }
    unsafe { libc::free(replies as *mut c_void) };
}

/// The conversation function libpam calls: the password for hidden prompts, the username for visible ones,
/// error and information texts kept for the log. Anything else (a binary or radio prompt) ends the
/// conversation: Ferry cannot ask the person a second question here.
unsafe extern "C" fn converse(
    num_msg: c_int,
    msg: *const *const PamMessage,
    resp: *mut *mut PamResponse,
    appdata: *mut c_void,
) -> c_int {
    // A panic must not unwind into C.
    std::panic::catch_unwind(AssertUnwindSafe(|| unsafe {
        answer(num_msg, msg, resp, appdata)
    }))
    .unwrap_or(PAM_CONV_ERR)
}

/// # Safety
/// As PAM calls a conversation function (Linux-PAM's layout: `msg` is an array of `num_msg` pointers), with
/// `appdata` pointing at a live [`Conversation`].
unsafe fn answer(
    num_msg: c_int,
    msg: *const *const PamMessage,
    resp: *mut *mut PamResponse,
    appdata: *mut c_void,
) -> c_int {
    if !(1..=PAM_MAX_NUM_MSG).contains(&num_msg)
        || msg.is_null()
        || resp.is_null()
        || appdata.is_null()
    {
        return PAM_CONV_ERR;
    }
    let n = num_msg as usize;
    // SAFETY: appdata is the Conversation `check` gave pam_start, alive for the handle's lifetime.
    let conv = unsafe { &mut *(appdata as *mut Conversation<'_>) };
    // calloc: every `resp` starts null, so a partial array can be freed.
    let replies =
        unsafe { libc::calloc(n, std::mem::size_of::<PamResponse>()) } as *mut PamResponse;
    if replies.is_null() {
        return PAM_BUF_ERR;
    }
    for i in 0..n {
        // SAFETY: i < num_msg entries, as the caller promises.
        let m = unsafe { *msg.add(i) };
        if m.is_null() {
            unsafe { free_replies(replies, n) };
            return PAM_CONV_ERR;
        }
        let (style, text) = unsafe { ((*m).msg_style, (*m).msg) };
        let reply = match style {
            PAM_PROMPT_ECHO_OFF => Some(conv.password),
            PAM_PROMPT_ECHO_ON => Some(conv.username),
            PAM_ERROR_MSG | PAM_TEXT_INFO => {
                // Bounded: a module cannot grow the log without limit.
                if !text.is_null() && conv.messages.len() < 8 {
                    let t = unsafe { CStr::from_ptr(text) }.to_string_lossy();
                    conv.messages.push(t.chars().take(300).collect());
                }
                None
            }
            _ => {
                unsafe { free_replies(replies, n) };
                return PAM_CONV_ERR;
            }
        };
        if let Some(bytes) = reply {
            let p = malloc_copy(bytes);
            if p.is_null() {
                unsafe { free_replies(replies, n) };
                return PAM_BUF_ERR;
            }
            unsafe { (*replies.add(i)).resp = p };
        }
    }
    // SAFETY: resp is valid for writing (checked non-null); PAM now owns and frees the array.
    unsafe { *resp = replies };
    PAM_SUCCESS
}

/// A started PAM transaction; `pam_end` runs however the check ends.
struct Transaction {
    lib: &'static Lib,
    handle: *mut c_void,
    last: c_int,
}

impl Transaction {
    fn step(&mut self, f: StepFn, flags: c_int) -> c_int {
        // SAFETY: a live handle from pam_start.
        self.last = unsafe { f(self.handle, flags) };
        self.last
    }

    fn describe(&self, code: c_int) -> String {
        // SAFETY: a live handle; pam_strerror returns a static string (or NULL).
        let s = unsafe { (self.lib.strerror)(self.handle, code) };
        if s.is_null() {
            format!("PAM error {code}")
        } else {
            // SAFETY: non-null, NUL-terminated.
            let text = unsafe { CStr::from_ptr(s) }.to_string_lossy();
            format!("{text} (PAM error {code})")
        }
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        // SAFETY: ends the handle pam_start made, once; libpam wipes the password item it kept.
        unsafe { (self.lib.end)(self.handle, self.last) };
    }
}

/// Checks a site account's password and whether the account may sign in now, through PAM service
/// `service`. Blocking: see [`authenticate`] for the async form.
pub fn check(service: &str, username: &str, password: &str) -> Result<(), PamRefusal> {
    valid_service(service).map_err(PamRefusal::Unavailable)?;
    valid_username(username)?;
    valid_password(password)?;
    let lib = lib()?;
    // Validated above: neither contains NUL.
    let c_service = CString::new(service).map_err(|e| PamRefusal::Unavailable(e.to_string()))?;
    let c_user = CString::new(username).map_err(|e| PamRefusal::InvalidInput(e.to_string()))?;
    let mut state = Conversation {
        username: username.as_bytes(),
        password: password.as_bytes(),
        messages: Vec::new(),
    };
    let state_ptr: *mut Conversation<'_> = &mut state;
    let conv = PamConv {
        conv: Some(converse),
        appdata_ptr: state_ptr as *mut c_void,
    };
    let mut handle = std::ptr::null_mut();
    // SAFETY: NUL-terminated strings, a conversation whose appdata outlives the transaction (`state` is
    // dropped after `tx`), and an out-pointer for the handle.
    let rc = unsafe { (lib.start)(c_service.as_ptr(), c_user.as_ptr(), &conv, &mut handle) };
    if rc != PAM_SUCCESS || handle.is_null() {
        return Err(PamRefusal::Unavailable(format!(
            "PAM could not start service '{service}' (PAM error {rc})"
        )));
    }
    let mut tx = Transaction {
        lib,
        handle,
        last: PAM_SUCCESS,
    };
    // Read through the pointer PAM holds, not through `state`, while the transaction is alive.
    let said = |p: *mut Conversation<'_>| -> String {
        // SAFETY: PAM calls the conversation only inside a step, on this thread; none runs now.
        let m = unsafe { &(*p).messages };
        if m.is_empty() {
            String::new()
        } else {
            format!("; the modules said: {}", m.join(" / "))
        }
    };
    let rc = tx.step(lib.authenticate, PAM_SILENT | PAM_DISALLOW_NULL_AUTHTOK);
    match rc {
        PAM_SUCCESS => {}
        PAM_AUTH_ERR | PAM_USER_UNKNOWN | PAM_CRED_INSUFFICIENT | PAM_MAXTRIES => {
            return Err(shadow_unreadable(username)
                .map(PamRefusal::Unavailable)
                .unwrap_or(PamRefusal::WrongCredentials));
        }
        PAM_PERM_DENIED | PAM_ACCT_EXPIRED | PAM_NEW_AUTHTOK_REQD | PAM_AUTHTOK_EXPIRED => {
            return Err(PamRefusal::AccountUnusable(format!(
                "{}{}",
                tx.describe(rc),
                said(state_ptr)
            )));
        }
        _ => return Err(unavailable(service, &tx, rc, &said(state_ptr))),
    }
    // Not silent: pam_unix then says why an account is refused ("Your account has expired; …").
    let rc = tx.step(lib.acct_mgmt, PAM_DISALLOW_NULL_AUTHTOK);
    match rc {
        PAM_SUCCESS => Ok(()),
        PAM_USER_UNKNOWN => Err(PamRefusal::WrongCredentials),
        PAM_ACCT_EXPIRED | PAM_NEW_AUTHTOK_REQD | PAM_AUTHTOK_EXPIRED | PAM_PERM_DENIED
        | PAM_AUTH_ERR => Err(PamRefusal::AccountUnusable(format!(
            "{}{}",
            tx.describe(rc),
            said(state_ptr)
        ))),
        _ => Err(unavailable(service, &tx, rc, &said(state_ptr))),
    }
}

fn unavailable(service: &str, tx: &Transaction, rc: c_int, said: &str) -> PamRefusal {
    let hint = match rc {
        PAM_AUTHINFO_UNAVAIL => ": the account database could not be reached",
        PAM_SERVICE_ERR | PAM_SYSTEM_ERR => ": check its file under /etc/pam.d",
        _ => "",
    };
    PamRefusal::Unavailable(format!(
        "PAM service '{service}' failed: {}{hint}{said}",
        tx.describe(rc)
    ))
}

/// When a refusal may only mean that pam_unix could not read the shadow file: Ferry is not root, cannot
/// read `/etc/shadow`, and `username` is an `/etc/passwd` account whose password is kept there (`x`).
fn shadow_unreadable(username: &str) -> Option<String> {
    // SAFETY: geteuid cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid == 0 || std::fs::File::open("/etc/shadow").is_ok() {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    let shadowed = passwd.lines().any(|line| {
        let mut fields = line.split(':');
        fields.next() == Some(username) && fields.next() == Some("x")
    });
    shadowed.then(|| {
        format!(
            "PAM cannot check local accounts' passwords: Ferry runs as uid {euid}, and pam_unix reads \
             /etc/shadow, which only root may read (run the server as root, or sign site accounts in through \
             a PAM stack that does not need the shadow file, such as sssd)"
        )
    })
}

/// An owned copy of the password for the blocking thread, overwritten when dropped.
struct Wiped(String);

impl Drop for Wiped {
    fn drop(&mut self) {
        // SAFETY: zero bytes are valid UTF-8, so the String stays valid until it is freed.
        wipe(unsafe { self.0.as_mut_vec() });
    }
}

/// [`check`] on the blocking pool, at most [`CONCURRENT_CHECKS`] at once. Refusals other than a wrong
/// password are logged with their detail (never the password).
pub async fn authenticate(service: &str, username: &str, password: &str) -> Result<(), PamRefusal> {
    static CHECKS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(CONCURRENT_CHECKS);
    let _permit = CHECKS
        .acquire()
        .await
        .map_err(|_| PamRefusal::Unavailable("the PAM checker is closed".into()))?;
    let (service, username) = (service.to_string(), username.to_string());
    let password = Wiped(password.to_string());
    let who = username.clone();
    let outcome = tokio::task::spawn_blocking(move || check(&service, &username, &password.0))
        .await
        .unwrap_or_else(|e| {
            Err(PamRefusal::Unavailable(format!(
                "the PAM check failed: {e}"
            )))
        });
    match &outcome {
        Err(r @ PamRefusal::AccountUnusable(_)) => {
            tracing::info!(username = %who, detail = %r.detail(), "site account refused")
        }
        Err(r @ PamRefusal::Unavailable(_)) => {
            tracing::error!(username = %who, detail = %r.detail(), "site-account sign-in unavailable")
        }
        _ => {}
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_is_checked_before_pam() {
        for (name, why) in [
            ("", "is empty"),
            ("a/b", "'/'"),
            ("a:b", "':'"),
            ("a b", "spaces"),
            ("a\tb", "spaces"),
            ("a\u{1}b", "control"),
            ("-rf", "starts with '-'"),
            ("a\0b", "NUL"),
        ] {
            let e = check("ferry", name, "a password").unwrap_err();
            assert!(
                matches!(&e, PamRefusal::InvalidInput(m) if m.contains(why)),
                "{name:?}: {e:?}"
            );
        }
        let long = "a".repeat(257);
        assert!(
            matches!(check("ferry", &long, "pw"), Err(PamRefusal::InvalidInput(m)) if m.contains("256"))
        );
        assert!(valid_username(&"a".repeat(256)).is_ok());
        assert!(valid_username("alice.smith-2").is_ok());
        for (pw, why) in [("", "empty"), ("a\0b", "NUL")] {
            assert!(
                matches!(check("ferry", "alice", pw), Err(PamRefusal::InvalidInput(m)) if m.contains(why))
            );
        }
        let long = "p".repeat(4097);
        assert!(
            matches!(check("ferry", "alice", &long), Err(PamRefusal::InvalidInput(m)) if m.contains("4096"))
        );
        assert!(valid_password(&"p".repeat(4096)).is_ok());
        for service in [
            "",
            "../etc/shadow",
            "Ferry",
            "a b",
            "a.conf",
            &"s".repeat(65),
        ] {
            assert!(
                matches!(check(service, "alice", "pw"), Err(PamRefusal::Unavailable(m)) if m.contains("service name")),
                "{service:?}"
            );
        }
    }

    #[test]
    fn a_missing_library_is_a_clear_refusal() {
        let e = load(c"libpam-that-is-not-here.so.0").err().unwrap();
        assert!(
            e.starts_with("PAM is not available on this host: ")
                && e.contains("libpam-that-is-not-here"),
            "{e}"
        );
    }

    #[test]
    fn the_service_file_is_written_once() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(ensure_service_file_in(dir.path(), "ferry"), Ok(true));
        let text = std::fs::read_to_string(dir.path().join("ferry")).unwrap();
        assert!(
            text.contains("@include common-auth\n") && text.contains("@include common-account\n")
        );
        std::fs::write(dir.path().join("ferry"), "# tailored\n").unwrap();
        assert_eq!(ensure_service_file_in(dir.path(), "ferry"), Ok(false));
        assert_eq!(
            std::fs::read_to_string(dir.path().join("ferry")).unwrap(),
            "# tailored\n",
            "an existing file is left alone"
        );
        for bad in ["../passwd", "Ferry", "", "a.b"] {
            let e = ensure_service_file_in(dir.path(), bad).unwrap_err();
            assert!(e.contains("not valid"), "{bad:?}: {e}");
        }
        assert!(!dir.path().join("..").join("passwd").exists());
        let e = ensure_service_file_in(&dir.path().join("absent"), "ferry").unwrap_err();
        assert!(e.contains("is PAM installed"), "{e}");
    }

    /// The conversation function as libpam calls it: answers in malloc'd memory, texts kept, unknown
    /// prompt styles refused without leaking what was already answered.
    #[test]
    fn the_conversation_answers_as_pam_expects() {
        let mut state = Conversation {
            username: b"alice",
            password: b"s3cret pass",
            messages: Vec::new(),
        };
        let texts = [c"Password: ", c"Login: ", c"Your account has expired"];
        let msgs = [
            PamMessage {
                msg_style: PAM_PROMPT_ECHO_OFF,
                msg: texts[0].as_ptr(),
            },
            PamMessage {
                msg_style: PAM_PROMPT_ECHO_ON,
                msg: texts[1].as_ptr(),
            },
            PamMessage {
                msg_style: PAM_ERROR_MSG,
                msg: texts[2].as_ptr(),
            },
        ];
        let ptrs: Vec<*const PamMessage> = msgs.iter().map(|m| m as *const _).collect();
        let mut resp: *mut PamResponse = std::ptr::null_mut();
        let appdata = &mut state as *mut Conversation<'_> as *mut c_void;
        let rc = unsafe { converse(3, ptrs.as_ptr(), &mut resp, appdata) };
        assert_eq!(rc, PAM_SUCCESS);
        unsafe {
            let r = std::slice::from_raw_parts(resp, 3);
            assert_eq!(CStr::from_ptr(r[0].resp).to_bytes(), b"s3cret pass");
            assert_eq!(CStr::from_ptr(r[1].resp).to_bytes(), b"alice");
            assert!(r[2].resp.is_null());
            free_replies(resp, 3);
        }
        assert_eq!(state.messages, vec!["Your account has expired".to_string()]);

        let odd = [
            PamMessage {
                msg_style: PAM_PROMPT_ECHO_OFF,
                msg: texts[0].as_ptr(),
            },
            PamMessage {
                msg_style: 7, // PAM_BINARY_PROMPT
                msg: std::ptr::null(),
            },
        ];
        let ptrs: Vec<*const PamMessage> = odd.iter().map(|m| m as *const _).collect();
        let mut resp: *mut PamResponse = std::ptr::null_mut();
        let appdata = &mut state as *mut Conversation<'_> as *mut c_void;
        let rc = unsafe { converse(2, ptrs.as_ptr(), &mut resp, appdata) };
        assert_eq!(rc, PAM_CONV_ERR);
        assert!(resp.is_null(), "nothing handed over on a refusal");
        let rc = unsafe { converse(0, ptrs.as_ptr(), &mut resp, appdata) };
        assert_eq!(rc, PAM_CONV_ERR);
    }

    #[test]
    fn a_copy_is_wiped() {
        let mut w = Wiped("hunter2hunter2".to_string());
        wipe(unsafe { w.0.as_mut_vec() });
        assert!(w.0.bytes().all(|b| b == 0));
    }

    #[test]
    fn refusals_map_to_the_crate_error() {
        use crate::AuthError;
        assert!(matches!(
            AuthError::from(PamRefusal::WrongCredentials),
            AuthError::LoginFailed
        ));
        let e = AuthError::from(PamRefusal::AccountUnusable("expired".into()));
        assert!(
            matches!(&e, AuthError::Forbidden(m) if m.contains("ask the facility's administrators") && !m.contains("expired"))
        );
        let e = AuthError::from(PamRefusal::Unavailable("libpam.so.0: not found".into()));
        assert!(matches!(&e, AuthError::Unavailable(m) if !m.contains("libpam")));
    }
}
