//! The operations roles and users share: inline policies (Put/Get/List/Delete), attached
//! managed policies (Attach/Detach/ListAttached) and tags, written once over [`Entity`].

use berth_iam::Policy;
use berth_store::{Expect, StoreError, Txn};

use super::entities::{self, paginate, write_page, Entity, ManagedPolicy};
use super::wire::{encode_document, IamError, Xml};
use super::{aws_managed, Ctx};
use crate::records::{self, RecordError};

/// At most this many managed policies per role or user (IAM's default quota).
const MAX_ATTACHED: usize = 10;
/// At most this many tags per role or user.
const MAX_TAGS: usize = 50;

/// A policy document's size as IAM counts it: whitespace excluded.
fn size(document: &str) -> usize {
    document.chars().filter(|c| !c.is_whitespace()).count()
}

/// `ListRoles` / `ListUsers`, by name, filtered by `PathPrefix`, each written by `write`
/// into the list `list_name`.
pub async fn list_entities<E: Entity>(
    c: &Ctx,
    list_name: &str,
    write: fn(&mut Xml, &E),
) -> Result<Option<Xml>, IamError> {
    let prefix = c.params.get("PathPrefix").unwrap_or("/");
    let mut all: Vec<E> = records::list_all::<E>(&*c.state.store, &format!("iam/{}/", E::KIND))
        .await?
        .into_iter()
        .map(|(_, e)| e)
        .collect();
    all.retain(|e| e.path().starts_with(prefix));
    let (page, next) = paginate(all, &c.params, |e| e.name().to_ascii_lowercase())?;
    let mut x = Xml::default();
    x.members(list_name, &page, write);
    write_page(&mut x, next);
    Ok(Some(x))
}

/// The named entity and its version, once it is known to have no policies left, as
/// IAM requires before DeleteRole and DeleteUser.
pub async fn deletable<E: Entity>(c: &Ctx) -> Result<(E, u64), IamError> {
    let name = c.params.name(E::NAME_PARAM, 64)?;
    let (e, version) = entities::load::<E>(&*c.state.store, &E::key(name), || E::missing(name)).await?;
    if !e.permissions().inline.is_empty() {
        return Err(IamError::delete_conflict("Cannot delete entity, must delete policies first."));
    }
    if !e.permissions().attached.is_empty() {
        return Err(IamError::delete_conflict("Cannot delete entity, must detach all policies first."));
    }
    Ok((e, version))
}

/// `PutRolePolicy` / `PutUserPolicy`.
pub async fn put_inline<E: Entity>(c: Ctx) -> Result<Option<Xml>, IamError> {
    let name = c.params.name(E::NAME_PARAM, 64)?.to_owned();
    let policy_name = c.params.name("PolicyName", 128)?.to_owned();
    let document = c.params.required("PolicyDocument")?.to_owned();
    Policy::parse(&document).map_err(|e| IamError::malformed(&e))?;
    entities::update::<E>(
        &*c.state.store,
        &E::key(&name),
        || E::missing(&name),
        |e| {
            let inline = &mut e.permissions_mut().inline;
            let others: usize = inline.iter().filter(|(n, _)| **n != policy_name).map(|(_, d)| size(d)).sum();
            if others + size(&document) > E::INLINE_SIZE {
                return Err(IamError::limit_exceeded(format!(
                    "Maximum policy size of {} bytes exceeded for {} {name}",
                    E::INLINE_SIZE,
                    E::KIND
                )));
            }
            inline.insert(policy_name.clone(), document.clone());
            Ok(())
        },
    )
    .await?;
    c.state.iam.authorizer.invalidate();
    Ok(None)
}

fn no_inline<E: Entity>(policy_name: &str) -> IamError {
    IamError::no_such_entity(format!("The {} policy with name {policy_name} cannot be found.", E::KIND))
}

