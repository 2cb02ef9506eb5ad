//! Submissions: the `TransferData` and `DeleteData` documents of the Transfer API, parsed and checked before
//! anything is queued. What a task needs later is kept as [`Options`] in the task row.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::checksum::Algorithm;
use crate::error::{Result, TransferError};
use crate::filter::FilterRule;

/// How a transfer decides that a destination file is already up to date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum SyncLevel {
    /// The destination exists.
    Exists = 0,
    /// … and has the source's size.
    Size = 1,
    /// … and is not older than the source.
    Mtime = 2,
    /// … and has the source's checksum.
    Checksum = 3,
}

impl SyncLevel {
    fn from_wire(v: &Value) -> Option<Self> {
        let n = match v {
            Value::Number(n) => n.as_i64()?,
            Value::String(s) => match s.as_str() {
                "exists" => 0,
                "size" => 1,
                "mtime" => 2,
                "checksum" => 3,
                s => s.parse().ok()?,
            },
            _ => return None,
        };
        Some(match n {
            0 => SyncLevel::Exists,
            1 => SyncLevel::Size,
            2 => SyncLevel::Mtime,
            3 => SyncLevel::Checksum,
            _ => return None,
        })
    }
}

/// A task's settings, as the worker reads them back from the task row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Options {
    pub sync_level: Option<SyncLevel>,
    pub verify_checksum: bool,
    pub preserve_timestamp: bool,
    pub encrypt_data: bool,
    pub skip_source_errors: bool,
    pub fail_on_quota_errors: bool,
    pub delete_destination_extra: bool,
    pub filter_rules: Vec<FilterRule>,
    pub notify_on_succeeded: bool,
    pub notify_on_failed: bool,
    pub notify_on_inactive: bool,
    /// Files copied at once (`perf_cc`), and ranges of one large file at once (`perf_p`); None: Ferry's defaults.
    pub concurrency: Option<u32>,
    pub parallelism: Option<u32>,
    /// Delete tasks.
    pub recursive: bool,
    pub ignore_missing: bool,
    pub interpret_globs: bool,
}

