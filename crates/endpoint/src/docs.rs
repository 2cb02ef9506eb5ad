//! Request documents in the GCS manager API's conventions: a versioned `DATA_TYPE`, unknown fields refused,
//! PUT replaces, PATCH merges (explicit `null` removes a property), and every error names the field.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{EndpointError, Result};

/// Checks a document's `DATA_TYPE` (optional on input) against its family. Any `1.x.y` version is accepted,
/// since clients send the lowest version that holds the fields they use.
pub fn check_data_type(doc: &Value, family: &str) -> Result<()> {
    let Some(dt) = doc.get("DATA_TYPE") else {
        return Ok(());
    };
    let ok = dt.as_str().is_some_and(|s| {
        s.split_once('#').is_some_and(|(name, version)| {
            let parts: Vec<&str> = version.split('.').collect();
            name == family
                && parts.len() == 3
                && parts[0] == "1"
                && parts
                    .iter()
                    .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        })
    });
    if ok {
        Ok(())
    } else {
        Err(EndpointError::BadRequest(format!(
            "DATA_TYPE: expected {family}#1.x.y, got {dt}"
        )))
    }
}

/// Deserialises a document, naming the field that does not fit.
pub fn parse<T: DeserializeOwned>(doc: Value, family: &str) -> Result<T> {
    if !doc.is_object() {
        return Err(EndpointError::BadRequest(format!(
            "the body must be a {family} document (a JSON object)"
        )));
    }
    check_data_type(&doc, family)?;
    serde_path_to_error::deserialize(doc).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        EndpointError::BadRequest(if path == "." {
            inner
        } else {
            format!("{path}: {inner}")
        })
    })
}

/// The `id` of a document the endpoint just produced.
pub fn id_of(doc: &Value) -> Result<uuid::Uuid> {
    doc["id"]
        .as_str()
        .and_then(|s| uuid::Uuid::parse_str(s).ok())
        .ok_or_else(|| EndpointError::Internal("a created document has no id".into()))
}

pub fn to_value<T: Serialize>(doc: &T) -> Value {
    serde_json::to_value(doc).unwrap_or(Value::Null)
}

/// Applies a PATCH (RFC 7396 merge): given properties replace, `null` removes, nested objects merge.
pub fn merge_into(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    b.remove(&k);
                } else {
                    merge_into(b.entry(k).or_insert(Value::Null), v);
                }
            }
        }
        (b, p) => *b = p,
    }
}

/// Refuses a change to a field that cannot change after creation. Absent, or equal to the stored value, is fine.
pub fn immutable(request: &Value, stored: &Value, fields: &[&str]) -> Result<()> {
    for f in fields {
        if let Some(v) = request.get(*f)
            && !v.is_null()
            && !stored.get(*f).is_some_and(|old| same(v, old))
        {
            return Err(EndpointError::BadRequest(format!(
                "{f}: cannot be changed after creation"
            )));
        }
    }
    Ok(())
}

/// Equal values, a boolean sent as `"True"`/`"False"` counting as the boolean (see `ferry_core::endpoint::flag`).
fn same(sent: &Value, stored: &Value) -> bool {
    match (sent, stored) {
        (Value::String(s), Value::Bool(b)) => ferry_core::endpoint::flag::parse(s) == Some(*b),
        _ => sent == stored,
    }
}

/// What a field list means to an update: computed by the server (ignored when sent back) or fixed at creation
/// (refused when changed, kept when a PUT leaves it out).
pub struct Fields<'a> {
    pub computed: &'a [&'a str],
    pub immutable: &'a [&'a str],
}

/// The document a PUT (replace) or PATCH (merge) of `request` makes of `stored`, checked and parsed.
pub fn updated<T: DeserializeOwned>(
    stored: &Value,
    request: Value,
    family: &str,
    fields: Fields<'_>,
    merge: bool,
) -> Result<T> {
    let mut request = request;
    check_data_type(&request, family)?;
    drop_fields(&mut request, fields.computed);
    immutable(&request, stored, fields.immutable)?;
    let value = if merge {
        let mut v = stored.clone();
        merge_into(&mut v, request);
        v
    } else {
        if let Value::Object(m) = &mut request {
            for f in fields.immutable {
                if let Some(old) = stored.get(*f) {
                    m.insert((*f).to_string(), old.clone());
                }
            }
        }
        request
    };
    parse(value, family)
}

/// Drops the fields the server computes, so that a client echoing a document back does not fail or override them.
pub fn drop_fields(doc: &mut Value, fields: &[&str]) {
    if let Value::Object(m) = doc {
        for f in fields {
            m.remove(*f);
        }
    }
}

/// Refuses fields that do not belong to this kind of object (e.g. mapped-only fields on a guest collection).
pub fn refuse_fields(doc: &Value, fields: &[&str], why: &str) -> Result<()> {
    if let Value::Object(m) = doc {
        for f in fields {
            if m.get(*f).is_some_and(|v| !v.is_null()) {
                return Err(EndpointError::BadRequest(format!("{f}: {why}")));
            }
        }
    }
    Ok(())
}

/// A display name as GCS allows it: 1 to 128 characters, no line breaks.
pub fn display_name(name: &str) -> Result<()> {
    let n = name.chars().count();
    if n == 0 || n > 128 || name.contains(['\n', '\r']) {
        return Err(EndpointError::BadRequest(
            "display_name: must be 1 to 128 characters on one line".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn data_types_and_merges() {
        assert!(check_data_type(&json!({}), "role").is_ok());
        assert!(check_data_type(&json!({"DATA_TYPE": "role#1.0.0"}), "role").is_ok());
        assert!(check_data_type(&json!({"DATA_TYPE": "role#1.12.3"}), "role").is_ok());
        for bad in [
            "role#2.0.0",
            "roles#1.0.0",
            "role",
            "role#1.0",
            "role#1.a.0",
        ] {
            let e = check_data_type(&json!({ "DATA_TYPE": bad }), "role").unwrap_err();
            assert!(e.to_string().starts_with("DATA_TYPE:"), "{e}");
        }
        let mut v = json!({"a": 1, "b": {"c": 2, "d": 3}, "e": [1]});
        merge_into(
            &mut v,
            json!({"a": null, "b": {"c": 5}, "e": [2, 3], "f": true}),
        );
        assert_eq!(v, json!({"b": {"c": 5, "d": 3}, "e": [2, 3], "f": true}));
        let stored = json!({"id": "x", "k": 1});
        assert!(immutable(&json!({"id": "x"}), &stored, &["id"]).is_ok());
        assert!(immutable(&json!({"id": "y"}), &stored, &["id"]).is_err());
    }

    #[test]
    fn parse_errors_name_the_field() {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct D {
            #[serde(rename = "DATA_TYPE", default)]
            dt: String,
            flag: bool,
        }
        let e = parse::<D>(json!({"flag": "yes"}), "d").unwrap_err();
        assert!(e.to_string().starts_with("flag:"), "{e}");
        let e = parse::<D>(json!({"flag": true, "colour": 1}), "d").unwrap_err();
        assert!(e.to_string().contains("colour"), "{e}");
        let e = parse::<D>(json!([1]), "d").unwrap_err();
        assert!(e.to_string().contains("JSON object"), "{e}");
    }
}
