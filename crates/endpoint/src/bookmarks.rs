//! Bookmarks: a person's named places in collections (the Transfer API's `bookmark` documents).

use ferry_store::Bookmark;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::{Endpoint, EndpointError, Requester, Result};

/// A person keeps at most this many bookmarks.
const MAX_BOOKMARKS: usize = 1000;

fn bad(msg: impl Into<String>) -> EndpointError {
    EndpointError::BadRequest(msg.into())
}

fn doc(b: &Bookmark) -> Value {
    json!({
        "DATA_TYPE": "bookmark",
        "id": b.id,
        "name": b.name,
        "endpoint_id": b.collection_id,
        "path": b.path,
        "pinned": b.pinned,
    })
}

fn fields(request: Value, allowed: &[&str]) -> Result<Map<String, Value>> {
    let Value::Object(m) = request else {
        return Err(bad("the body must be a bookmark document (a JSON object)"));
    };
    if let Some(t) = m.get("DATA_TYPE")
        && t != "bookmark"
    {
        return Err(bad(format!("DATA_TYPE: expected \"bookmark\", got {t}")));
    }
    if let Some(k) = m
        .keys()
        .find(|k| !["DATA_TYPE", "id"].contains(&k.as_str()) && !allowed.contains(&k.as_str()))
    {
        return Err(bad(format!("{k}: not a field a bookmark can set here")));
    }
    Ok(m)
}

fn name(v: Option<&Value>) -> Result<Option<String>> {
    match v {
        None => Ok(None),
        Some(Value::String(s)) if !s.trim().is_empty() && s.chars().count() <= 128 => {
            Ok(Some(s.trim().to_string()))
        }
        Some(_) => Err(bad("name: a non-empty string of at most 128 characters")),
    }
}

/// A bookmark's path: absolute and normalised (`/~/` stands for the default directory); folders keep their `/`.
fn path(v: Option<&Value>) -> Result<Option<String>> {
    let Some(v) = v else { return Ok(None) };
    let s = v.as_str().ok_or_else(|| bad("path: expected a string"))?;
    if !s.starts_with('/') {
        return Err(bad(format!("path: {s:?} must start with \"/\"")));
    }
    let mut p = ferry_core::path::normalize(s).map_err(|e| bad(format!("path: {e}")))?;
    if s.ends_with('/') && p != "/" {
        p.push('/');
    }
    Ok(Some(p))
}

fn pinned(v: Option<&Value>) -> Result<Option<bool>> {
    match v {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(bad("pinned: expected true or false")),
    }
}

impl Endpoint {
    async fn my_bookmark(&self, who: &Requester, id: Uuid) -> Result<Bookmark> {
        match self.store.get_bookmark(id).await? {
            Some(b) if b.owner == who.identity.id => Ok(b),
            _ => Err(EndpointError::NotFound(format!("no bookmark {id}"))),
        }
    }

    pub async fn bookmarks(&self, who: &Requester) -> Result<Vec<Value>> {
        Ok(self
            .store
            .list_bookmarks(who.identity.id)
            .await?
            .iter()
            .map(doc)
            .collect())
    }

    pub async fn create_bookmark(&self, who: &Requester, request: Value) -> Result<Value> {
        let m = fields(request, &["name", "endpoint_id", "path", "pinned"])?;
        let name = name(m.get("name"))?.ok_or_else(|| bad("name: required"))?;
        let path = path(m.get("path"))?.ok_or_else(|| bad("path: required"))?;
        let collection = m
            .get("endpoint_id")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("endpoint_id: required (the collection's id)"))?;
        let collection = Uuid::parse_str(collection)
            .map_err(|_| bad(format!("endpoint_id: {collection:?} is not an id")))?;
        // A bookmark may only name a collection its owner can see.
        self.entity(who, collection).await?;
        if self.store.list_bookmarks(who.identity.id).await?.len() >= MAX_BOOKMARKS {
            return Err(bad(format!(
                "at most {MAX_BOOKMARKS} bookmarks; delete some first"
            )));
        }
        let b = Bookmark {
            id: Uuid::new_v4(),
            owner: who.identity.id,
            name,
            collection_id: collection,
            path,
            pinned: pinned(m.get("pinned"))?.unwrap_or(false),
            created: self.now(),
        };
        self.store.create_bookmark(&b).await?;
        Ok(doc(&b))
    }

    pub async fn get_bookmark(&self, who: &Requester, id: Uuid) -> Result<Value> {
        Ok(doc(&self.my_bookmark(who, id).await?))
    }

    pub async fn update_bookmark(
        &self,
        who: &Requester,
        id: Uuid,
        request: Value,
    ) -> Result<Value> {
        let mut b = self.my_bookmark(who, id).await?;
        let m = fields(request, &["name", "path", "pinned", "endpoint_id"])?;
        if let Some(e) = m.get("endpoint_id")
            && e.as_str() != Some(&b.collection_id.to_string())
        {
            return Err(bad(
                "endpoint_id: a bookmark's collection cannot change; create another bookmark",
            ));
        }
        if let Some(n) = name(m.get("name"))? {
            b.name = n;
        }
        if let Some(p) = path(m.get("path"))? {
            b.path = p;
        }
        if let Some(p) = pinned(m.get("pinned"))? {
            b.pinned = p;
        }
        self.store.update_bookmark(&b).await?;
        Ok(doc(&b))
    }

    pub async fn delete_bookmark(&self, who: &Requester, id: Uuid) -> Result<()> {
        let b = self.my_bookmark(who, id).await?;
        self.store.delete_bookmark(b.id).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_checked() {
        assert_eq!(path(Some(&json!("/a//b/"))).unwrap(), Some("/a/b/".into()));
        assert_eq!(path(Some(&json!("/~/"))).unwrap(), Some("/~/".into()));
        assert!(path(Some(&json!("a"))).is_err());
        assert!(path(Some(&json!("/a/../b"))).is_err());
        assert!(name(Some(&json!(" "))).is_err());
        assert!(name(Some(&json!("x".repeat(129)))).is_err());
        assert!(fields(json!({"name": "a", "owner": "x"}), &["name"]).is_err());
        assert!(fields(json!([]), &[]).is_err());
    }
}
