//! Helpers for the endpoint's APIs: the manager API as a given client, gateways over temporary folders, mapped
//! collections, and the Transfer `ls`.

use reqwest::Method as M;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{App, TestServer};

/// A caller of the manager API with its token.
pub struct Api<'a> {
    pub s: &'a TestServer,
    pub token: String,
}

impl Api<'_> {
    pub async fn call(&self, m: M, path: &str, body: Option<Value>) -> (u16, Value) {
        self.s.call(m, path, &self.token, body.as_ref()).await
    }
    /// The single document of a successful answer; panics with the answer otherwise.
    pub async fn ok(&self, m: M, path: &str, body: Option<Value>) -> Value {
        let (st, b) = self.call(m, path, body).await;
        assert_eq!(st, 200, "{path}: {b}");
        assert_eq!(b["code"], "success");
        b["data"][0].clone()
    }
    pub async fn count(&self, path: &str) -> usize {
        let (st, b) = self.call(M::GET, path, None).await;
        assert_eq!(st, 200, "{b}");
        b["data"].as_array().unwrap().len()
    }
}

pub fn endpoint_id(s: &TestServer) -> Uuid {
    s.running.endpoint.id()
}

pub fn manage_scope(s: &TestServer) -> String {
    format!(
        "urn:globus:auth:scope:{}:manage_collections",
        endpoint_id(s)
    )
}

pub async fn api<'a>(s: &'a TestServer, app: &App) -> Api<'a> {
    Api {
        s,
        token: s.access_token(app, &manage_scope(s)).await,
    }
}

/// A storage gateway over a fresh folder (`root` in the returned tempdir) with these restrictions.
pub async fn gateway(a: &Api<'_>, restrict: Value, extra: Value) -> (Uuid, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut doc = json!({
        "DATA_TYPE": "storage_gateway#1.2.0",
        "display_name": "test gateway",
        "connector_id": "145812c8-decc-41f1-83cf-bb2a85a2a70b",
        "root_path": dir.path().to_str().unwrap(),
    });
    if !restrict.is_null() {
        doc["restrict_paths"] = restrict;
    }
    if let (Value::Object(d), Value::Object(e)) = (&mut doc, extra) {
        d.extend(e);
    }
    let g = a.ok(M::POST, "/api/storage_gateways", Some(doc)).await;
    (Uuid::parse_str(g["id"].as_str().unwrap()).unwrap(), dir)
}

pub async fn mapped(a: &Api<'_>, gateway: Uuid, extra: Value) -> Uuid {
    let mut doc = json!({
        "DATA_TYPE": "collection#1.8.0",
        "collection_type": "mapped",
        "display_name": "mapped",
        "storage_gateway_id": gateway,
        "collection_base_path": "/",
    });
    if let (Value::Object(d), Value::Object(e)) = (&mut doc, extra) {
        d.extend(e);
    }
    let c = a.ok(M::POST, "/api/collections", Some(doc)).await;
    Uuid::parse_str(c["id"].as_str().unwrap()).unwrap()
}

pub async fn ls(s: &TestServer, token: &str, collection: Uuid, path: &str) -> (u16, Value) {
    let mut u = url::Url::parse(&format!(
        "{}/v0.10/operation/endpoint/{collection}/ls",
        s.url
    ))
    .unwrap();
    u.query_pairs_mut().append_pair("path", path);
    s.call(M::GET, &u[url::Position::BeforePath..], token, None)
        .await
}
