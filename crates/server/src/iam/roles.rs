//! Roles: CreateRole, GetRole, ListRoles, DeleteRole, UpdateAssumeRolePolicy.

use berth_iam::Policy;

use super::entities::{self, Entity, Role};
use super::wire::{encode_document, IamError, Xml};
use super::Ctx;

/// MaxSessionDuration's bounds and default, in seconds (IAM's).
const MIN_SESSION: i64 = 3600;
const MAX_SESSION: i64 = 43200;

fn parse_trust(document: &str) -> Result<(), IamError> {
    Policy::parse_trust(document).map(drop).map_err(|e| IamError::malformed(&e))
}

/// Writes a `Role` structure.
fn write(x: &mut Xml, r: &Role) {
    x.leaf("Path", &r.path)
        .leaf("RoleName", &r.name)
        .leaf("RoleId", &r.id)
        .leaf("Arn", &r.arn)
        .leaf("CreateDate", &r.create_date)
        .leaf("AssumeRolePolicyDocument", encode_document(&r.assume_role_policy_document))
        .opt("Description", r.description.as_deref())
        .leaf("MaxSessionDuration", r.max_session_duration);
    if !r.tags.is_empty() {
        x.tags(&r.tags);
    }
}

fn role_result(r: &Role) -> Option<Xml> {
    let mut x = Xml::default();
    x.node("Role", |x| write(x, r));
    Some(x)
}

/// `CreateRole`.
pub async fn create(c: Ctx) -> Result<Option<Xml>, IamError> {
    let name = c.params.name("RoleName", 64)?.to_owned();
    let path = c.params.path()?;
    let document = c.params.required("AssumeRolePolicyDocument")?.to_owned();
    parse_trust(&document)?;
    let description = c.params.get("Description").map(str::to_owned);
    if description.as_ref().is_some_and(|d| d.chars().count() > 1000) {
        return Err(IamError::validation(
            "Value at 'description' failed to satisfy constraint: Member must have length less than or equal to 1000",
        ));
    }
    let mut tags = Vec::new();
    super::permissions::merge_tags(&mut tags, &c.params.tags("Tags"))?;
    let role = Role {
        id: entities::new_id("AROA"),
        arn: entities::arn(&c.state.account, "role", &path, &name),
        path,
        create_date: entities::iso_now(),
        assume_role_policy_document: document,
        description,
        max_session_duration: c.params.int("MaxSessionDuration", MIN_SESSION, MAX_SESSION)?.unwrap_or(MIN_SESSION),
        tags,
        permissions: Default::default(),
        name,
    };
    entities::create(&*c.state.store, &Role::key(&role.name), &role, || {
        IamError::already_exists(format!("Role with name {} already exists.", role.name))
    })
    .await?;
    c.state.iam.authorizer.invalidate();
    Ok(role_result(&role))
}

/// `GetRole`.
pub async fn get(c: Ctx) -> Result<Option<Xml>, IamError> {
    let name = c.params.name("RoleName", 64)?;
    let (role, _) = entities::load::<Role>(&*c.state.store, &Role::key(name), || Role::missing(name)).await?;
    Ok(role_result(&role))
}

/// `ListRoles`.
pub async fn list(c: Ctx) -> Result<Option<Xml>, IamError> {
    super::permissions::list_entities::<Role>(&c, "Roles", write).await
}

/// `DeleteRole`: refused while policies are attached or inline, as IAM does.
pub async fn delete(c: Ctx) -> Result<Option<Xml>, IamError> {
    let (role, version) = super::permissions::deletable::<Role>(&c).await?;
    entities::delete(&*c.state.store, &Role::key(&role.name), version).await?;
    c.state.iam.authorizer.invalidate();
    Ok(None)
}

/// `UpdateAssumeRolePolicy`.
pub async fn update_assume_role_policy(c: Ctx) -> Result<Option<Xml>, IamError> {
    let name = c.params.name("RoleName", 64)?.to_owned();
    let document = c.params.required("PolicyDocument")?.to_owned();
    parse_trust(&document)?;
    entities::update::<Role>(
        &*c.state.store,
        &Role::key(&name),
        || Role::missing(&name),
        |r| {
            r.assume_role_policy_document.clone_from(&document);
            Ok(())
        },
    )
    .await?;
    Ok(None)
}

/// `UpdateRole`: Description and MaxSessionDuration.
pub async fn update(c: Ctx) -> Result<Option<Xml>, IamError> {
    let name = c.params.name("RoleName", 64)?.to_owned();
    let description = c.params.get("Description").map(str::to_owned);
    let max = c.params.int("MaxSessionDuration", MIN_SESSION, MAX_SESSION)?;
    entities::update::<Role>(
        &*c.state.store,
        &Role::key(&name),
        || Role::missing(&name),
        |r| {
            if let Some(d) = &description {
                r.description = Some(d.clone());
            }
            if let Some(m) = max {
                r.max_session_duration = m;
            }
            Ok(())
        },
    )
    .await?;
    Ok(Some(Xml::default()))
}
