//! Customer-managed policies: CreatePolicy (version v1, the default), GetPolicy,
//! GetPolicyVersion, ListPolicyVersions, ListPolicies, DeletePolicy; and the AWS managed
//! policies berth carries, readable and attachable but not changeable.

use std::collections::HashMap;

use berth_iam::Policy;

use super::entities::{self, paginate, write_page, ManagedPolicy, PolicyVersion, Role, User};
use super::wire::{encode_document, IamError, Xml};
use super::{aws_managed, Ctx};
use crate::records::{self, RecordError};
use crate::state::State;

/// IAM's size limit of a managed policy document (non-whitespace characters).
const MAX_SIZE: usize = 6144;
/// The creation date berth gives the AWS managed policies it carries.
const AWS_POLICY_DATE: &str = "2015-02-06T18:39:46Z";

/// Policy ARN -> how many roles and users have it attached.
async fn attachment_counts(state: &State) -> Result<HashMap<String, usize>, RecordError> {
    let store = &*state.store;
    let roles = records::list_all::<Role>(store, "iam/role/").await?.into_iter().map(|(_, r)| r.permissions);
    let users = records::list_all::<User>(store, "iam/user/").await?.into_iter().map(|(_, u)| u.permissions);
    let mut counts = HashMap::new();
    for arn in roles.chain(users).flat_map(|p| p.attached) {
        *counts.entry(arn).or_default() += 1;
    }
    Ok(counts)
}

/// How many roles and users have `arn` attached.
async fn attachments(state: &State, arn: &str) -> Result<usize, RecordError> {
    Ok(attachment_counts(state).await?.get(arn).copied().unwrap_or(0))
}

fn write(x: &mut Xml, p: &ManagedPolicy, attachment_count: usize) {
    x.leaf("PolicyName", &p.name)
        .leaf("PolicyId", &p.id)
        .leaf("Arn", &p.arn)
        .leaf("Path", &p.path)
        .leaf("DefaultVersionId", &p.default_version_id)
        .leaf("AttachmentCount", attachment_count)
        .leaf("PermissionsBoundaryUsageCount", 0)
        .leaf("IsAttachable", true)
        .opt("Description", p.description.as_deref())
        .leaf("CreateDate", &p.create_date)
        .leaf("UpdateDate", &p.update_date);
    if !p.tags.is_empty() {
        x.tags(&p.tags);
    }
}

/// The AWS managed policy berth carries under `name`, as a policy record.
fn aws_policy(name: &str, document: &str) -> ManagedPolicy {
    ManagedPolicy {
        name: name.to_owned(),
        id: format!("ANPA{:0>17}", name.len()),
        arn: format!("{}{name}", aws_managed::ARN_PREFIX),
        path: "/".into(),
        description: None,
        create_date: AWS_POLICY_DATE.into(),
        update_date: AWS_POLICY_DATE.into(),
        default_version_id: "v1".into(),
        versions: vec![PolicyVersion {
            version_id: "v1".into(),
            document: document.into(),
            create_date: AWS_POLICY_DATE.into(),
        }],
        tags: Vec::new(),
    }
}

/// The policy `arn` names (customer-managed or AWS managed), or NoSuchEntity.
async fn find(state: &State, arn: &str) -> Result<(ManagedPolicy, u64), IamError> {
    let missing = || IamError::no_such_entity(format!("Policy {arn} was not found."));
    if let Some(name) = arn.strip_prefix(aws_managed::ARN_PREFIX) {
        let document = aws_managed::document(arn).ok_or_else(missing)?;
        return Ok((aws_policy(name, document), 0));
    }
    let (policy, version) = entities::load::<ManagedPolicy>(&*state.store, &entities::policy_key(arn), missing).await?;
    if policy.arn == arn {
        Ok((policy, version))
    } else {
        Err(missing())
    }
}

/// `CreatePolicy`.
pub async fn create(c: Ctx) -> Result<Option<Xml>, IamError> {
    let name = c.params.name("PolicyName", 128)?.to_owned();
    let path = c.params.path()?;
    let document = c.params.required("PolicyDocument")?.to_owned();
    Policy::parse(&document).map_err(|e| IamError::malformed(&e))?;
    if document.chars().filter(|c| !c.is_whitespace()).count() > MAX_SIZE {
        return Err(IamError::limit_exceeded(format!("Cannot exceed quota for PolicySize: {MAX_SIZE}")));
    }
    let mut tags = Vec::new();
    super::permissions::merge_tags(&mut tags, &c.params.tags("Tags"))?;
    let now = entities::iso_now();
    let policy = ManagedPolicy {
        id: entities::new_id("ANPA"),
        arn: entities::arn(&c.state.account, "policy", &path, &name),
        path,
        description: c.params.get("Description").map(str::to_owned),
        create_date: now.clone(),
        update_date: now.clone(),
        default_version_id: "v1".into(),
        versions: vec![PolicyVersion { version_id: "v1".into(), document, create_date: now }],
        tags,
        name,
    };
    entities::create(&*c.state.store, &entities::policy_key(&policy.arn), &policy, || {
        IamError::already_exists(format!(
            "A policy called {} already exists. Duplicate names are not allowed.",
            policy.name
        ))
    })
    .await?;
    let mut x = Xml::default();
    x.node("Policy", |x| write(x, &policy, 0));
    Ok(Some(x))
}

