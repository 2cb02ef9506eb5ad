//! `ferry`: the server, the administrator's commands, and the user's commands.

mod admin;
mod api;
mod files;
mod local;
mod login;
mod manage;
mod oidc;
mod output;
mod put;
mod serve;
mod session;
mod sharing;
mod site;
mod tasks;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use output::Format;

#[derive(Parser)]
#[command(
    name = "ferry",
    version,
    about = "Ferry: share and move research data where it already lives."
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
pub struct Global {
    /// The data directory (database, keys, administrator's credentials).
    #[arg(
        long,
        global = true,
        env = "FERRY_DATA_DIR",
        default_value = "./ferry-data"
    )]
    pub data_dir: PathBuf,
    /// A TOML configuration file (see README for the keys).
    #[arg(long, global = true, env = "FERRY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Output format of listing and show commands.
    #[arg(long, global = true, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Subcommand)]
enum Command {
    /// Run every Ferry service in this process, on one port.
    Serve(serve::ServeArgs),
    /// Manage local accounts (people). Runs on the server host, against the data directory.
    #[command(subcommand)]
    Identity(admin::IdentityCmd),
    /// Manage OAuth2 clients (applications). Runs on the server host, against the data directory.
    #[command(subcommand)]
    Client(admin::ClientCmd),
    /// Site accounts: the host's Unix/LDAP accounts sign in with their password, checked through PAM, as an
    /// identity domain of their own. Runs on the server host, against the data directory.
    #[command(subcommand)]
    Oidc(oidc::OidcCmd),
    /// Manage groups through the Groups API, as a client (the administrator's by default).
    #[command(subcommand)]
    Group(api::GroupCmd),
    /// Log in as a person (browser login; the code is pasted here). Later commands use this session.
    Login(login::LoginArgs),
    /// Revoke the stored login's tokens and forget it.
    Logout,
    /// Who the commands act as.
    Whoami(session::Connection),
    /// The stored login.
    #[command(subcommand)]
    Session(login::SessionCmd),
    /// The endpoint: its description, owner and roles (manager API).
    #[command(subcommand)]
    Endpoint(manage::EndpointCmd),
    /// Storage gateways: which storage, reachable by whom, within which path restrictions.
    #[command(subcommand)]
    StorageGateway(manage::GatewayCmd),
    /// Mapped and guest collections, and their roles.
    #[command(subcommand)]
    Collection(manage::CollectionCmd),
    /// Extra sharing rights for some accounts on a mapped collection.
    #[command(subcommand)]
    SharingPolicy(manage::SharingPolicyCmd),
    /// Authentication policies (domain constraints for guest collections' permissions).
    #[command(subcommand)]
    AuthPolicy(manage::AuthPolicyCmd),
    /// Your storage accounts on gateways.
    #[command(subcommand)]
    UserCredentials(manage::CredentialCmd),
    /// List a folder of a collection (Transfer API).
    Ls(files::LsArgs),
    /// Show one file or folder: type, size, modification time, permissions.
    Stat(files::StatArgs),
    /// Create a folder.
    Mkdir(files::MkdirArgs),
    /// Rename or move a file or folder within its collection.
    Rename(files::RenameArgs),
    /// Delete a file, or a folder with --recursive, as a delete task (each path through the access check;
    /// faults retried); waits for it unless --no-wait.
    Rm(tasks::RmArgs),
    /// Copy files or folders between collections as a task: hashed while read, verified, retried on faults,
    /// resumed after a restart. Prints the task id; --wait follows it with a progress bar.
    Transfer(tasks::TransferArgs),
    /// Your transfer and delete tasks.
    #[command(subcommand)]
    Task(tasks::TaskCmd),
    /// URLs told (with a signed JSON event) when your tasks end or stall.
    #[command(subcommand)]
    Webhook(tasks::WebhookCmd),
    /// Download a file over HTTPS, streamed, with a progress bar.
    ///
    /// The file is written to LOCAL.part and renamed to LOCAL only once complete, so an interrupted download
    /// never leaves a partial file under the real name; --resume continues it. Uses the collection's HTTPS
    /// token (with a login: `ferry login --collection ID`).
    Get(files::GetArgs),
    /// Upload a file over HTTPS, in checked chunks, with a progress bar; resumes an interrupted upload.
    ///
    /// The server stores it under a temporary name and renames it only once the whole file arrived, each chunk
    /// checked against its BLAKE3 digest. Run again after an interruption, the same command continues from what
    /// the server holds (--no-resume starts over). Uses the collection's HTTPS token (with a login:
    /// `ferry login --collection ID`).
    Put(put::PutArgs),
    /// Permissions on guest collections: who may read or write which paths.
    #[command(subcommand)]
    Share(sharing::ShareCmd),
    /// E-mail invitations to a guest collection (`ferry share create --email`).
    #[command(subcommand)]
    Invite(sharing::InviteCmd),
    /// Your bookmarks: named folders of collections.
    #[command(subcommand)]
    Bookmark(sharing::BookmarkCmd),
    /// The audit log (on the server host, from the data directory).
    #[command(subcommand)]
    Audit(local::AuditCmd),
    /// Why someone can or cannot reach a path (on the server host).
    #[command(subcommand)]
    Access(local::AccessCmd),
    /// Checks configuration, data directory, database, storage, clock, certificate and the running server.
    SelfDiagnostic,
    /// Print a shell completion script: `source <(ferry completion bash)`, or save it where your shell loads
    /// completions from (zsh: a `_ferry` file in $fpath; fish: ~/.config/fish/completions/ferry.fish).
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// Argon2 needs 19 MiB per password or client-secret check. glibc serves such blocks with mmap until the first one
/// is freed, then raises its mmap threshold and keeps later ones in per-thread heaps that are never given back
/// (measured: +19.5 MiB held per thread that ever checked a secret). A fixed threshold keeps large blocks on mmap,
/// so they return to the system when freed.
///
/// The transfer engine's 2 MiB read buffers stay below the threshold, on the heap, where freed ones are reused:
/// a fresh mmap per buffer costs a page fault per 4 KiB (measured: a 2 GiB copy at 160 MB/s instead of over
/// 1 GB/s). The trim threshold keeps up to the engine's memory budget of freed heap for reuse, and few arenas
/// keep the blocking pool's many threads from each holding their own.
fn keep_large_allocations_returnable() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator tunables; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
        libc::mallopt(libc::M_ARENA_MAX, 4);
    }
}

