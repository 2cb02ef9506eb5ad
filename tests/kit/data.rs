//! Helpers for data-plane tests: Transfer file operations, tasks and HTTPS requests on one collection, as one
//! caller holding a Transfer token and the collection's HTTPS token.

use std::time::{Duration, Instant};

use reqwest::Method as M;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::TestServer;

pub const TRANSFER_SCOPE: &str = "urn:globus:auth:scope:transfer.api.globus.org:all";

/// A caller of one collection's data doors.
pub struct Door<'a> {
    pub s: &'a TestServer,
    pub coll: Uuid,
    pub transfer: String,
    pub https: String,
}

/// What a request answered: status and body text (JSON or not), for checks on what a message reveals.
pub struct Answer {
    pub status: u16,
    pub text: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }
}

impl<'a> Door<'a> {
    /// `app`'s doors to `coll`: a Transfer token and the collection's HTTPS token.
    pub async fn new(s: &'a TestServer, app: &crate::App, coll: Uuid) -> Door<'a> {
        Door {
            s,
            coll,
            transfer: s.access_token(app, TRANSFER_SCOPE).await,
            https: s
                .access_token(app, &format!("https://auth.globus.org/scopes/{coll}/https"))
                .await,
        }
    }

    fn op_url(&self, name: &str) -> String {
        format!("/v0.10/operation/endpoint/{}/{name}", self.coll)
    }

    async fn send(&self, rb: reqwest::RequestBuilder) -> Answer {
        let r = rb.send().await.expect("request sent");
        Answer {
            status: r.status().as_u16(),
            text: r.text().await.unwrap_or_default(),
        }
    }

    async fn transfer(&self, m: M, path: &str, body: Option<Value>) -> Answer {
        let mut rb = self
            .s
            .http
            .request(m, format!("{}{path}", self.s.url))
            .bearer_auth(&self.transfer);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        self.send(rb).await
    }

    async fn with_path(&self, name: &str, path: &str) -> Answer {
        let q = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("path", path)
            .finish();
        self.transfer(M::GET, &format!("{}?{q}", self.op_url(name)), None)
            .await
    }

    pub async fn ls(&self, path: &str) -> Answer {
        self.with_path("ls", path).await
    }

    pub async fn stat(&self, path: &str) -> Answer {
        self.with_path("stat", path).await
    }

    pub async fn mkdir(&self, path: &str) -> Answer {
        let body = json!({"DATA_TYPE": "mkdir", "path": path});
        self.transfer(M::POST, &self.op_url("mkdir"), Some(body))
            .await
    }

    pub async fn rename(&self, from: &str, to: &str) -> Answer {
        let body = json!({"DATA_TYPE": "rename", "old_path": from, "new_path": to});
        self.transfer(M::POST, &self.op_url("rename"), Some(body))
            .await
    }

    /// An HTTPS request on a collection path (URL-encoded by the caller where needed).
    pub async fn https(&self, m: M, path: &str, body: Option<Vec<u8>>) -> Answer {
        let mut rb = self
            .s
            .http
            .request(m, format!("{}/data/{}{path}", self.s.url, self.coll))
            .bearer_auth(&self.https);
        if let Some(b) = body {
            rb = rb.body(b);
        }
        self.send(rb).await
    }

    /// Submits a transfer (to `dest`) or delete task; returns the answer.
    pub async fn submit(&self, doc: Value) -> Answer {
        let kind = doc["DATA_TYPE"].as_str().unwrap_or("transfer").to_string();
        self.transfer(M::POST, &format!("/v0.10/{kind}"), Some(doc))
            .await
    }

    /// A delete task of `paths` on this collection, waited for; returns the task and its events.
    pub async fn delete_task(&self, paths: &[&str], recursive: bool) -> (Value, Value) {
        let items: Vec<Value> = paths
            .iter()
            .map(|p| json!({"DATA_TYPE": "delete_item", "path": p}))
            .collect();
        let a = self
            .submit(
                json!({"DATA_TYPE": "delete", "endpoint": self.coll, "DATA": items,
                           "recursive": recursive}),
            )
            .await;
        assert_eq!(a.status, 202, "{}", a.text);
        self.finished(a.json()["task_id"].as_str().unwrap()).await
    }

    /// A transfer task within this collection, waited for; returns the task and its events.
    pub async fn transfer_task(&self, items: &[(&str, &str, bool)]) -> (Value, Value) {
        let items: Vec<Value> = items
            .iter()
            .map(|(s, d, r)| {
                json!({"DATA_TYPE": "transfer_item", "source_path": s, "destination_path": d,
                       "recursive": r})
            })
            .collect();
        let a = self
            .submit(
                json!({"DATA_TYPE": "transfer", "source_endpoint": self.coll,
                           "destination_endpoint": self.coll, "DATA": items}),
            )
            .await;
        assert_eq!(a.status, 202, "{}", a.text);
        self.finished(a.json()["task_id"].as_str().unwrap()).await
    }

    /// Polls a task until it is no longer ACTIVE; returns it with its event list.
    pub async fn finished(&self, id: &str) -> (Value, Value) {
        let start = Instant::now();
        loop {
            let t = self
                .transfer(M::GET, &format!("/v0.10/task/{id}"), None)
                .await;
            assert_eq!(t.status, 200, "{}", t.text);
            let task = t.json();
            if task["status"] != "ACTIVE" {
                let ev = self
                    .transfer(M::GET, &format!("/v0.10/task/{id}/event_list"), None)
                    .await;
                return (task, ev.json());
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "task still active: {task}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
