//! Access keys of users: CreateAccessKey, ListAccessKeys, DeleteAccessKey. A key is
//! stored beside the administrator's (`accesskey/ID`) and put in the server's key ring
//! in the same step, so it signs requests at once.

use berth_store::{Expect, StoreError, Txn};

use super::entities::{self, Entity, User};
use super::users::target_name;
use super::wire::{IamError, Xml};
use super::Ctx;
use crate::credentials::{self, AccessKey};
use crate::records::{self, RecordError};
use crate::state::State;

/// IAM's quota of access keys per user.
const MAX_KEYS: usize = 2;

/// Every long-term key of the user with `arn`.
pub async fn of_user(state: &State, arn: &str) -> Result<Vec<AccessKey>, RecordError> {
    let keys = records::list_all::<AccessKey>(&*state.store, "accesskey/").await?;
    Ok(keys.into_iter().map(|(_, k)| k).filter(|k| k.principal == arn && k.session_token.is_none()).collect())
}

/// `CreateAccessKey`: the user's record is rewritten in the same transaction, so a
/// DeleteUser that raced with it fails instead of leaving a key without a user.
pub async fn create(c: Ctx) -> Result<Option<Xml>, IamError> {
    let name = target_name(&c)?;
    let store = &*c.state.store;
    for _ in 0..32 {
        let (user, version) = entities::load::<User>(store, &User::key(&name), || User::missing(&name)).await?;
        if of_user(&c.state, &user.arn).await?.len() >= MAX_KEYS {
            return Err(IamError::limit_exceeded(format!("Cannot exceed quota for AccessKeysPerUser: {MAX_KEYS}")));
        }
        let mut key = credentials::new_key(user.arn.clone());
        key.create_date = Some(entities::iso_now());
        let txn = Txn::new()
            .put(credentials::key_path(&key.access_key_id), records::encode(&key)?, Expect::Absent)
            .put(User::key(&name), records::encode(&user)?, Expect::Version(version));
        match store.commit(txn).await {
            Ok(_) => {
                c.state.keys.insert(key.clone());
                let mut x = Xml::default();
                x.node("AccessKey", |x| {
                    x.leaf("UserName", &user.name)
                        .leaf("AccessKeyId", &key.access_key_id)
                        .leaf("Status", "Active")
                        .leaf("SecretAccessKey", &key.secret_access_key)
                        .opt("CreateDate", key.create_date.as_deref());
                });
                return Ok(Some(x));
            }
            Err(StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(RecordError::from(e).into()),
        }
    }
    Err(RecordError::Store(StoreError::Conflict { key: User::key(&name) }).into())
}

/// `ListAccessKeys`.
pub async fn list(c: Ctx) -> Result<Option<Xml>, IamError> {
    let name = target_name(&c)?;
    let (user, _) = entities::load::<User>(&*c.state.store, &User::key(&name), || User::missing(&name)).await?;
    let mut keys = of_user(&c.state, &user.arn).await?;
    keys.sort_by(|a, b| a.create_date.cmp(&b.create_date));
    let mut x = Xml::default();
    x.members("AccessKeyMetadata", &keys, |x, k| {
        x.leaf("UserName", &user.name)
            .leaf("AccessKeyId", &k.access_key_id)
            .leaf("Status", "Active")
            .opt("CreateDate", k.create_date.as_deref());
    });
    entities::write_page(&mut x, None);
    Ok(Some(x))
}

/// `DeleteAccessKey`: the key stops signing at once.
pub async fn delete(c: Ctx) -> Result<Option<Xml>, IamError> {
    let name = target_name(&c)?;
    let id = c.params.required("AccessKeyId")?.to_owned();
    let (user, _) = entities::load::<User>(&*c.state.store, &User::key(&name), || User::missing(&name)).await?;
    let missing = || IamError::no_such_entity(format!("The Access Key with id {id} cannot be found."));
    let path = credentials::key_path(&id);
    let (key, version) = records::get::<AccessKey>(&*c.state.store, &path).await?.ok_or_else(missing)?;
    if key.principal != user.arn || key.session_token.is_some() {
        return Err(missing());
    }
    entities::delete(&*c.state.store, &path, version).await?;
    c.state.keys.remove(&id);
    Ok(None)
}
