//! The Secrets Manager API subset berth serves (`X-Amz-Target: secretsmanager.*`, SigV4
//! service `secretsmanager`): CreateSecret, GetSecretValue, PutSecretValue, DescribeSecret,
//! ListSecrets and DeleteSecret, and the resolution of a task's secrets for its agent
//! ([`task`]).
//!
//! # Behavior
//!
//! - A secret is one store record (`secrets/secret/<name>`) holding its versions, so every
//!   change is one compare-and-swap and durable when answered. Its ARN is AWS's:
//!   `arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-XXXXXX` with six random characters.
//! - A `SecretId` is a name, the full ARN, or the ARN without its random suffix.
//! - A new value becomes `AWSCURRENT`, the one before `AWSPREVIOUS`; older versions (no
//!   label left) are dropped. A `ClientRequestToken` already used is idempotent for the
//!   same value and `ResourceExistsException` for another, as on AWS.
//! - DeleteSecret without `ForceDeleteWithoutRecovery` schedules the deletion (7 to 30
//!   days, default 30): the secret is then refused with InvalidRequestException except by
//!   DescribeSecret, and hidden from ListSecrets unless `IncludePlannedDeletion`. Once the
//!   date passes the secret reads as absent and its name is free again.
//!
//! # Limitations
//!
//! No KMS (values are stored as given, in the server's store), no rotation, replication,
//! resource policies, RestoreSecret or UpdateSecret. PutSecretValue accepts only the default
//! `AWSCURRENT` label. ListSecrets filters by `name` prefix only.

mod api;
pub mod task;

use berth_api::secrets_model::{ops, Tag};
use berth_api::{ApiError, ErrorKind};
use rand::distr::{Alphanumeric, SampleString};
use serde::{Deserialize, Serialize};

use crate::operations::Operations;
use crate::records;
use crate::state::{now, State};

/// The staging label of a secret's current value.
pub const AWSCURRENT: &str = "AWSCURRENT";
/// The staging label of the value before it.
const AWSPREVIOUS: &str = "AWSPREVIOUS";

/// Adds every Secrets Manager operation to the table.
pub fn operations(t: &mut Operations) {
    t.add::<ops::CreateSecret, _, _>(api::create);
    t.add::<ops::GetSecretValue, _, _>(api::get_value);
    t.add::<ops::PutSecretValue, _, _>(api::put_value);
    t.add::<ops::DescribeSecret, _, _>(api::describe);
    t.add::<ops::ListSecrets, _, _>(api::list);
    t.add::<ops::DeleteSecret, _, _>(api::delete);
}

/// A stored secret with its versions.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretRecord {
    pub name: String,
    pub arn: String,
    pub description: Option<String>,
    #[serde(default)]
    pub tags: Vec<Tag>,
    /// Epoch seconds, the API's time unit.
    pub created: f64,
    pub last_changed: f64,
    /// When a scheduled deletion takes effect.
    pub deletion_date: Option<f64>,
    pub versions: Vec<Version>,
}

/// One version of a secret's value.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Version {
    pub id: String,
    pub string: Option<String>,
    /// Base64, as on the wire.
    pub binary: Option<String>,
    pub created: f64,
    pub stages: Vec<String>,
}

impl std::fmt::Debug for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Version").field("id", &self.id).field("stages", &self.stages).finish_non_exhaustive()
    }
}

impl SecretRecord {
    /// Whether a deletion is scheduled (and not yet done).
    fn scheduled_for_deletion(&self) -> bool {
        self.deletion_date.is_some()
    }

    /// Whether its scheduled deletion has taken effect by `now`: it then reads as absent.
    fn deleted_by(&self, now: f64) -> bool {
        self.deletion_date.is_some_and(|d| d <= now)
    }