/// `GetPolicy`.
pub async fn get(c: Ctx) -> Result<Option<Xml>, IamError> {
    let arn = c.params.required("PolicyArn")?;
    let (policy, _) = find(&c.state, arn).await?;
    let count = attachments(&c.state, arn).await?;
    let mut x = Xml::default();
    x.node("Policy", |x| write(x, &policy, count));
    Ok(Some(x))
}

fn write_version(x: &mut Xml, p: &ManagedPolicy, v: &PolicyVersion) {
    x.leaf("Document", encode_document(&v.document))
        .leaf("VersionId", &v.version_id)
        .leaf("IsDefaultVersion", v.version_id == p.default_version_id)
        .leaf("CreateDate", &v.create_date);
}

/// `GetPolicyVersion`.
pub async fn get_version(c: Ctx) -> Result<Option<Xml>, IamError> {
    let arn = c.params.required("PolicyArn")?;
    let version_id = c.params.required("VersionId")?;
    let (policy, _) = find(&c.state, arn).await?;
    let version = policy.versions.iter().find(|v| v.version_id == version_id).ok_or_else(|| {
        IamError::no_such_entity(format!("Policy {arn} version {version_id} does not exist or is not attachable."))
    })?;
    let mut x = Xml::default();
    x.node("PolicyVersion", |x| write_version(x, &policy, version));
    Ok(Some(x))
}

/// `ListPolicyVersions`.
pub async fn list_versions(c: Ctx) -> Result<Option<Xml>, IamError> {
    let arn = c.params.required("PolicyArn")?;
    let (policy, _) = find(&c.state, arn).await?;
    let mut x = Xml::default();
    x.members("Versions", &policy.versions, |x, v| write_version(x, &policy, v));
    write_page(&mut x, None);
    Ok(Some(x))
}

/// `ListPolicies`: `Scope` (All, AWS, Local), `OnlyAttached`, `PathPrefix`.
pub async fn list(c: Ctx) -> Result<Option<Xml>, IamError> {
    let scope = c.params.get("Scope").unwrap_or("All");
    if !matches!(scope, "All" | "AWS" | "Local") {
        return Err(IamError::validation(format!(
            "Value '{scope}' at 'scope' failed to satisfy constraint: Member must satisfy enum value set: [All, AWS, Local]"
        )));
    }
    let mut policies = Vec::new();
    if scope != "AWS" {
        policies.extend(
            records::list_all::<ManagedPolicy>(&*c.state.store, "iam/policy/").await?.into_iter().map(|(_, p)| p),
        );
    }
    if scope != "Local" {
        policies.extend(aws_managed::POLICIES.iter().map(|(n, d)| aws_policy(n, d)));
    }
    let prefix = c.params.get("PathPrefix").unwrap_or("/");
    policies.retain(|p| p.path.starts_with(prefix));
    let counts = attachment_counts(&c.state).await?;
    let only_attached = c.params.get("OnlyAttached") == Some("true");
    let counted: Vec<(ManagedPolicy, usize)> = policies
        .into_iter()
        .map(|p| {
            let n = counts.get(&p.arn).copied().unwrap_or(0);
            (p, n)
        })
        .filter(|(_, n)| *n > 0 || !only_attached)
        .collect();
    let (page, next) = paginate(counted, &c.params, |(p, _)| p.name.to_ascii_lowercase())?;
    let mut x = Xml::default();
    x.members("Policies", &page, |x, (p, n)| write(x, p, *n));
    write_page(&mut x, next);
    Ok(Some(x))
}

/// At most this many versions per managed policy (IAM's quota).
const MAX_VERSIONS: usize = 5;

fn customer_policy_key(arn: &str) -> Result<String, IamError> {
    if arn.starts_with(aws_managed::ARN_PREFIX) {
        return Err(IamError::invalid_input(format!("Policy {arn} is an AWS managed policy and cannot be changed.")));
    }
    Ok(entities::policy_key(arn))
}

