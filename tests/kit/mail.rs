//! A real SMTP server on 127.0.0.1:0 that keeps every message it is sent: what a test configures as the
//! server's `[smtp]` to read the e-mails Ferry sends (invitations, notifications).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// One delivered message: its envelope recipients and its raw text (headers and body).
#[derive(Debug, Clone)]
pub struct Delivered {
    pub to: Vec<String>,
    pub raw: String,
}

impl Delivered {
    /// The body, decoded from the transfer encoding the mail library chose (7bit, quoted-printable or
    /// base64).
    pub fn body(&self) -> String {
        let (head, body) = self
            .raw
            .split_once("\r\n\r\n")
            .unwrap_or((self.raw.as_str(), ""));
        let head = head.to_ascii_lowercase();
        if head.contains("content-transfer-encoding: base64") {
            let joined: String = body.split_whitespace().collect();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(joined)
                .expect("base64 body");
            return String::from_utf8_lossy(&bytes).into_owned();
        }
        if head.contains("content-transfer-encoding: quoted-printable") {
            return quoted_printable(body);
        }
        body.to_string()
    }
}

fn quoted_printable(s: &str) -> String {
    let joined = s.replace("=\r\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&joined[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub struct MailSink {
    pub port: u16,
    delivered: Arc<Mutex<Vec<Delivered>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MailSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl MailSink {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().unwrap().port();
        let delivered = Arc::new(Mutex::new(Vec::new()));
        let keep = delivered.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let keep = keep.clone();
                tokio::spawn(async move {
                    let _ = session(stream, keep).await;
                });
            }
        });
        Self {
            port,
            delivered,
            task,
        }
    }

    /// Points the server's `[smtp]` at this sink (plain SMTP on loopback).
    pub fn configure(&self, cfg: &mut ferry_server::Config) {
        cfg.smtp.host = "127.0.0.1".into();
        cfg.smtp.port = self.port;
        cfg.smtp.security = "none".into();
        cfg.smtp.from = "Ferry <ferry@test.local>".into();
        cfg.smtp.timeout_secs = 10;
    }

    /// The first message delivered to `to`, waiting up to 10 s for it.
    pub async fn wait_for(&self, to: &str) -> Delivered {
        for _ in 0..200 {
            let found = self
                .delivered
                .lock()
                .unwrap()
                .iter()
                .find(|m| m.to.iter().any(|t| t.eq_ignore_ascii_case(to)))
                .cloned();
            if let Some(m) = found {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no message to {to} within 10 s");
    }
}

/// One SMTP session (RFC 5321's minimum: HELO/EHLO, MAIL, RCPT, DATA, RSET, NOOP, QUIT).
async fn session(stream: TcpStream, keep: Arc<Mutex<Vec<Delivered>>>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 sink ESMTP\r\n").await?;
    let mut to = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" | "HELO" => b"250 sink\r\n",
            "MAIL" => {
                to.clear();
                b"250 OK\r\n"
            }
            "RCPT" => {
                let addr = line
                    .split_once('<')
                    .and_then(|(_, r)| r.split_once('>'))
                    .map(|(a, _)| a.to_string())
                    .unwrap_or_default();
                to.push(addr);
                b"250 OK\r\n"
            }
            "DATA" => {
                write.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
                let mut raw = String::new();
                loop {
                    line.clear();
                    if lines.read_line(&mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" {
                        break;
                    }
                    // Dot-stuffing: a line starting with '.' was sent with one more.
                    raw.push_str(line.strip_prefix('.').unwrap_or(&line));
                }
                keep.lock().unwrap().push(Delivered {
                    to: std::mem::take(&mut to),
                    raw,
                });
                b"250 OK\r\n"
            }
            "RSET" | "NOOP" => b"250 OK\r\n",
            "QUIT" => {
                write.write_all(b"221 bye\r\n").await?;
                return Ok(());
            }
            _ => b"502 not implemented\r\n",
        };
        write.write_all(reply).await?;
    }
}
