//! Typed reads and compare-and-swap writes of JSON records on the store.
//!
//! Every read-modify-write goes through [`update`], which retries on a CAS conflict, so
//! handlers never write on top of a change they did not see.

use berth_api::model::Failure;
use berth_api::{ApiError, ErrorKind};
use berth_store::{Expect, ListQuery, Store, StoreError, Txn};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// How often [`update`] retries a conflicting write before giving up.
const MAX_ATTEMPTS: usize = 32;

/// A failure reading or writing a record.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// A stored value did not decode; the data dir holds something this build cannot read.
    #[error("record {key} does not decode: {source}")]
    Decode { key: String, source: serde_json::Error },
    /// A value did not encode.
    #[error("encoding a record: {0}")]
    Encode(#[from] serde_json::Error),
}

impl From<RecordError> for ApiError {
    fn from(e: RecordError) -> Self {
        match e {
            RecordError::Store(StoreError::Conflict { key }) => ApiError::new(
                ErrorKind::Conflict,
                format!("A concurrent change to {key} could not be reconciled; retry the request."),
            ),
            other => ApiError::server(other.to_string()),
        }
    }
}

/// Encodes a record value.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, RecordError> {
    Ok(serde_json::to_vec(value)?)
}

fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, RecordError> {
    serde_json::from_slice(bytes).map_err(|source| RecordError::Decode { key: key.to_string(), source })
}

/// The value at `key` with its per-key version.
pub async fn get<T: DeserializeOwned>(store: &dyn Store, key: &str) -> Result<Option<(T, u64)>, RecordError> {
    match store.get(key).await? {
        Some(r) => Ok(Some((decode(&r.key, &r.value)?, r.version))),
        None => Ok(None),
    }
}

/// The records matching `query`, decoded, with their keys.
pub async fn list<T: DeserializeOwned>(store: &dyn Store, query: ListQuery) -> Result<Vec<(String, T)>, RecordError> {
    store.list(query).await?.into_iter().map(|r| Ok((decode(&r.key, &r.value)?, r.key)).map(|(v, k)| (k, v))).collect()
}

/// Every record under `prefix`.
pub async fn list_all<T: DeserializeOwned>(store: &dyn Store, prefix: &str) -> Result<Vec<(String, T)>, RecordError> {
    list(store, ListQuery::prefix(prefix)).await
}

/// Looks up each identifier: the records found, in request order, and a MISSING failure
/// (with the ARN the resource would have) for each of the rest, as ECS's Describe* answer.
pub async fn find_each<T: DeserializeOwned>(
    store: &dyn Store,
    idents: Vec<String>,
    key: impl Fn(&str) -> String,
    arn_for: impl Fn(&str) -> String,
) -> Result<(Vec<T>, Vec<Failure>), RecordError> {
    let mut found = Vec::new();
    let mut failures = Vec::new();
    for ident in idents {
        match get::<T>(store, &key(&ident)).await? {
            Some((value, _)) => found.push(value),
            None => failures.push(Failure { arn: Some(arn_for(&ident)), reason: Some("MISSING".into()), detail: None }),
        }
    }
    Ok((found, failures))
}

/// The CAS expectation for a record read at `version` (`None`: it was absent).
pub fn expect(version: Option<u64>) -> Expect {
    version.map_or(Expect::Absent, Expect::Version)
}

/// What an [`update`] closure decided.
pub enum Decision<T, R> {
    /// Write `T` and answer `R`.
    Write(T, R),
    /// Change nothing and answer `R`.
    Keep(R),
}

/// Read-modify-write of one record under compare-and-swap, retried on conflict.
///
/// `decide` sees the current value (or `None`) and may be called more than once.
pub async fn update<T, R>(
    store: &dyn Store,
    key: &str,
    mut decide: impl FnMut(Option<T>) -> Result<Decision<T, R>, ApiError>,
) -> Result<R, ApiError>
where
    T: Serialize + DeserializeOwned,
{
    for _ in 0..MAX_ATTEMPTS {
        let current = get::<T>(store, key).await?;
        let version = current.as_ref().map(|(_, v)| *v);
        match decide(current.map(|(t, _)| t))? {
            Decision::Keep(r) => return Ok(r),
            Decision::Write(value, r) => {
                let txn = Txn::new().put(key, encode(&value)?, expect(version));
                match store.commit(txn).await {
                    Ok(_) => return Ok(r),
                    Err(StoreError::Conflict { .. }) => continue,
                    Err(e) => return Err(RecordError::from(e).into()),
                }
            }
        }
    }
    Err(RecordError::Store(StoreError::Conflict { key: key.to_string() }).into())
}