/// `GetRolePolicy` / `GetUserPolicy`.
pub async fn get_inline<E: Entity>(c: Ctx) -> Result<Option<Xml>, IamError> {
    let name = c.params.name(E::NAME_PARAM, 64)?;
    let policy_name = c.params.name("PolicyName", 128)?;
    let (e, _) = entities::load::<E>(&*c.state.store, &E::key(name), || E::missing(name)).await?;
    let document = e.permissions().inline.get(policy_name).ok_or_else(|| no_inline::<E>(policy_name))?;
    let mut x = Xml::default();
    x.leaf(E::NAME_PARAM, e.name()).leaf("PolicyName", policy_name).leaf("PolicyDocument", encode_document(document));
    Ok(Some(x))
}

/// `ListRolePolicies` / `ListUserPolicies`.
pub async fn list_inline<E: Entity>(c: Ctx) -> Result<Option<Xml>, IamError> {
    let name = c.params.name(E::NAME_PARAM, 64)?;
    let (e, _) = entities::load::<E>(&*c.state.store, &E::key(name), || E::missing(name)).await?;
    let names: Vec<String> = e.permissions().inline.keys().cloned().collect();
    let (page, next) = paginate(names, &c.params, Clone::clone)?;
    let mut x = Xml::default();
    x.members("PolicyNames", &page, |x, n| {
        x.text(n);
    });
    write_page(&mut x, next);
    Ok(Some(x))
}

/// `DeleteRolePolicy` / `DeleteUserPolicy`.
pub async fn delete_inline<E: Entity>(c: Ctx) -> Result<Option<Xml>, IamError> {
    let name = c.params.name(E::NAME_PARAM, 64)?.to_owned();
    let policy_name = c.params.name("PolicyName", 128)?.to_owned();
    entities::update::<E>(
        &*c.state.store,
        &E::key(&name),
        || E::missing(&name),
        |e| e.permissions_mut().inline.remove(&policy_name).map(drop).ok_or_else(|| no_inline::<E>(&policy_name)),
    )
    .await?;
    c.state.iam.authorizer.invalidate();
    Ok(None)
}

fn not_attachable(arn: &str) -> IamError {
    IamError::no_such_entity(format!("Policy {arn} does not exist or is not attachable."))
}

