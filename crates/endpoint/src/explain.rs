//! `ferry access explain`: for an administrator, every layer of the access check on one path for one caller,
//! with the rule that decided each, so that "why can (not) this person reach this folder" has an answer.

use ferry_core::Identity;
use ferry_core::access::{Caller, Explanation};
use ferry_core::restrictions::Access;
use serde::Serialize;
use uuid::Uuid;

use crate::policy::Grant;
use crate::{Endpoint, Result, data};

#[derive(Debug, Clone, Serialize)]
pub struct LayerLine {
    pub layer: String,
    pub access: Access,
    pub because: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct AccessReport {
    pub collection_id: Uuid,
    pub collection_type: String,
    /// The caller's username, or "anonymous".
    pub caller: String,
    /// The storage account data is reached as; None when there is none.
    pub account: Option<String>,
    pub path: String,
    pub storage_path: Option<String>,
    pub layers: Vec<LayerLine>,
    /// `none`, `read` or `read_write`.
    pub access: Access,
    /// What limited the result: a layer, or why there is no account.
    pub decided_by: String,
    /// Where a symlink on the way leads, with that place's own explanation.
    pub symlink_target: Option<Box<AccessReport>>,
}

impl Endpoint {
    /// Explains access to `path` of `collection` for `identity` (None: anonymous). Reads the storage only to
    /// follow symlinks; writes nothing.
    pub async fn explain(
        &self,
        collection: Uuid,
        path: &str,
        identity: Option<Identity>,
    ) -> Result<AccessReport> {
        let path = data::client_path("path", path)?;
        let c = self.collection(collection).await?;
        let who = match identity {
            Some(i) => Some(self.requester(i).await?),
            None => None,
        };
        let caller_name = who
            .as_ref()
            .map(|w| w.identity.username.clone())
            .unwrap_or_else(|| "anonymous".into());
        let base = AccessReport {
            collection_id: c.id,
            collection_type: c.collection_type.as_str().into(),
            caller: caller_name,
            account: None,
            path: path.clone(),
            storage_path: None,
            layers: vec![],
            access: Access::None,
            decided_by: String::new(),
            symlink_target: None,
        };
        let grant = match self.grant(&c, who.as_ref()).await {
            Ok(g) => g,
            Err(crate::EndpointError::Unauthenticated) => {
                return Ok(AccessReport {
                    decided_by: "a mapped collection is reached through an account; anonymous callers have none".into(),
                    ..base
                });
            }
            Err(e) => return Err(e),
        };
        let (policy, connector, account) = match &*grant {
            Grant::NoAccount(why) => {
                return Ok(AccessReport {
                    decided_by: format!("no storage account: {why}"),
                    ..base
                });
            }
            Grant::Policy {
                policy,
                connector,
                account,
                ..
            } => (policy, connector, account),
        };
        let caller = who
            .as_ref()
            .map(|w| w.caller())
            .unwrap_or(Caller::ANONYMOUS);
        let now = self.now();
        let report = |p: &str, e: Explanation| AccessReport {
            account: Some(account.clone()),
            path: p.to_string(),
            storage_path: Some(e.storage_path.clone()),
            layers: e
                .layers
                .iter()
                .map(|l| LayerLine {
                    layer: l.layer.as_str().into(),
                    access: l.access,
                    because: l.because.clone(),
                })
                .collect(),
            access: e.access,
            decided_by: e
                .limited_by
                .and_then(|l| e.layers.iter().find(|x| x.layer == l))
                .map(|l| format!("{}: {}", l.layer.as_str(), l.because))
                .unwrap_or_default(),
            ..base.clone()
        };
        let e = policy.explain(&caller, &path, now);
        let lexical = e.storage_path.clone();
        let mut out = report(&path, e);
        match connector.resolve(&lexical).await {
            Ok(canonical) if canonical != lexical => {
                out.symlink_target = Some(Box::new(match policy.collection_path(&canonical) {
                    Some(inside) => report(&inside, policy.explain(&caller, &inside, now)),
                    None => AccessReport {
                        storage_path: Some(canonical.clone()),
                        decided_by: "the symbolic link leads outside the collection".into(),
                        ..base.clone()
                    },
                }));
                // Both places must allow it: the result is the lesser of the two.
                if let Some(t) = &out.symlink_target
                    && t.access < out.access
                {
                    out.access = t.access;
                    out.decided_by = format!("via the symbolic link: {}", t.decided_by);
                }
            }
            Ok(_) => {}
            // The check refuses what cannot be followed (a link out of the storage, a loop): so does the report.
            Err(e) => {
                out.access = Access::None;
                out.decided_by = format!("following the path in the storage fails: {e}");
                out.symlink_target = Some(Box::new(AccessReport {
                    decided_by: format!("following the path in the storage fails: {e}"),
                    ..base.clone()
                }));
            }
        }
        Ok(out)
    }
}