/// `ferry … | head`: a command whose reader went away ends quietly, as Unix tools do, instead of panicking on a
/// failed print. Not for the server, which writes to sockets and to mapping programs' pipes and must outlive them.
fn die_quietly_on_closed_stdout() {
    #[cfg(unix)]
    // SAFETY: sets a signal's disposition to the default before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// With SIGPIPE at its default (above), a write to a connection the server or the network closed would end the
/// process silently from whichever runtime thread made it (a socket's vectored writes do not ask the kernel to
/// hold the signal back), before the command could say what happened: `ferry put` on a cut network must say how
/// to resume. The runtime's threads block it, so such a write fails with EPIPE and is reported as an error; the
/// main thread keeps the default for `ferry … | head`. Child processes start with an empty mask (std resets it).
fn block_sigpipe_in_this_thread() {
    #[cfg(unix)]
    // SAFETY: changes only the calling thread's signal mask, through a set initialised by sigemptyset.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

fn main() -> ExitCode {
    keep_large_allocations_returnable();
    let cli = Cli::parse();
    let serving = matches!(cli.command, Command::Serve(_));
    if !serving {
        die_quietly_on_closed_stdout();
    }
    if let Command::Completion { shell } = cli.command {
        clap_complete::generate(shell, &mut Cli::command(), "ferry", &mut std::io::stdout());
        return ExitCode::SUCCESS;
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FERRY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if !serving {
        builder.on_thread_start(block_sigpipe_in_this_thread);
    }
    let rt = match builder.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::run(&cli.global, args).await,
            Command::Identity(cmd) => admin::identity(&cli.global, cmd).await,
            Command::Client(cmd) => admin::client(&cli.global, cmd).await,
            Command::Oidc(cmd) => oidc::oidc(&cli.global, cmd).await,
            Command::Group(cmd) => api::group(&cli.global, cmd).await,
            Command::Login(a) => login::login(&cli.global, a).await,
            Command::Logout => login::logout(&cli.global).await,
            Command::Whoami(c) => login::whoami(&cli.global, c).await,
            Command::Session(cmd) => login::session(&cli.global, cmd),
            Command::Endpoint(cmd) => manage::endpoint(&cli.global, cmd).await,
            Command::StorageGateway(cmd) => manage::storage_gateway(&cli.global, cmd).await,
            Command::Collection(cmd) => manage::collection(&cli.global, cmd).await,
            Command::SharingPolicy(cmd) => manage::sharing_policy(&cli.global, cmd).await,
            Command::AuthPolicy(cmd) => manage::auth_policy(&cli.global, cmd).await,
            Command::UserCredentials(cmd) => manage::user_credentials(&cli.global, cmd).await,
            Command::Ls(a) => files::ls(&cli.global, a).await,
            Command::Stat(a) => files::stat(&cli.global, a).await,
            Command::Mkdir(a) => files::mkdir(&cli.global, a).await,
            Command::Rename(a) => files::rename(&cli.global, a).await,
            Command::Rm(a) => tasks::rm(&cli.global, a).await,
            Command::Transfer(a) => tasks::transfer(&cli.global, a).await,
            Command::Task(cmd) => tasks::task(&cli.global, cmd).await,
            Command::Webhook(cmd) => tasks::webhook(&cli.global, cmd).await,
            Command::Get(a) => files::get(&cli.global, a).await,
            Command::Put(a) => put::put(&cli.global, a).await,
            Command::Share(cmd) => sharing::share(&cli.global, cmd).await,
            Command::Invite(cmd) => sharing::invite(&cli.global, cmd).await,
            Command::Bookmark(cmd) => sharing::bookmark(&cli.global, cmd).await,
            Command::Audit(cmd) => local::audit(&cli.global, cmd).await,
            Command::Access(cmd) => local::access(&cli.global, cmd).await,
            Command::SelfDiagnostic => local::self_diagnostic(&cli.global).await,
            Command::Completion { .. } => Ok(()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            if let Some(hint) = hint(&e, &cli.global) {
                eprintln!("hint: {hint}");
            }
            match e.downcast_ref::<Exit>() {
                Some(Exit(code, _)) => ExitCode::from(*code),
                None => ExitCode::FAILURE,
            }
        }
    }
}

/// What to do about an error whose fix is not in its message.
fn hint(e: &anyhow::Error, g: &Global) -> Option<String> {
    let untrusted = e.chain().any(|c| {
        matches!(
            c.downcast_ref::<ferry_client::ClientError>(),
            Some(ferry_client::ClientError::Untrusted { .. })
        )
    });
    untrusted.then(|| {
        format!(
            "the server's certificate is signed by a CA this command does not trust. Give that CA's certificate with \
             --ca-file FILE (or FERRY_CA_FILE=FILE, or GLOBUS_SDK_VERIFY_SSL=FILE). A server started with --tls and \
             no certificate of its own prints it at start: <its data directory>/tls/ca.pem (here that would be {}); \
             `ferry login --ca-file FILE` keeps it for later commands.",
            g.data_dir.join("tls").join("ca.pem").display()
        )
    })
}

/// An error that ends the command with a particular exit status (e.g. 124 for a timeout).
#[derive(Debug)]
pub struct Exit(pub u8, pub String);

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.1)
    }
}

impl std::error::Error for Exit {}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// clap's own consistency checks over the whole tree (only the subcommand run is checked at run time).
    #[test]
    fn the_command_tree_is_consistent() {
        super::Cli::command().debug_assert();
    }

    /// Every command and subcommand says in one line what it does (`ferry … --help` lists them).
    #[test]
    fn every_command_has_a_description() {
        fn walk(c: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for sub in c.get_subcommands() {
                let name = format!("{path} {}", sub.get_name());
                if sub
                    .get_about()
                    .is_none_or(|a| a.to_string().trim().is_empty())
                {
                    missing.push(name.clone());
                }
                walk(sub, &name, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&super::Cli::command(), "ferry", &mut missing);
        assert!(
            missing.is_empty(),
            "commands without a description: {missing:#?}"
        );
    }
}
