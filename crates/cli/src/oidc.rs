//! `ferry oidc …`: the host's own accounts as an identity domain, their passwords checked through PAM (what
//! `globus-connect-server oidc` sets up for a facility). Runs on the server host, against the data directory;
//! the running server sees a change at the next sign-in.

use clap::Subcommand;
use ferry_proto::auth::SiteAccountsDoc;
use serde_json::Value;

use crate::Global;
use crate::output::print_record;

#[derive(Subcommand)]
pub enum OidcCmd {
    /// Let the host's accounts sign in as `<account>@DOMAIN`, checked by PAM service `--pam-service`.
    Create {
        /// The identity domain: the host's account `ana` signs in as `ana@DOMAIN`.
        #[arg(long)]
        domain: String,
        /// What the login page calls these accounts [default: the domain].
        #[arg(long)]
        display_name: Option<String>,
        /// The PAM service (`/etc/pam.d/<name>`); written with Debian's common-auth and common-account when
        /// it does not exist and this runs as root.
        #[arg(long, default_value = "ferry")]
        pam_service: String,
    },
    /// Show the site-account domain.
    Show,
    /// Change the display name or the PAM service (the domain stays: it names the identities).
    Update {
        #[arg(long)]
        display_name: Option<String>,
        #[arg(long)]
        pam_service: Option<String>,
    },
    /// Switch site accounts off: their identities and permissions stay, but nobody signs in with them.
    Delete,
}

const FIELDS: &[(&str, &str)] = &[
    ("ID", "id"),
    ("Domain", "domain"),
    ("Display name", "display_name"),
    ("PAM service", "pam_service"),
];

fn show(g: &Global, doc: &SiteAccountsDoc) -> anyhow::Result<()> {
    let v: Value = serde_json::to_value(doc)?;
    print_record(g.format, &v, FIELDS);
    Ok(())
}

/// Writes `/etc/pam.d/<service>` when it is missing (as root), and says what happened.
fn pam_service_file(service: &str) {
    match ferry_auth::pam::ensure_service_file(service) {
        Ok(true) => {
            eprintln!("Wrote /etc/pam.d/{service} (Debian's common-auth and common-account).")
        }
        Ok(false) => {}
        Err(e) => eprintln!(
            "warning: /etc/pam.d/{service} is missing and could not be written ({e}); create it with:\n{}",
            ferry_auth::pam::service_file_text()
        ),
    }
}

pub async fn oidc(g: &Global, cmd: OidcCmd) -> anyhow::Result<()> {
    let auth = crate::admin::open(g).await?;
    match cmd {
        OidcCmd::Create {
            domain,
            display_name,
            pam_service,
        } => {
            let name = display_name.unwrap_or_else(|| domain.clone());
            let doc = auth
                .save_site_accounts(&domain, &name, &pam_service, true)
                .await?;
            pam_service_file(&doc.pam_service);
            show(g, &doc)?;
            eprintln!(
                "The login page now offers {} accounts. A storage gateway reaches them as the account of the same \
                 name once it allows the domain: `ferry storage-gateway update posix ID --domain {}`.",
                doc.display_name, doc.domain
            );
            Ok(())
        }
        OidcCmd::Show => match auth.site_accounts().await? {
            Some(doc) => show(g, &doc),
            None => anyhow::bail!(
                "no site accounts are set up; create them with `ferry oidc create --domain …`"
            ),
        },
        OidcCmd::Update {
            display_name,
            pam_service,
        } => {
            let Some(now) = auth.site_accounts().await? else {
                anyhow::bail!(
                    "no site accounts are set up; create them with `ferry oidc create --domain …`"
                );
            };
            let doc = auth
                .save_site_accounts(
                    &now.domain,
                    display_name.as_deref().unwrap_or(&now.display_name),
                    pam_service.as_deref().unwrap_or(&now.pam_service),
                    false,
                )
                .await?;
            pam_service_file(&doc.pam_service);
            show(g, &doc)
        }
        OidcCmd::Delete => {
            let doc = auth.delete_site_accounts().await?;
            eprintln!(
                "Site accounts of {} are switched off; their identities stay.",
                doc.domain
            );
            Ok(())
        }
    }
}
