//! Outgoing e-mail: one SMTP client for everything Ferry sends (sharing invitations now, task notifications
//! later), configured by the `[smtp]` section. Plain text only: nothing a mail client could run.

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::{Deserialize, Serialize};

/// The `[smtp]` section. An empty `host` means e-mail is not configured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    /// `none` (plain SMTP; for a relay on the same host), `starttls`, or `tls` (implicit TLS, port 465).
    pub security: String,
    pub username: String,
    pub password: String,
    /// The sender, e.g. `Ferry <ferry@example.org>`.
    pub from: String,
    pub timeout_secs: u64,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        Self {
            host: String::new(),
            port: 25,
            security: "starttls".into(),
            username: String::new(),
            password: String::new(),
            from: "Ferry <ferry@localhost>".into(),
            timeout_secs: 30,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("smtp.{0}")]
    Config(String),
    #[error("{0:?} is not an e-mail address")]
    Address(String),
    #[error("the mail server refused or could not be reached: {0}")]
    Send(String),
}

pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

/// Parses an address as the mail library will use it (so a stored address is one that can be sent to).
pub fn mailbox(address: &str) -> Result<Mailbox, MailError> {
    address
        .trim()
        .parse()
        .map_err(|_| MailError::Address(address.to_string()))
}

impl Mailer {
    /// A mailer for `config`; None when no host is configured.
    pub fn from_config(config: &SmtpConfig) -> Result<Option<Self>, MailError> {
        if config.host.trim().is_empty() {
            return Ok(None);
        }
        let host = config.host.trim();
        let builder = match config.security.as_str() {
            "none" => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
            "starttls" => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
                .map_err(|e| MailError::Config(format!("host: {e}")))?,
            "tls" => AsyncSmtpTransport::<Tokio1Executor>::relay(host)
                .map_err(|e| MailError::Config(format!("host: {e}")))?,
            other => {
                return Err(MailError::Config(format!(
                    "security: {other:?} is not none, starttls or tls"
                )));
            }
        };
        let mut builder = builder
            .port(config.port)
            .timeout(Some(std::time::Duration::from_secs(config.timeout_secs)));
        if !config.username.is_empty() {
            builder = builder.credentials(Credentials::new(
                config.username.clone(),
                config.password.clone(),
            ));
        }
        let from = mailbox(&config.from).map_err(|e| MailError::Config(format!("from: {e}")))?;
        Ok(Some(Self {
            transport: builder.build(),
            from,
        }))
    }

    pub async fn send(&self, to: &str, subject: &str, body: &str) -> Result<(), MailError> {
        let message = Message::builder()
            .from(self.from.clone())
            .to(mailbox(to)?)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(body.to_string())
            .map_err(|e| MailError::Send(e.to_string()))?;
        self.transport
            .send(message)
            .await
            .map_err(|e| MailError::Send(e.to_string()))?;
        tracing::info!(subject, "sent an e-mail");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_is_checked() {
        assert!(
            Mailer::from_config(&SmtpConfig::default())
                .unwrap()
                .is_none()
        );
        let bad = SmtpConfig {
            host: "localhost".into(),
            security: "ssl".into(),
            ..Default::default()
        };
        assert!(
            matches!(Mailer::from_config(&bad), Err(MailError::Config(m)) if m.contains("security"))
        );
        let bad = SmtpConfig {
            host: "localhost".into(),
            from: "not an address".into(),
            ..Default::default()
        };
        assert!(
            matches!(Mailer::from_config(&bad), Err(MailError::Config(m)) if m.contains("from"))
        );
        assert!(mailbox("a@b.example").is_ok());
        assert!(mailbox("nobody").is_err());
    }
}
