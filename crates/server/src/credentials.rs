//! Access keys the server accepts, and the administrator key created on first start.

use std::collections::HashMap;
use std::sync::RwLock;

use berth_store::{Expect, Store, Txn};
use rand::distr::{Alphanumeric, SampleString};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::records::{self, RecordError};

const ADMIN_POINTER: &str = "meta/admin-access-key";

/// A stored access key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessKey {
    /// The public id (`AKIA...`).
    pub access_key_id: String,
    /// The signing secret.
    pub secret_access_key: String,
    /// The principal the key acts as.
    pub principal: String,
    /// When IAM created it (`2026-12-01T18:30:07Z`); absent on the administrator key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_date: Option<String>,
    /// The session token temporary credentials must be presented with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_token: Option<String>,
    /// When temporary credentials stop working, in epoch seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

/// Why a known key may not sign this request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// The session token is missing or not the key's.
    #[error("The security token included in the request is invalid.")]
    InvalidToken,
    /// The temporary credentials have expired.
    #[error("The security token included in the request is expired")]
    Expired,
}

/// The in-memory view of every access key, kept so that SigV4 verification does no I/O.
#[derive(Default)]
pub struct KeyRing {
    keys: RwLock<HashMap<String, AccessKey>>,
}

impl KeyRing {
    /// The secret for `access_key_id`, if the key is known.
    pub fn secret(&self, access_key_id: &str) -> Option<String> {
        self.with(access_key_id, |k| k.secret_access_key.clone())
    }

    /// The principal of a key that has signed a request with `token`, once its session is
    /// checked: a temporary key needs its own token and must not have expired, and a
    /// long-term key takes no token.
    pub fn check_session(&self, access_key_id: &str, token: Option<&str>, now: i64) -> Result<String, SessionError> {
        self.with(access_key_id, |k| {
            if k.session_token.as_deref() != token {
                return Err(SessionError::InvalidToken);
            }
            if k.expires_at.is_some_and(|at| at <= now) {
                return Err(SessionError::Expired);
            }
            Ok(k.principal.clone())
        })
        .unwrap_or(Err(SessionError::InvalidToken))
    }

    /// The ids of temporary keys that expired before `now`.
    pub fn expired(&self, now: i64) -> Vec<String> {
        self.keys
            .read()
            .map(|keys| {
                keys.values()
                    .filter(|k| k.expires_at.is_some_and(|at| at <= now))
                    .map(|k| k.access_key_id.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Forgets a key: it signs nothing from now on.
    pub fn remove(&self, access_key_id: &str) {
        if let Ok(mut keys) = self.keys.write() {
            keys.remove(access_key_id);
        }
    }

    fn with<T>(&self, id: &str, f: impl FnOnce(&AccessKey) -> T) -> Option<T> {
        self.keys.read().ok().and_then(|keys| keys.get(id).map(f))
    }

    /// Accepts `key` from now on (it is already stored).
    pub fn insert(&self, key: AccessKey) {
        if let Ok(mut keys) = self.keys.write() {
            keys.insert(key.access_key_id.clone(), key);
        }
    }

    /// Loads every stored key.
    pub async fn load(&self, store: &dyn Store) -> Result<(), RecordError> {
        for (_, key) in records::list_all::<AccessKey>(store, "accesskey/").await? {
            self.insert(key);
        }
        Ok(())
    }
}

/// The administrator key: read from the store, or created (durably) on first start.
pub async fn ensure_admin(store: &dyn Store, ring: &KeyRing, account: &str) -> Result<AccessKey, RecordError> {
    if let Some((id, _)) = records::get::<String>(store, ADMIN_POINTER).await? {
        if let Some((key, _)) = records::get::<AccessKey>(store, &key_path(&id)).await? {
            ring.insert(key.clone());
            return Ok(key);
        }
    }
    let key = new_key(format!("arn:aws:iam::{account}:root"));
    let txn = Txn::new().put(key_path(&key.access_key_id), records::encode(&key)?, Expect::Absent).put(
        ADMIN_POINTER.to_string(),
        records::encode(&key.access_key_id)?,
        Expect::Absent,
    );
    store.commit(txn).await?;
    ring.insert(key.clone());
    Ok(key)
}

/// The store key of access key `id`.
pub fn key_path(id: &str) -> String {
    format!("accesskey/{id}")
}

/// A fresh long-term key in AWS's format: `AKIA` + 16 upper-case base32 characters, and
/// a 40-character secret.
pub fn new_key(principal: String) -> AccessKey {
    AccessKey {
        access_key_id: random_id("AKIA", 16),
        secret_access_key: Alphanumeric.sample_string(&mut rand::rng(), 40),
        principal,
        create_date: None,
        session_token: None,
        expires_at: None,
    }
}

/// An id as IAM makes them: a four-letter prefix (`AKIA` long-term key, `ASIA` temporary
/// key, `AROA` role, `AIDA` user, `ANPA` policy) and `len` upper-case base32 characters.
pub fn random_id(prefix: &str, len: usize) -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut rng = rand::rng();
    let id: String = (0..len).map(|_| char::from(CHARS[rng.random_range(0..CHARS.len())])).collect();
    format!("{prefix}{id}")
}