    /// The version `id` names, else the one labelled `stage` (default AWSCURRENT).
    pub fn version(&self, id: Option<&str>, stage: Option<&str>) -> Result<&Version, ApiError> {
        let found = match id {
            Some(id) => {
                self.versions.iter().find(|v| v.id == id && stage.is_none_or(|s| v.stages.iter().any(|x| x == s)))
            }
            None => {
                let stage = stage.unwrap_or(AWSCURRENT);
                self.versions.iter().find(|v| v.stages.iter().any(|s| s == stage))
            }
        };
        found.ok_or_else(|| {
            ApiError::new(
                ErrorKind::ResourceNotFound,
                format!(
                    "Secrets Manager can't find the specified secret value for {}",
                    id.map_or_else(
                        || format!("staging label: {}", stage.unwrap_or(AWSCURRENT)),
                        |id| format!("VersionId: {id}")
                    )
                ),
            )
        })
    }

    /// Adds `version` as AWSCURRENT; the current one becomes AWSPREVIOUS and the
    /// previous one, left without a label, is dropped.
    fn push(&mut self, version: Version) {
        self.versions.retain(|v| !v.stages.iter().any(|s| s == AWSPREVIOUS));
        for v in &mut self.versions {
            for s in &mut v.stages {
                if s == AWSCURRENT {
                    AWSPREVIOUS.clone_into(s);
                }
            }
        }
        self.last_changed = version.created;
        self.versions.push(version);
    }
}

pub fn key(name: &str) -> String {
    format!("secrets/secret/{name}")
}

const PREFIX: &str = "secrets/secret/";

/// `arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-XXXXXX`.
fn new_arn(state: &State, region: &str, name: &str) -> String {
    let suffix = Alphanumeric.sample_string(&mut rand::rng(), 6);
    format!("arn:aws:secretsmanager:{region}:{}:secret:{name}-{suffix}", state.account)
}

fn not_found() -> ApiError {
    ApiError::new(ErrorKind::ResourceNotFound, "Secrets Manager can't find the specified secret.")
}

fn marked_for_deletion() -> ApiError {
    ApiError::new(
        ErrorKind::InvalidRequest,
        "You can't perform this operation on the secret because it was marked for deletion.",
    )
}

/// The names a `SecretId` may stand for, most specific first: a full ARN's name without
/// its random suffix, a partial ARN's name, or a plain name.
fn candidates(id: &str) -> Vec<&str> {
    let Some((_, rest)) = id.split_once(":secret:").filter(|(head, _)| head.starts_with("arn:")) else {
        return vec![id];
    };
    let without_suffix =
        rest.len().checked_sub(7).filter(|&i| rest.as_bytes().get(i) == Some(&b'-')).and_then(|i| rest.get(..i));
    without_suffix.into_iter().chain([rest]).collect()
}

/// The live secret `id` names with its store version (a secret whose deletion date has
/// passed reads as absent), or ResourceNotFoundException.
async fn find(state: &State, id: &str) -> Result<(SecretRecord, u64), ApiError> {
    let now = now();
    for name in candidates(id) {
        let Some((secret, version)) = records::get::<SecretRecord>(&*state.store, &key(name)).await? else {
            continue;
        };
        // An ARN, full or partial, must be this secret's (its region, account and suffix).
        let arn_matches = !id.starts_with("arn:") || secret.arn.starts_with(id);
        if arn_matches && !secret.deleted_by(now) {
            return Ok((secret, version));
        }
    }
    Err(not_found())
}

/// The secret `id` names, refused when its deletion is scheduled.
pub async fn find_live(state: &State, id: &str) -> Result<SecretRecord, ApiError> {
    let (secret, _) = find(state, id).await?;
    if secret.scheduled_for_deletion() {
        return Err(marked_for_deletion());
    }
    Ok(secret)
}

/// The resource a Secrets Manager call acts on, for authorization: the ARN of the secret
/// it names (looked up when it names it by name), else one made of the name (CreateSecret,
/// a missing secret), else `*` (ListSecrets).
pub async fn resource(state: &State, region: &str, id: Option<&str>) -> String {
    let Some(id) = id else { return "*".to_owned() };
    match find(state, id).await {
        Ok((secret, _)) => secret.arn,
        Err(_) if id.starts_with("arn:") => id.to_owned(),
        Err(_) => format!("arn:aws:secretsmanager:{region}:{}:secret:{id}", state.account),
    }
}

#[cfg(test)]
mod tests;
