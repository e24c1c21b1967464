//! The IAM entities berth keeps (roles, users, customer-managed policies), their store
//! records, ids and ARNs, and the compare-and-swap update they all go through.

use std::collections::BTreeMap;

use berth_store::{Expect, Store, StoreError, Txn};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::wire::IamError;
use crate::records::{self, RecordError};

/// How often [`update`] retries a write that lost a race.
const MAX_ATTEMPTS: usize = 32;

/// What roles and users share: inline policies by name, attached managed policies by ARN.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Permissions {
    /// Inline policy name -> document (JSON, as sent).
    pub inline: BTreeMap<String, String>,
    /// Attached managed policy ARNs, in attach order.
    pub attached: Vec<String>,
}

/// An IAM role.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Role {
    pub name: String,
    pub id: String,
    pub arn: String,
    pub path: String,
    pub create_date: String,
    /// The trust policy (JSON, as sent).
    pub assume_role_policy_document: String,
    pub description: Option<String>,
    /// Seconds; bounds AssumeRole's DurationSeconds.
    pub max_session_duration: i64,
    pub tags: Vec<(String, String)>,
    pub permissions: Permissions,
}

/// An IAM user.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub name: String,
    pub id: String,
    pub arn: String,
    pub path: String,
    pub create_date: String,
    pub tags: Vec<(String, String)>,
    pub permissions: Permissions,
}

/// One version of a managed policy.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyVersion {
    pub version_id: String,
    pub document: String,
    pub create_date: String,
}

/// A customer-managed policy.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManagedPolicy {
    pub name: String,
    pub id: String,
    pub arn: String,
    pub path: String,
    pub description: Option<String>,
    pub create_date: String,
    pub update_date: String,
    pub default_version_id: String,
    pub versions: Vec<PolicyVersion>,
    pub tags: Vec<(String, String)>,
}

impl ManagedPolicy {
    /// The document of the default version.
    pub fn default_document(&self) -> Option<&str> {
        self.versions.iter().find(|v| v.version_id == self.default_version_id).map(|v| v.document.as_str())
    }
}

/// Store key of role `name`; IAM names are unique case-insensitively.
pub fn role_key(name: &str) -> String {
    Role::key(name)
}

/// Store key of user `name`.
pub fn user_key(name: &str) -> String {
    User::key(name)
}

/// Store key of the managed policy with `arn`.
pub fn policy_key(arn: &str) -> String {
    format!("iam/policy/{}", arn.rsplit('/').next().unwrap_or(arn).to_ascii_lowercase())
}

/// `arn:aws:iam::ACCOUNT:KIND/PATH...NAME`.
pub fn arn(account: &str, kind: &str, path: &str, name: &str) -> String {
    format!("arn:aws:iam::{account}:{kind}{path}{name}")
}

/// A unique id for an entity: `prefix` and 17 characters, 21 in all, as IAM's are.
pub fn new_id(prefix: &str) -> String {
    crate::credentials::random_id(prefix, 17)
}

/// Now, as IAM writes dates: `2026-12-01T18:30:07Z`.
pub fn iso_now() -> String {
    iso(chrono::Utc::now())
}

