//! Capacity providers: CreateCapacityProvider, UpdateCapacityProvider,
//! DeleteCapacityProvider and DescribeCapacityProviders.
//!
//! FARGATE and FARGATE_SPOT exist in every account (berth's managed capacity, see
//! [`crate::fargate`]). Providers a user creates are stored at `capacityprovider/NAME` with
//! their Auto Scaling group settings as given; berth has no Auto Scaling groups to scale, so
//! they are records only (a strategy naming one is refused at RunTask).

use std::sync::Arc;

use berth_api::model::{
    CapacityProvider, CapacityProviderField, CapacityProviderStatus, CapacityProviderUpdateStatus, Cluster,
    CreateCapacityProviderRequest, CreateCapacityProviderResponse, DeleteCapacityProviderRequest,
    DeleteCapacityProviderResponse, DescribeCapacityProvidersRequest, DescribeCapacityProvidersResponse, Failure,
    UpdateCapacityProviderRequest, UpdateCapacityProviderResponse,
};
use berth_api::{ApiError, Arn, ResourceKind};
use berth_store::{Expect, Txn};

use crate::fargate::{FARGATE, FARGATE_SPOT};
use crate::records::{self, Decision, RecordError};
use crate::state::{Call, State};
use crate::tags;

fn key(name: &str) -> String {
    format!("capacityprovider/{name}")
}

/// The provider name a request means (a name or an ARN).
fn name_of(ident: &str) -> &str {
    ident.rsplit_once("capacity-provider/").map_or(ident, |(_, n)| n)
}

fn builtin(state: &State, call: &Call, name: &str) -> CapacityProvider {
    CapacityProvider {
        capacity_provider_arn: Some(state.arn(call, ResourceKind::CapacityProvider, name).to_string()),
        name: Some(name.into()),
        status: Some(CapacityProviderStatus::Active),
        tags: Some(Vec::new()),
        ..Default::default()
    }
}

fn not_found() -> ApiError {
    ApiError::invalid("The specified capacity provider does not exist. Specify a valid name or ARN and try again.")
}

fn validate_name(name: &str) -> Result<(), ApiError> {
    let lower = name.to_ascii_lowercase();
    let ok = !name.is_empty()
        && name.len() <= 255
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && !["aws", "ecs", "fargate"].iter().any(|p| lower.starts_with(p));
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "The specified capacity provider name is invalid. Up to 255 characters are allowed, including letters (upper and lowercase), numbers, underscores, and hyphens. The name cannot be prefixed with \"aws\", \"ecs\", or \"fargate\". Specify a valid name and try again.",
        ))
    }
}

/// CreateCapacityProvider: a new ACTIVE provider backed by an Auto Scaling group.
pub async fn create(
    state: Arc<State>,
    call: Call,
    req: CreateCapacityProviderRequest,
) -> Result<CreateCapacityProviderResponse, ApiError> {
    let name = req.name.clone().unwrap_or_default();
    validate_name(&name)?;
    tags::validate(req.tags.as_deref().unwrap_or_default())?;
    let asg = req.auto_scaling_group_provider.clone().ok_or_else(|| {
        ApiError::invalid(
            "autoScalingGroupProvider is required: berth offers FARGATE and FARGATE_SPOT as managed capacity.",
        )
    })?;
    if asg.auto_scaling_group_arn.as_deref().is_none_or(|a| !a.starts_with("arn:aws")) {
        return Err(ApiError::invalid("The specified Auto Scaling group ARN is invalid."));
    }
    let provider = CapacityProvider {
        capacity_provider_arn: Some(state.arn(&call, ResourceKind::CapacityProvider, &name).to_string()),
        name: Some(name.clone()),
        status: Some(CapacityProviderStatus::Active),
        auto_scaling_group_provider: Some(asg),
        tags: Some(req.tags.clone().unwrap_or_default()),
        ..Default::default()
    };
    let txn = Txn::new().put(key(&name), records::encode(&provider)?, Expect::Absent);
    match state.store.commit(txn).await {
        Ok(_) => Ok(CreateCapacityProviderResponse { capacity_provider: Some(provider) }),
        Err(berth_store::StoreError::Conflict { .. }) => Err(ApiError::invalid(
            "The specified capacity provider already exists. To change the configuration of an existing capacity provider, update the capacity provider.",
        )),
        Err(e) => Err(RecordError::from(e).into()),
    }
}