/// A checked submission, ready to be stored.
#[derive(Debug, Clone)]
pub struct Submission {
    pub submission_id: String,
    pub label: Option<String>,
    pub deadline: Option<i64>,
    pub source: Uuid,
    pub destination: Option<Uuid>,
    pub options: Options,
    pub items: Vec<Item>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub source_path: String,
    /// None for delete items.
    pub destination_path: Option<String>,
    pub recursive: bool,
    pub checksum_algorithm: Option<Algorithm>,
    pub external_checksum: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TransferDoc {
    #[serde(rename = "DATA_TYPE")]
    data_type: Option<String>,
    #[serde(rename = "DATA", default)]
    data: Vec<TransferItemDoc>,
    source_endpoint: String,
    destination_endpoint: String,
    label: Option<String>,
    submission_id: Option<String>,
    deadline: Option<String>,
    source_local_user: Option<String>,
    destination_local_user: Option<String>,
    verify_checksum: Option<bool>,
    preserve_timestamp: Option<bool>,
    encrypt_data: Option<bool>,
    skip_source_errors: Option<bool>,
    fail_on_quota_errors: Option<bool>,
    delete_destination_extra: Option<bool>,
    notify_on_succeeded: Option<bool>,
    notify_on_failed: Option<bool>,
    notify_on_inactive: Option<bool>,
    sync_level: Option<Value>,
    #[serde(default)]
    filter_rules: Vec<FilterRule>,
    recursive_symlinks: Option<String>,
    store_base_path_info: Option<bool>,
    perf_cc: Option<u32>,
    perf_p: Option<u32>,
    perf_pp: Option<u32>,
    perf_udt: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TransferItemDoc {
    #[serde(rename = "DATA_TYPE")]
    data_type: Option<String>,
    source_path: String,
    destination_path: String,
    #[serde(default)]
    recursive: Option<bool>,
    external_checksum: Option<String>,
    checksum_algorithm: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteDoc {
    #[serde(rename = "DATA_TYPE")]
    data_type: Option<String>,
    #[serde(rename = "DATA", default)]
    data: Vec<DeleteItemDoc>,
    endpoint: String,
    label: Option<String>,
    submission_id: Option<String>,
    deadline: Option<String>,
    local_user: Option<String>,
    recursive: Option<bool>,
    ignore_missing: Option<bool>,
    interpret_globs: Option<bool>,
    notify_on_succeeded: Option<bool>,
    notify_on_failed: Option<bool>,
    notify_on_inactive: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteItemDoc {
    #[serde(rename = "DATA_TYPE")]
    data_type: Option<String>,
    path: String,
}

/// The most items one submission may hold. Each becomes a row and a check before anything is queued; larger jobs
/// are several tasks, or recursive items. (Globus documents no figure; the 1 MiB body limit alone would let about
/// 20,000 short items through, so the cap is what bounds the work of one request.)
pub const MAX_ITEMS: usize = 10_000;

/// Refuses a submission with more than [`MAX_ITEMS`] items, naming the cap.
fn within_cap(n: usize) -> Result<()> {
    if n > MAX_ITEMS {
        return Err(TransferError::bad(format!(
            "DATA: {n} items; a submission holds at most {MAX_ITEMS} (split it into several tasks, or use recursive \
             items for folders)"
        )));
    }
    Ok(())
}

fn parse_doc<T: serde::de::DeserializeOwned>(body: &Value) -> Result<T> {
    serde_path_to_error::deserialize(body).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        TransferError::bad(if path == "." {
            format!("invalid document: {inner}")
        } else {
            format!("{path}: {inner}")
        })
    })
}

fn expect_type(field: &str, got: &Option<String>, want: &str) -> Result<()> {
    match got.as_deref() {
        None => Ok(()),
        Some(t) if t == want => Ok(()),
        Some(t) => Err(TransferError::bad(format!(
            "{field}: expected '{want}', got '{t}'"
        ))),
    }
}

fn collection_id(field: &str, v: &str) -> Result<Uuid> {
    Uuid::parse_str(v.trim())
        .map_err(|_| TransferError::bad(format!("{field}: '{v}' is not a collection id")))
}

/// A path as a client sends it: absolute, or in the `~/` forms that mean the default folder.
fn client_path(field: &str, p: &str) -> Result<String> {
    let home = p == "~" || p.starts_with("~/") || p == "/~" || p.starts_with("/~/");
    if !p.starts_with('/') && !home {
        return Err(TransferError::bad(format!(
            "{field}: '{p}' is not an absolute path (paths start with / or ~/)"
        )));
    }
    if home {
        return Ok(p.to_string());
    }
    ferry_core::path::normalize(p).map_err(|e| TransferError::bad(format!("{field}: {e}")))
}

fn deadline(v: &Option<String>, now: i64) -> Result<Option<i64>> {
    let Some(s) = v else { return Ok(None) };
    let t = ferry_core::time::parse_iso8601(s)
        .ok_or_else(|| TransferError::bad(format!("deadline: '{s}' is not an ISO 8601 time")))?;
    if t <= now {
        return Err(TransferError::bad(format!("deadline: {s} is in the past")));
    }
    Ok(Some(t))
}

fn submission_id(v: Option<String>) -> Result<String> {
    match v {
        None => Ok(Uuid::new_v4().to_string()),
        Some(s) if s.is_empty() || s.len() > 128 => Err(TransferError::bad(
            "submission_id: must be 1 to 128 characters (get one from GET /submission_id)",
        )),
        Some(s) => Ok(s),
    }
}

fn label(v: Option<String>) -> Result<Option<String>> {
    match v {
        Some(l) if l.chars().count() > 128 => {
            Err(TransferError::bad("label: at most 128 characters"))
        }
        Some(l) if l.chars().any(char::is_control) => Err(TransferError::bad(
            "label: control characters are not allowed",
        )),
        l => Ok(l),
    }
}

fn no_local_user(field: &str, v: &Option<String>) -> Result<()> {
    match v {
        None => Ok(()),
        Some(_) => Err(TransferError::bad(format!(
            "{field}: Ferry maps each identity to its storage account itself; choosing a local user is not supported"
        ))),
    }
}

fn positive(field: &str, v: Option<u32>, max: u32) -> Result<Option<u32>> {
    match v {
        Some(n) if n == 0 || n > max => Err(TransferError::bad(format!(
            "{field}: must be between 1 and {max}"
        ))),
        v => Ok(v),
    }
}

pub fn parse_transfer(body: &Value, now: i64) -> Result<Submission> {
    let d: TransferDoc = parse_doc(body)?;
    expect_type("DATA_TYPE", &d.data_type, "transfer")?;
    if d.data.is_empty() {
        return Err(TransferError::BadRequest {
            code: "ClientError.BadRequest.NoTransferItems",
            message: "A transfer requires at least one item".into(),
        });
    }
    within_cap(d.data.len())?;
    no_local_user("source_local_user", &d.source_local_user)?;
    no_local_user("destination_local_user", &d.destination_local_user)?;
    if let Some(r) = &d.recursive_symlinks
        && r != "ignore"
    {
        return Err(TransferError::bad(format!(
            "recursive_symlinks: only 'ignore' is supported (symbolic links inside a copied folder are skipped), not '{r}'"
        )));
    }
    let _ = (d.store_base_path_info, d.perf_pp, d.perf_udt);
    let sync_level = match &d.sync_level {
        None | Some(Value::Null) => None,
        Some(v) => Some(SyncLevel::from_wire(v).ok_or_else(|| {
            TransferError::bad(format!(
                "sync_level: {v} is not a sync level (0 exists, 1 size, 2 mtime, 3 checksum)"
            ))
        })?),
    };
    for (i, r) in d.filter_rules.iter().enumerate() {
        if r.data_type != "filter_rule" {
            return Err(TransferError::bad(format!(
                "filter_rules[{i}].DATA_TYPE: expected 'filter_rule'"
            )));
        }
        if r.name.is_empty() || r.name.contains('/') {
            return Err(TransferError::bad(format!(
                "filter_rules[{i}].name: a pattern for one name (no '/'), not '{}'",
                r.name
            )));
        }
    }
    let delete_destination_extra = d.delete_destination_extra.unwrap_or(false);
    let mut items = Vec::with_capacity(d.data.len());
    for (i, it) in d.data.into_iter().enumerate() {
        expect_type(
            &format!("DATA[{i}].DATA_TYPE"),
            &it.data_type,
            "transfer_item",
        )?;
        let recursive = it.recursive.unwrap_or(false);
        if delete_destination_extra && !recursive {
            return Err(TransferError::bad(format!(
                "DATA[{i}]: delete_destination_extra needs recursive items"
            )));
        }
        let checksum_algorithm = match &it.checksum_algorithm {
            None => None,
            Some(a) => Some(Algorithm::parse(a).ok_or_else(|| {
                TransferError::bad(format!(
                    "DATA[{i}].checksum_algorithm: '{a}' is not supported (one of {})",
                    Algorithm::all()
                        .iter()
                        .map(|a| a.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?),
        };
        if let Some(sum) = &it.external_checksum {
            let alg = checksum_algorithm.unwrap_or(Algorithm::Md5);
            if recursive {
                return Err(TransferError::bad(format!(
                    "DATA[{i}].external_checksum: only for a file, not a recursive item"
                )));
            }
            if !alg.valid_digest(sum) {
                return Err(TransferError::bad(format!(
                    "DATA[{i}].external_checksum: not a {} checksum in hex",
                    alg.name()
                )));
            }
        }
        items.push(Item {
            source_path: client_path(&format!("DATA[{i}].source_path"), &it.source_path)?,
            destination_path: Some(client_path(
                &format!("DATA[{i}].destination_path"),
                &it.destination_path,
            )?),
            recursive,
            // An external checksum without an algorithm is MD5, as in Globus.
            checksum_algorithm: checksum_algorithm
                .or(it.external_checksum.as_ref().map(|_| Algorithm::Md5)),
            external_checksum: it.external_checksum.map(|s| s.to_ascii_lowercase()),
        });
    }
    Ok(Submission {
        submission_id: submission_id(d.submission_id)?,
        label: label(d.label)?,
        deadline: deadline(&d.deadline, now)?,
        source: collection_id("source_endpoint", &d.source_endpoint)?,
        destination: Some(collection_id(
            "destination_endpoint",
            &d.destination_endpoint,
        )?),
        options: Options {
            sync_level,
            verify_checksum: d.verify_checksum.unwrap_or(true),
            preserve_timestamp: d.preserve_timestamp.unwrap_or(false),
            encrypt_data: d.encrypt_data.unwrap_or(false),
            skip_source_errors: d.skip_source_errors.unwrap_or(false),
            fail_on_quota_errors: d.fail_on_quota_errors.unwrap_or(false),
            delete_destination_extra,
            filter_rules: d.filter_rules,
            notify_on_succeeded: d.notify_on_succeeded.unwrap_or(true),
            notify_on_failed: d.notify_on_failed.unwrap_or(true),
            notify_on_inactive: d.notify_on_inactive.unwrap_or(true),
            concurrency: positive("perf_cc", d.perf_cc, 64)?,
            parallelism: positive("perf_p", d.perf_p, 16)?,
            recursive: false,
            ignore_missing: false,
            interpret_globs: false,
        },
        items,
    })
}

pub fn parse_delete(body: &Value, now: i64) -> Result<Submission> {
    let d: DeleteDoc = parse_doc(body)?;
    expect_type("DATA_TYPE", &d.data_type, "delete")?;
    if d.data.is_empty() {
        return Err(TransferError::BadRequest {
            code: "ClientError.BadRequest.NoDeleteItems",
            message: "A delete requires at least one item".into(),
        });
    }
    within_cap(d.data.len())?;
    no_local_user("local_user", &d.local_user)?;
    let recursive = d.recursive.unwrap_or(false);
    let mut items = Vec::with_capacity(d.data.len());
    for (i, it) in d.data.into_iter().enumerate() {
        expect_type(
            &format!("DATA[{i}].DATA_TYPE"),
            &it.data_type,
            "delete_item",
        )?;
        let path = client_path(&format!("DATA[{i}].path"), &it.path)?;
        if path == "/" {
            return Err(TransferError::bad(format!(
                "DATA[{i}].path: the root of a collection cannot be deleted"
            )));
        }
        items.push(Item {
            source_path: path,
            destination_path: None,
            recursive,
            checksum_algorithm: None,
            external_checksum: None,
        });
    }
    Ok(Submission {
        submission_id: submission_id(d.submission_id)?,
        label: label(d.label)?,
        deadline: deadline(&d.deadline, now)?,
        source: collection_id("endpoint", &d.endpoint)?,
        destination: None,
        options: Options {
            sync_level: None,
            verify_checksum: false,
            preserve_timestamp: false,
            encrypt_data: false,
            skip_source_errors: false,
            fail_on_quota_errors: false,
            delete_destination_extra: false,
            filter_rules: Vec::new(),
            notify_on_succeeded: d.notify_on_succeeded.unwrap_or(true),
            notify_on_failed: d.notify_on_failed.unwrap_or(true),
            notify_on_inactive: d.notify_on_inactive.unwrap_or(true),
            concurrency: None,
            parallelism: None,
            recursive,
            ignore_missing: d.ignore_missing.unwrap_or(false),
            interpret_globs: d.interpret_globs.unwrap_or(false),
        },
        items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SRC: &str = "2b1d1e36-0000-4000-8000-000000000001";
    const DST: &str = "2b1d1e36-0000-4000-8000-000000000002";

    fn transfer(extra: Value) -> Value {
        let mut v = json!({"DATA_TYPE": "transfer", "source_endpoint": SRC, "destination_endpoint": DST,
            "DATA": [{"DATA_TYPE": "transfer_item", "source_path": "/a/", "destination_path": "/b/", "recursive": true}]});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        v
    }

    fn code_of(r: Result<Submission>) -> (&'static str, String) {
        match r {
            Err(TransferError::BadRequest { code, message }) => (code, message),
            other => panic!("expected a bad request, got {other:?}"),
        }
    }

    #[test]
    fn the_sdk_document_parses_with_defaults() {
        let s = parse_transfer(&transfer(json!({"sync_level": 3, "label": "L",
            "filter_rules": [{"DATA_TYPE": "filter_rule", "method": "exclude", "name": "*.tmp", "type": "file"}]})), 0)
        .unwrap();
        assert_eq!(s.options.sync_level, Some(SyncLevel::Checksum));
        assert!(s.options.verify_checksum && s.options.notify_on_failed);
        assert_eq!(s.items[0].source_path, "/a");
        assert_eq!(s.label.as_deref(), Some("L"));
        let s = parse_transfer(&transfer(json!({"sync_level": "mtime"})), 0).unwrap();
        assert_eq!(s.options.sync_level, Some(SyncLevel::Mtime));
    }

    #[test]
    fn bad_documents_name_the_problem() {
        let (code, _) = code_of(parse_transfer(&transfer(json!({"DATA": []})), 0));
        assert_eq!(code, "ClientError.BadRequest.NoTransferItems");
        for (doc, needle) in [
            (json!({"sync_level": 4}), "sync_level"),
            (json!({"sync_level": "sometimes"}), "sync_level"),
            (json!({"deadline": "2001-01-01T00:00:00Z"}), "deadline"),
            (json!({"deadline": "soon"}), "deadline"),
            (json!({"source_endpoint": "nope"}), "source_endpoint"),
            (json!({"colour": "red"}), "colour"),
            (
                json!({"DATA": [{"source_path": "rel/a", "destination_path": "/b"}]}),
                "source_path",
            ),
            (
                json!({"DATA": [{"source_path": "/a", "destination_path": "/b", "checksum_algorithm": "CRC99"}]}),
                "checksum_algorithm",
            ),
            (
                json!({"DATA": [{"source_path": "/a", "destination_path": "/b", "external_checksum": "xyz"}]}),
                "external_checksum",
            ),
            (json!({"perf_cc": 0}), "perf_cc"),
        ] {
            let (code, message) = code_of(parse_transfer(&transfer(doc.clone()), 2_000_000_000));
            assert_eq!(code, "ClientError.BadRequest", "{doc}");
            assert!(message.contains(needle), "{doc}: {message}");
        }
    }

    #[test]
    fn delete_documents() {
        let d = json!({"DATA_TYPE": "delete", "endpoint": SRC, "recursive": true, "ignore_missing": true,
            "DATA": [{"DATA_TYPE": "delete_item", "path": "/x/"}]});
        let s = parse_delete(&d, 0).unwrap();
        assert!(s.options.recursive && s.options.ignore_missing);
        assert_eq!(s.items[0].source_path, "/x");
        let (code, _) = code_of(parse_delete(
            &json!({"DATA_TYPE": "delete", "endpoint": SRC, "DATA": []}),
            0,
        ));
        assert_eq!(code, "ClientError.BadRequest.NoDeleteItems");
        let (_, m) = code_of(parse_delete(
            &json!({"endpoint": SRC, "DATA": [{"path": "/"}]}),
            0,
        ));
        assert!(m.contains("root"));
    }
}