/// `at` as IAM writes dates.
pub fn iso(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The record at `key`, or `missing()`.
pub async fn load<T: DeserializeOwned>(
    store: &dyn Store,
    key: &str,
    missing: impl FnOnce() -> IamError,
) -> Result<(T, u64), IamError> {
    records::get::<T>(store, key).await?.ok_or_else(missing)
}

/// Read-modify-write of one record under compare-and-swap, retried on conflict:
/// `change` edits the current record (or refuses with an IAM error).
pub async fn update<T: Serialize + DeserializeOwned>(
    store: &dyn Store,
    key: &str,
    missing: impl Fn() -> IamError,
    mut change: impl FnMut(&mut T) -> Result<(), IamError>,
) -> Result<T, IamError> {
    for _ in 0..MAX_ATTEMPTS {
        let (mut value, version) = load::<T>(store, key, &missing).await?;
        change(&mut value)?;
        let txn = Txn::new().put(key, records::encode(&value)?, Expect::Version(version));
        match store.commit(txn).await {
            Ok(_) => return Ok(value),
            Err(StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(RecordError::from(e).into()),
        }
    }
    Err(RecordError::Store(StoreError::Conflict { key: key.to_owned() }).into())
}

/// Creates the record at `key`; `exists()` if there already is one.
pub async fn create<T: Serialize>(
    store: &dyn Store,
    key: &str,
    value: &T,
    exists: impl FnOnce() -> IamError,
) -> Result<(), IamError> {
    match store.commit(Txn::new().put(key, records::encode(value)?, Expect::Absent)).await {
        Ok(_) => Ok(()),
        Err(StoreError::Conflict { .. }) => Err(exists()),
        Err(e) => Err(RecordError::from(e).into()),
    }
}

/// What roles and users have in common, so that the inline-policy, attached-policy and
/// tag operations are written once for both.
pub trait Entity: Serialize + DeserializeOwned + Send + 'static {
    /// `role` or `user`, as in ARNs and messages.
    const KIND: &'static str;
    /// The request parameter naming the entity: `RoleName` or `UserName`.
    const NAME_PARAM: &'static str;
    /// IAM's quota name for attached policies: `PoliciesPerRole` or `PoliciesPerUser`.
    const ATTACH_QUOTA: &'static str;
    /// The aggregate inline policy size IAM allows (non-whitespace characters).
    const INLINE_SIZE: usize;

    /// The store key of the entity named `name`.
    fn key(name: &str) -> String {
        format!("iam/{}/{}", Self::KIND, name.to_ascii_lowercase())
    }
    /// IAM's NoSuchEntity for `name`.
    fn missing(name: &str) -> IamError {
        IamError::no_such_entity(format!("The {} with name {name} cannot be found.", Self::KIND))
    }
    fn name(&self) -> &str;
    fn path(&self) -> &str;
    fn permissions(&self) -> &Permissions;
    fn permissions_mut(&mut self) -> &mut Permissions;
    fn tags(&self) -> &[(String, String)];
    fn tags_mut(&mut self) -> &mut Vec<(String, String)>;
}

/// Implements [`Entity`] for a record with `name`, `path`, `tags` and `permissions`.
macro_rules! entity {
    ($t:ty, $kind:literal, $param:literal, $quota:literal, $size:literal) => {
        impl Entity for $t {
            const KIND: &'static str = $kind;
            const NAME_PARAM: &'static str = $param;
            const ATTACH_QUOTA: &'static str = $quota;
            const INLINE_SIZE: usize = $size;
            fn name(&self) -> &str {
                &self.name
            }
            fn path(&self) -> &str {
                &self.path
            }
            fn permissions(&self) -> &Permissions {
                &self.permissions
            }
            fn permissions_mut(&mut self) -> &mut Permissions {
                &mut self.permissions
            }
            fn tags(&self) -> &[(String, String)] {
                &self.tags
            }
            fn tags_mut(&mut self) -> &mut Vec<(String, String)> {
                &mut self.tags
            }
        }
    };
}

entity!(Role, "role", "RoleName", "PoliciesPerRole", 10240);
entity!(User, "user", "UserName", "PoliciesPerUser", 2048);

/// Deletes the entity at `key` if it is still at `version`, and nothing else changed it.
pub async fn delete(store: &dyn Store, key: &str, version: u64) -> Result<(), IamError> {
    store.commit(Txn::new().delete(key, Expect::Version(version))).await.map_err(RecordError::from)?;
    Ok(())
}

/// Pages through `items` (sorted by `key`) as IAM does: `MaxItems` (1-1000, default
/// 100) and an opaque `Marker`; returns the page and the marker of the next one.
pub fn paginate<T>(
    mut items: Vec<T>,
    params: &super::wire::Params,
    key: impl Fn(&T) -> String,
) -> Result<(Vec<T>, Option<String>), IamError> {
    let max = params.int("MaxItems", 1, 1000)?.unwrap_or(100) as usize;
    items.sort_by_key(&key);
    if let Some(marker) = params.get("Marker") {
        items.retain(|i| key(i).as_str() >= marker);
    }
    let next = items.get(max).map(&key);
    items.truncate(max);
    Ok((items, next))
}

/// Writes `IsTruncated` and `Marker` after a page.
pub fn write_page(x: &mut super::wire::Xml, next: Option<String>) {
    x.leaf("IsTruncated", next.is_some());
    x.opt("Marker", next.as_deref());
}