/// UpdateCapacityProvider: new managed scaling, termination protection or draining settings.
pub async fn update(
    state: Arc<State>,
    _call: Call,
    req: UpdateCapacityProviderRequest,
) -> Result<UpdateCapacityProviderResponse, ApiError> {
    let name = name_of(req.name.as_deref().unwrap_or_default()).to_string();
    refuse_builtin(&name)?;
    let given = req.auto_scaling_group_provider.clone().unwrap_or_default();
    let provider = records::update(&*state.store, &key(&name), |current: Option<CapacityProvider>| {
        let mut p = current.ok_or_else(not_found)?;
        let asg = p.auto_scaling_group_provider.get_or_insert_with(Default::default);
        asg.managed_scaling = given.managed_scaling.clone().or(asg.managed_scaling.take());
        asg.managed_termination_protection =
            given.managed_termination_protection.or(asg.managed_termination_protection);
        asg.managed_draining = given.managed_draining.or(asg.managed_draining);
        p.update_status = Some(CapacityProviderUpdateStatus::UpdateComplete);
        Ok(Decision::Write(p.clone(), p))
    })
    .await?;
    Ok(UpdateCapacityProviderResponse { capacity_provider: Some(provider) })
}

fn refuse_builtin(name: &str) -> Result<(), ApiError> {
    if name == FARGATE || name == FARGATE_SPOT {
        return Err(ApiError::invalid(format!("The capacity provider '{name}' is reserved and cannot be modified.")));
    }
    Ok(())
}

/// DeleteCapacityProvider: removes a provider no cluster uses; answers it as DELETE_COMPLETE.
pub async fn delete(
    state: Arc<State>,
    _call: Call,
    req: DeleteCapacityProviderRequest,
) -> Result<DeleteCapacityProviderResponse, ApiError> {
    let name = name_of(req.capacity_provider.as_deref().unwrap_or_default()).to_string();
    refuse_builtin(&name)?;
    let (mut provider, version) =
        records::get::<CapacityProvider>(&*state.store, &key(&name)).await?.ok_or_else(not_found)?;
    for (_, c) in records::list_all::<Cluster>(&*state.store, "cluster/").await? {
        if c.capacity_providers.iter().flatten().any(|p| *p == name) {
            return Err(ApiError::invalid(
                "The specified capacity provider is in use and cannot be removed. Remove it from the cluster's capacity providers first.",
            ));
        }
    }
    state.store.commit(Txn::new().delete(key(&name), Expect::Version(version))).await.map_err(RecordError::from)?;
    provider.status = Some(CapacityProviderStatus::Inactive);
    provider.update_status = Some(CapacityProviderUpdateStatus::DeleteComplete);
    Ok(DeleteCapacityProviderResponse { capacity_provider: Some(provider) })
}

/// DescribeCapacityProviders: the named providers (failures MISSING for the rest), or all of
/// them, FARGATE and FARGATE_SPOT first.
pub async fn describe(
    state: Arc<State>,
    call: Call,
    req: DescribeCapacityProvidersRequest,
) -> Result<DescribeCapacityProvidersResponse, ApiError> {
    let with_tags = req.include.unwrap_or_default().contains(&CapacityProviderField::Tags);
    let mut found = Vec::new();
    let mut failures = Vec::new();
    match req.capacity_providers.filter(|l| !l.is_empty()) {
        Some(idents) => {
            for ident in idents {
                let name = name_of(&ident);
                if name == FARGATE || name == FARGATE_SPOT {
                    found.push(builtin(&state, &call, name));
                } else if let Some((p, _)) = records::get::<CapacityProvider>(&*state.store, &key(name)).await? {
                    found.push(p);
                } else {
                    let arn = Arn::parse(&ident).map_or_else(
                        || state.arn(&call, ResourceKind::CapacityProvider, name).to_string(),
                        |a| a.to_string(),
                    );
                    failures.push(Failure { arn: Some(arn), reason: Some("MISSING".into()), detail: None });
                }
            }
        }
        None => {
            found.push(builtin(&state, &call, FARGATE));
            found.push(builtin(&state, &call, FARGATE_SPOT));
            let stored = records::list_all::<CapacityProvider>(&*state.store, "capacityprovider/").await?;
            found.extend(stored.into_iter().map(|(_, p)| p));
        }
    }
    let shown =
        found.into_iter().map(|p| CapacityProvider { tags: if with_tags { p.tags } else { None }, ..p }).collect();
    Ok(DescribeCapacityProvidersResponse {
        capacity_providers: Some(shown),
        failures: Some(failures),
        next_token: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_as_ecs_does() {
        assert!(validate_name("my_provider-1").is_ok());
        for bad in ["", "FARGATE_X", "ecs-mine", "aws1", "a b", &"x".repeat(256)] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
        assert_eq!(name_of("arn:aws:ecs:us-east-1:123456789012:capacity-provider/cp"), "cp");
        assert!(refuse_builtin("FARGATE_SPOT").is_err());
    }
}