/// `AttachRolePolicy` / `AttachUserPolicy`: the entity and the policy are written in one
/// transaction, so a DeletePolicy that raced with it fails instead of leaving a dangling
/// attachment.
pub async fn attach<E: Entity>(c: Ctx) -> Result<Option<Xml>, IamError> {
    let name = c.params.name(E::NAME_PARAM, 64)?.to_owned();
    let arn = c.params.required("PolicyArn")?.to_owned();
    let store = &*c.state.store;
    let aws = aws_managed::document(&arn).is_some();
    for _ in 0..32 {
        let (mut e, version) = entities::load::<E>(store, &E::key(&name), || E::missing(&name)).await?;
        let attached = &mut e.permissions_mut().attached;
        if attached.contains(&arn) {
            return Ok(None);
        }
        if attached.len() >= MAX_ATTACHED {
            return Err(IamError::limit_exceeded(format!(
                "Cannot exceed quota for {}: {MAX_ATTACHED}",
                E::ATTACH_QUOTA
            )));
        }
        attached.push(arn.clone());
        let mut txn = Txn::new().put(E::key(&name), records::encode(&e)?, Expect::Version(version));
        if !aws {
            let key = entities::policy_key(&arn);
            let (policy, pv) = records::get::<ManagedPolicy>(store, &key)
                .await?
                .filter(|(p, _)| p.arn == arn)
                .ok_or_else(|| not_attachable(&arn))?;
            txn = txn.put(key, records::encode(&policy)?, Expect::Version(pv));
        }
        match store.commit(txn).await {
            Ok(_) => {
                c.state.iam.authorizer.invalidate();
                return Ok(None);
            }
            Err(StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(RecordError::from(e).into()),
        }
    }
    Err(RecordError::Store(StoreError::Conflict { key: E::key(&name) }).into())
}

/// `DetachRolePolicy` / `DetachUserPolicy`.
pub async fn detach<E: Entity>(c: Ctx) -> Result<Option<Xml>, IamError> {
    let name = c.params.name(E::NAME_PARAM, 64)?.to_owned();
    let arn = c.params.required("PolicyArn")?.to_owned();
    entities::update::<E>(
        &*c.state.store,
        &E::key(&name),
        || E::missing(&name),
        |e| {
            let attached = &mut e.permissions_mut().attached;
            let before = attached.len();
            attached.retain(|a| *a != arn);
            if attached.len() == before {
                return Err(IamError::no_such_entity(format!("Policy {arn} was not found.")));
            }
            Ok(())
        },
    )
    .await?;
    c.state.iam.authorizer.invalidate();
    Ok(None)
}

/// `ListAttachedRolePolicies` / `ListAttachedUserPolicies`.
pub async fn list_attached<E: Entity>(c: Ctx) -> Result<Option<Xml>, IamError> {
    let name = c.params.name(E::NAME_PARAM, 64)?;
    let (e, _) = entities::load::<E>(&*c.state.store, &E::key(name), || E::missing(name)).await?;
    let prefix = c.params.get("PathPrefix").unwrap_or("/");
    let arns: Vec<String> = e
        .permissions()
        .attached
        .iter()
        .filter(|a| a.split_once(":policy").is_some_and(|(_, p)| p.starts_with(prefix)))
        .cloned()
        .collect();
    let (page, next) = paginate(arns, &c.params, |a| a.rsplit('/').next().unwrap_or_default().to_owned())?;
    let mut x = Xml::default();
    x.members("AttachedPolicies", &page, |x, arn| {
        x.leaf("PolicyName", arn.rsplit('/').next().unwrap_or_default()).leaf("PolicyArn", arn);
    });
    write_page(&mut x, next);
    Ok(Some(x))
}

/// `TagRole` / `TagUser`: a tag with an existing key replaces it.
pub async fn tag<E: Entity>(c: Ctx) -> Result<Option<Xml>, IamError> {
    let name = c.params.name(E::NAME_PARAM, 64)?.to_owned();
    let new = c.params.tags("Tags");
    entities::update::<E>(&*c.state.store, &E::key(&name), || E::missing(&name), |e| merge_tags(e.tags_mut(), &new))
        .await?;
    Ok(None)
}

/// Adds `new` to `tags`, replacing equal keys, within IAM's quota.
pub fn merge_tags(tags: &mut Vec<(String, String)>, new: &[(String, String)]) -> Result<(), IamError> {
    for (k, v) in new {
        match tags.iter_mut().find(|(tk, _)| tk == k) {
            Some(t) => t.1.clone_from(v),
            None => tags.push((k.clone(), v.clone())),
        }
    }
    if tags.len() > MAX_TAGS {
        return Err(IamError::limit_exceeded(format!(
            "The number of tags has reached the maximum limit of {MAX_TAGS}."
        )));
    }
    Ok(())
}

/// `UntagRole` / `UntagUser`.
pub async fn untag<E: Entity>(c: Ctx) -> Result<Option<Xml>, IamError> {
    let name = c.params.name(E::NAME_PARAM, 64)?.to_owned();
    let keys = c.params.list("TagKeys");
    entities::update::<E>(
        &*c.state.store,
        &E::key(&name),
        || E::missing(&name),
        |e| {
            e.tags_mut().retain(|(k, _)| !keys.contains(k));
            Ok(())
        },
    )
    .await?;
    Ok(None)
}

/// `ListRoleTags` / `ListUserTags`.
pub async fn list_tags<E: Entity>(c: Ctx) -> Result<Option<Xml>, IamError> {
    let name = c.params.name(E::NAME_PARAM, 64)?;
    let (e, _) = entities::load::<E>(&*c.state.store, &E::key(name), || E::missing(name)).await?;
    let mut x = Xml::default();
    x.tags(e.tags());
    write_page(&mut x, None);
    Ok(Some(x))
}
