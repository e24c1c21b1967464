//! The Secrets Manager operations on stored secrets.

use std::sync::Arc;

use berth_api::secrets_model::{
    CreateSecretRequest, CreateSecretResponse, DeleteSecretRequest, DeleteSecretResponse, DescribeSecretRequest,
    DescribeSecretResponse, FilterNameStringType, GetSecretValueRequest, GetSecretValueResponse, ListSecretsRequest,
    ListSecretsResponse, PutSecretValueRequest, PutSecretValueResponse, SecretListEntry,
};
use berth_api::{ApiError, ErrorKind};
use berth_store::{Expect, StoreError, Txn};

use super::{find, find_live, key, marked_for_deletion, new_arn, now, SecretRecord, Version, AWSCURRENT, PREFIX};
use crate::pagination::{self, Page};
use crate::records::{self, RecordError};
use crate::state::{Call, State};

/// The largest ListSecrets page.
const MAX_LIST: i32 = 100;
/// The recovery window DeleteSecret applies when none is given, and its bounds.
const DEFAULT_RECOVERY_DAYS: i64 = 30;
const RECOVERY_DAYS: std::ops::RangeInclusive<i64> = 7..=30;

/// A secret name as AWS allows it: ASCII letters, digits and `/_+=.@-`.
fn check_name(name: &str) -> Result<(), ApiError> {
    if !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"/_+=.@-".contains(&b)) {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "Invalid name. Must be a valid name containing alphanumeric characters, or any of the following: -/_+=.@!",
        ))
    }
}

/// A new version of the value given as a string or as binary, exactly one of them.
fn new_version(token: Option<String>, string: Option<String>, binary: Option<String>) -> Result<Version, ApiError> {
    if string.is_some() && binary.is_some() {
        return Err(ApiError::invalid(
            "You can't specify both a binary secret value and a string secret value in the same secret.",
        ));
    }
    let id = token.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    Ok(Version { id, string, binary, created: now(), stages: vec![AWSCURRENT.to_owned()] })
}

pub async fn create(state: Arc<State>, call: Call, req: CreateSecretRequest) -> Result<CreateSecretResponse, ApiError> {
    let name = req.name.unwrap_or_default();
    check_name(&name)?;
    let has_value = req.secret_string.is_some() || req.secret_binary.is_some();
    let version = new_version(req.client_request_token, req.secret_string, req.secret_binary)?;
    let created = version.created;
    let stored = records::get::<SecretRecord>(&*state.store, &key(&name)).await?;
    let expect = match &stored {
        Some((s, _)) if s.deleted_by(created) => records::expect(stored.as_ref().map(|(_, v)| *v)),
        Some((s, _)) if s.scheduled_for_deletion() => {
            return Err(ApiError::new(
                ErrorKind::InvalidRequest,
                "You can't create this secret because a secret with this name is already scheduled for deletion.",
            ))
        }
        Some(_) => return Err(exists(&name)),
        None => Expect::Absent,
    };
    let secret = SecretRecord {
        arn: new_arn(&state, &call.region, &name),
        name: name.clone(),
        description: req.description,
        tags: req.tags.unwrap_or_default(),
        created,
        last_changed: created,
        deletion_date: None,
        versions: if has_value { vec![version] } else { Vec::new() },
    };
    let txn = Txn::new().put(key(&name), records::encode(&secret)?, expect);
    match state.store.commit(txn).await {
        Ok(_) => Ok(CreateSecretResponse {
            version_id: secret.versions.first().map(|v| v.id.clone()),
            arn: Some(secret.arn),
            name: Some(name),
            ..Default::default()
        }),
        Err(StoreError::Conflict { .. }) => Err(exists(&name)),
        Err(e) => Err(RecordError::from(e).into()),
    }
}

fn exists(name: &str) -> ApiError {
    ApiError::new(ErrorKind::ResourceExists, format!("The operation failed because the secret {name} already exists."))
}

pub async fn get_value(
    state: Arc<State>,
    _call: Call,
    req: GetSecretValueRequest,
) -> Result<GetSecretValueResponse, ApiError> {
    let secret = find_live(&state, &req.secret_id.unwrap_or_default()).await?;
    let v = secret.version(req.version_id.as_deref(), req.version_stage.as_deref())?;
    Ok(GetSecretValueResponse {
        arn: Some(secret.arn.clone()),
        name: Some(secret.name.clone()),
        version_id: Some(v.id.clone()),
        secret_binary: v.binary.clone(),
        secret_string: v.string.clone(),
        version_stages: Some(v.stages.clone()),
        created_date: Some(v.created),
    })
}

