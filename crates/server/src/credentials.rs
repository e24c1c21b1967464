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

    /// The principal ARN `access_key_id` acts as.
    pub fn principal(&self, access_key_id: &str) -> Option<String> {
        self.with(access_key_id, |k| k.principal.clone())
    }

    fn with<T>(&self, id: &str, f: impl FnOnce(&AccessKey) -> T) -> Option<T> {
        self.keys.read().ok().and_then(|keys| keys.get(id).map(f))
    }

    fn insert(&self, key: AccessKey) {
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

fn key_path(id: &str) -> String {
    format!("accesskey/{id}")
}

/// A fresh key in AWS's format: `AKIA` + 16 upper-case alphanumerics, and a 40-character secret.
fn new_key(principal: String) -> AccessKey {
    let mut rng = rand::rng();
    let id: String = (0..16)
        .map(|_| {
            const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
            char::from(CHARS[rng.random_range(0..CHARS.len())])
        })
        .collect();
    AccessKey {
        access_key_id: format!("AKIA{id}"),
        secret_access_key: Alphanumeric.sample_string(&mut rng, 40),
        principal,
    }
}
