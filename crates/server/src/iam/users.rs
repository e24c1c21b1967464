//! Users: CreateUser, GetUser, ListUsers, DeleteUser.

use super::authorize::Identity;
use super::entities::{self, Entity, User};
use super::wire::{IamError, Xml};
use super::{access_keys, Ctx};

fn write(x: &mut Xml, u: &User) {
    x.leaf("Path", &u.path)
        .leaf("UserName", &u.name)
        .leaf("UserId", &u.id)
        .leaf("Arn", &u.arn)
        .leaf("CreateDate", &u.create_date);
    if !u.tags.is_empty() {
        x.tags(&u.tags);
    }
}

fn user_result(u: &User) -> Option<Xml> {
    let mut x = Xml::default();
    x.node("User", |x| write(x, u));
    Some(x)
}

/// `CreateUser`.
pub async fn create(c: Ctx) -> Result<Option<Xml>, IamError> {
    let name = c.params.name("UserName", 64)?.to_owned();
    let path = c.params.path()?;
    let mut tags = Vec::new();
    super::permissions::merge_tags(&mut tags, &c.params.tags("Tags"))?;
    let user = User {
        id: entities::new_id("AIDA"),
        arn: entities::arn(&c.state.account, "user", &path, &name),
        path,
        create_date: entities::iso_now(),
        tags,
        permissions: Default::default(),
        name,
    };
    entities::create(&*c.state.store, &User::key(&user.name), &user, || {
        IamError::already_exists(format!("User with name {} already exists.", user.name))
    })
    .await?;
    c.state.iam.authorizer.invalidate();
    Ok(user_result(&user))
}

/// The user a request names with `UserName`, else the calling user itself.
pub fn target_name(c: &Ctx) -> Result<String, IamError> {
    if c.params.get("UserName").is_some() {
        return Ok(c.params.name("UserName", 64)?.to_owned());
    }
    match Identity::of(&c.state.account, &c.call.principal) {
        Identity::User { name } => Ok(name),
        _ => Err(IamError::validation("Must specify userName when calling with non-User credentials")),
    }
}

/// `GetUser`: the named user, or the caller (the root's own user id and ARN, as IAM
/// answers the root).
pub async fn get(c: Ctx) -> Result<Option<Xml>, IamError> {
    if c.params.get("UserName").is_none() && Identity::of(&c.state.account, &c.call.principal) == Identity::Root {
        let mut x = Xml::default();
        x.node("User", |x| {
            x.leaf("UserId", &c.state.account).leaf("Arn", &c.call.principal);
        });
        return Ok(Some(x));
    }
    let name = target_name(&c)?;
    let (user, _) = entities::load::<User>(&*c.state.store, &User::key(&name), || User::missing(&name)).await?;
    Ok(user_result(&user))
}

/// `ListUsers`.
pub async fn list(c: Ctx) -> Result<Option<Xml>, IamError> {
    super::permissions::list_entities::<User>(&c, "Users", write).await
}

/// `DeleteUser`: refused while it has policies or access keys, as IAM does.
pub async fn delete(c: Ctx) -> Result<Option<Xml>, IamError> {
    let (user, version) = super::permissions::deletable::<User>(&c).await?;
    if !access_keys::of_user(&c.state, &user.arn).await?.is_empty() {
        return Err(IamError::delete_conflict("Cannot delete entity, must delete access keys first."));
    }
    entities::delete(&*c.state.store, &User::key(&user.name), version).await?;
    c.state.iam.authorizer.invalidate();
    Ok(None)
}