pub async fn put_value(
    state: Arc<State>,
    _call: Call,
    req: PutSecretValueRequest,
) -> Result<PutSecretValueResponse, ApiError> {
    if req.secret_string.is_none() && req.secret_binary.is_none() {
        return Err(ApiError::invalid("You must provide either SecretString or SecretBinary."));
    }
    if req.version_stages.as_ref().is_some_and(|s| s.iter().any(|s| s != AWSCURRENT)) {
        return Err(ApiError::invalid("berth supports only the AWSCURRENT staging label in PutSecretValue."));
    }
    let version = new_version(req.client_request_token, req.secret_string, req.secret_binary)?;
    let name = find_live(&state, &req.secret_id.unwrap_or_default()).await?.name;
    records::update::<SecretRecord, _>(&*state.store, &key(&name), |current| {
        let mut secret = current.filter(|s| !s.deleted_by(version.created)).ok_or_else(super::not_found)?;
        if secret.scheduled_for_deletion() {
            return Err(marked_for_deletion());
        }
        let answer = |v: &Version| PutSecretValueResponse {
            arn: Some(secret.arn.clone()),
            name: Some(secret.name.clone()),
            version_id: Some(v.id.clone()),
            version_stages: Some(v.stages.clone()),
        };
        if let Some(same) = secret.versions.iter().find(|v| v.id == version.id) {
            return if same.string == version.string && same.binary == version.binary {
                Ok(records::Decision::Keep(answer(same)))
            } else {
                Err(ApiError::new(
                    ErrorKind::ResourceExists,
                    "You can't modify an existing version, you can only create a new version.",
                ))
            };
        }
        let out = answer(&version);
        secret.push(version.clone());
        Ok(records::Decision::Write(secret, out))
    })
    .await
}

pub async fn describe(
    state: Arc<State>,
    _call: Call,
    req: DescribeSecretRequest,
) -> Result<DescribeSecretResponse, ApiError> {
    let (s, _) = find(&state, &req.secret_id.unwrap_or_default()).await?;
    let entry = entry(&s);
    Ok(DescribeSecretResponse {
        arn: entry.arn,
        name: entry.name,
        description: entry.description,
        rotation_enabled: Some(false),
        last_changed_date: entry.last_changed_date,
        deleted_date: entry.deleted_date,
        tags: entry.tags,
        version_ids_to_stages: entry.secret_versions_to_stages,
        created_date: entry.created_date,
        ..Default::default()
    })
}

/// A secret as ListSecrets answers it (DescribeSecret answers the same members).
fn entry(s: &SecretRecord) -> SecretListEntry {
    SecretListEntry {
        arn: Some(s.arn.clone()),
        name: Some(s.name.clone()),
        description: s.description.clone(),
        rotation_enabled: Some(false),
        last_changed_date: Some(s.last_changed),
        // AWS answers the time the deletion was asked for; berth keeps when it takes effect.
        deleted_date: s.deletion_date,
        tags: (!s.tags.is_empty()).then(|| s.tags.clone()),
        secret_versions_to_stages: Some(s.versions.iter().map(|v| (v.id.clone(), v.stages.clone())).collect()),
        created_date: Some(s.created),
        ..Default::default()
    }
}

pub async fn list(state: Arc<State>, _call: Call, req: ListSecretsRequest) -> Result<ListSecretsResponse, ApiError> {
    let page = Page::from_request(req.max_results, req.next_token.as_deref(), MAX_LIST)?;
    let mut prefixes = Vec::new();
    for f in req.filters.unwrap_or_default() {
        match f.key {
            Some(FilterNameStringType::Name) => prefixes.extend(f.values.unwrap_or_default()),
            other => {
                return Err(ApiError::invalid(format!(
                    "berth filters secrets by name only, not by {}.",
                    other.map_or("(none)", |k| k.as_str())
                )))
            }
        }
    }
    let planned = req.include_planned_deletion == Some(true);
    let now = now();
    let (secrets, next_token) = pagination::collect(&*state.store, PREFIX, &page, |_, s: SecretRecord| {
        let shown = !s.deleted_by(now) && (planned || !s.scheduled_for_deletion());
        let named = prefixes.is_empty() || prefixes.iter().any(|p| s.name.starts_with(p.as_str()));
        (shown && named).then(|| entry(&s))
    })
    .await?;
    Ok(ListSecretsResponse { secret_list: Some(secrets), next_token })
}

pub async fn delete(
    state: Arc<State>,
    _call: Call,
    req: DeleteSecretRequest,
) -> Result<DeleteSecretResponse, ApiError> {
    let force = req.force_delete_without_recovery == Some(true);
    if force && req.recovery_window_in_days.is_some() {
        return Err(ApiError::invalid(
            "You can't use ForceDeleteWithoutRecovery in conjunction with RecoveryWindowInDays.",
        ));
    }
    let days = req.recovery_window_in_days.unwrap_or(DEFAULT_RECOVERY_DAYS);
    if !RECOVERY_DAYS.contains(&days) {
        return Err(ApiError::invalid("The RecoveryWindowInDays value must be between 7 and 30 days (inclusive)."));
    }
    let (mut secret, version) = find(&state, &req.secret_id.unwrap_or_default()).await?;
    let now = now();
    let txn = if force {
        Txn::new().delete(key(&secret.name), Expect::Version(version))
    } else {
        if secret.scheduled_for_deletion() {
            return Err(marked_for_deletion());
        }
        #[allow(clippy::cast_precision_loss)] // at most 30 days of seconds
        let window = (days * 86_400) as f64;
        secret.deletion_date = Some(now + window);
        Txn::new().put(key(&secret.name), records::encode(&secret)?, Expect::Version(version))
    };
    match state.store.commit(txn).await {
        Ok(_) => Ok(DeleteSecretResponse {
            arn: Some(secret.arn),
            name: Some(secret.name),
            deletion_date: Some(secret.deletion_date.unwrap_or(now)),
        }),
        Err(StoreError::Conflict { .. }) => Err(super::not_found()),
        Err(e) => Err(RecordError::from(e).into()),
    }
}