/// Edits the customer-managed policy `arn` under CAS, then drops cached policy sets.
async fn change(
    c: &Ctx,
    arn: &str,
    mut edit: impl FnMut(&mut ManagedPolicy) -> Result<(), IamError>,
) -> Result<ManagedPolicy, IamError> {
    let key = customer_policy_key(arn)?;
    let missing = || IamError::no_such_entity(format!("Policy {arn} was not found."));
    let policy = entities::update::<ManagedPolicy>(&*c.state.store, &key, missing, |p| {
        if p.arn != arn {
            return Err(missing());
        }
        edit(p)
    })
    .await?;
    c.state.iam.authorizer.invalidate();
    Ok(policy)
}

fn no_version(arn: &str, version_id: &str) -> IamError {
    IamError::no_such_entity(format!("Policy {arn} version {version_id} does not exist or is not attachable."))
}

/// `CreatePolicyVersion`: the next `vN`, the default when `SetAsDefault` is true.
pub async fn create_version(c: Ctx) -> Result<Option<Xml>, IamError> {
    let arn = c.params.required("PolicyArn")?.to_owned();
    let document = c.params.required("PolicyDocument")?.to_owned();
    Policy::parse(&document).map_err(|e| IamError::malformed(&e))?;
    let set_default = c.params.get("SetAsDefault") == Some("true");
    let mut created = None;
    let policy = change(&c, &arn, |p| {
        if p.versions.len() >= MAX_VERSIONS {
            return Err(IamError::limit_exceeded(format!(
                "A managed policy can have up to {MAX_VERSIONS} versions. Before you create a new version, you must delete an existing version."
            )));
        }
        let next = p.versions.iter().filter_map(|v| v.version_id.strip_prefix('v')?.parse::<u32>().ok()).max().unwrap_or(0) + 1;
        let version = PolicyVersion { version_id: format!("v{next}"), document: document.clone(), create_date: entities::iso_now() };
        if set_default {
            p.default_version_id.clone_from(&version.version_id);
        }
        p.update_date.clone_from(&version.create_date);
        created = Some(version.version_id.clone());
        p.versions.push(version);
        Ok(())
    })
    .await?;
    let id = created.unwrap_or_default();
    let version = policy.versions.iter().find(|v| v.version_id == id).ok_or_else(|| no_version(&arn, &id))?;
    let mut x = Xml::default();
    x.node("PolicyVersion", |x| write_version(x, &policy, version));
    Ok(Some(x))
}

/// `SetDefaultPolicyVersion`.
pub async fn set_default_version(c: Ctx) -> Result<Option<Xml>, IamError> {
    let arn = c.params.required("PolicyArn")?.to_owned();
    let version_id = c.params.required("VersionId")?.to_owned();
    change(&c, &arn, |p| {
        if !p.versions.iter().any(|v| v.version_id == version_id) {
            return Err(no_version(&arn, &version_id));
        }
        p.default_version_id.clone_from(&version_id);
        Ok(())
    })
    .await?;
    Ok(None)
}

/// `DeletePolicyVersion`: not the default one.
pub async fn delete_version(c: Ctx) -> Result<Option<Xml>, IamError> {
    let arn = c.params.required("PolicyArn")?.to_owned();
    let version_id = c.params.required("VersionId")?.to_owned();
    change(&c, &arn, |p| {
        if p.default_version_id == version_id {
            return Err(IamError::delete_conflict("Cannot delete the default version of a policy."));
        }
        let before = p.versions.len();
        p.versions.retain(|v| v.version_id != version_id);
        if p.versions.len() == before {
            return Err(no_version(&arn, &version_id));
        }
        Ok(())
    })
    .await?;
    Ok(None)
}

/// `DeletePolicy`: refused while attached. The delete expects the version read here, and
/// every attach rewrites the policy, so an attach in between makes it fail.
pub async fn delete(c: Ctx) -> Result<Option<Xml>, IamError> {
    let arn = c.params.required("PolicyArn")?;
    let key = customer_policy_key(arn)?;
    let (policy, version) = find(&c.state, arn).await?;
    if attachments(&c.state, arn).await? > 0 {
        return Err(IamError::delete_conflict("Cannot delete a policy attached to entities."));
    }
    if policy.versions.len() > 1 {
        return Err(IamError::delete_conflict(
            "This policy has more than one version. Before you delete a policy, you must delete the policy's versions. The default version is deleted with the policy.",
        ));
    }
    entities::delete(&*c.state.store, &key, version).await?;
    c.state.iam.authorizer.invalidate();
    Ok(None)
}
