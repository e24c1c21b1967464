//! PutAccountSetting, PutAccountSettingDefault, DeleteAccountSetting, ListAccountSettings.
//!
//! A setting is stored per principal at `setting/PRINCIPAL/NAME`; the account default is
//! the setting of the account's root principal. The effective value for a principal is
//! its own setting, else the account default, else the AWS default below.

use std::sync::Arc;

use berth_api::model::{
    DeleteAccountSettingRequest, DeleteAccountSettingResponse, ListAccountSettingsRequest, ListAccountSettingsResponse,
    PutAccountSettingDefaultRequest, PutAccountSettingDefaultResponse, PutAccountSettingRequest,
    PutAccountSettingResponse, Setting, SettingName, SettingType,
};
use berth_api::ApiError;
use berth_store::{Expect, Txn};

use crate::pagination::Page;
use crate::records::{self, RecordError};
use crate::state::{Call, State};

/// The value AWS uses when nobody set one, and the values a setting accepts.
fn aws_default(name: SettingName) -> (&'static str, &'static [&'static str]) {
    const ON_OFF: &[&str] = &["enabled", "disabled"];
    match name {
        SettingName::ServiceLongArnFormat
        | SettingName::TaskLongArnFormat
        | SettingName::ContainerInstanceLongArnFormat => ("enabled", ON_OFF),
        SettingName::AwsvpcTrunking | SettingName::FargateFIPSMode | SettingName::FargateEventWindows => {
            ("disabled", ON_OFF)
        }
        SettingName::ContainerInsights => ("disabled", &["enabled", "disabled", "enhanced"]),
        SettingName::TagResourceAuthorization => ("on", &["on", "off"]),
        SettingName::GuardDutyActivate => ("off", &["on", "off"]),
        SettingName::FargateTaskRetirementWaitPeriod => ("7", &["0", "7", "14"]),
        SettingName::DefaultLogDriverMode => ("non-blocking", &["blocking", "non-blocking"]),
    }
}

fn all_names() -> impl Iterator<Item = SettingName> {
    SettingName::VALUES.iter().filter_map(|v| v.parse().ok())
}

fn key(principal: &str, name: SettingName) -> String {
    format!("setting/{principal}/{}", name.as_str())
}

fn root(state: &State) -> String {
    format!("arn:aws:iam::{}:root", state.account)
}

fn validate_value(name: SettingName, value: &str) -> Result<(), ApiError> {
    let (_, allowed) = aws_default(name);
    if allowed.contains(&value) {
        return Ok(());
    }
    Err(ApiError::invalid(format!(
        "Invalid value '{value}' for setting '{}'. Valid values: {}.",
        name.as_str(),
        allowed.join(", ")
    )))
}

/// The principal a request names, defaulting to the caller; it must be an IAM user, role or root ARN.
fn principal(call: &Call, given: Option<String>) -> Result<String, ApiError> {
    let Some(arn) = given else {
        return Ok(call.principal.clone());
    };
    let resource = arn.strip_prefix("arn:aws:iam::").and_then(|r| r.split_once(':')).map(|(_, r)| r);
    match resource {
        Some(r) if r == "root" || r.starts_with("user/") || r.starts_with("role/") => Ok(arn),
        _ => Err(ApiError::invalid(format!(
            "principalArn '{arn}' is not valid: specify the ARN of an IAM user, an IAM role or the root user."
        ))),
    }
}

async fn put_for(state: &State, principal: String, name: SettingName, value: String) -> Result<Setting, ApiError> {
    validate_value(name, &value)?;
    let setting = Setting {
        name: Some(name),
        value: Some(value),
        principal_arn: Some(principal.clone()),
        r#type: Some(SettingType::User),
    };
    let txn = Txn::new().put(key(&principal, name), records::encode(&setting)?, Expect::Any);
    state.store.commit(txn).await.map_err(RecordError::from)?;
    Ok(setting)
}

fn required_name(name: Option<SettingName>) -> Result<SettingName, ApiError> {
    name.ok_or_else(|| ApiError::invalid("name must be specified."))
}

/// PutAccountSetting: for the caller, or for `principalArn`.
pub async fn put(
    state: Arc<State>,
    call: Call,
    req: PutAccountSettingRequest,
) -> Result<PutAccountSettingResponse, ApiError> {
    let principal = principal(&call, req.principal_arn)?;
    let setting = put_for(&state, principal, required_name(req.name)?, req.value.unwrap_or_default()).await?;
    Ok(PutAccountSettingResponse { setting: Some(setting) })
}

/// PutAccountSettingDefault: for every principal without a setting of its own.
pub async fn put_default(
    state: Arc<State>,
    _call: Call,
    req: PutAccountSettingDefaultRequest,
) -> Result<PutAccountSettingDefaultResponse, ApiError> {
    let setting = put_for(&state, root(&state), required_name(req.name)?, req.value.unwrap_or_default()).await?;
    Ok(PutAccountSettingDefaultResponse { setting: Some(setting) })
}

/// DeleteAccountSetting: answers the setting that was removed.
pub async fn delete(
    state: Arc<State>,
    call: Call,
    req: DeleteAccountSettingRequest,
) -> Result<DeleteAccountSettingResponse, ApiError> {
    let principal = principal(&call, req.principal_arn)?;
    let name = required_name(req.name)?;
    let key = key(&principal, name);
    let (setting, version) = records::get::<Setting>(&*state.store, &key).await?.ok_or_else(|| {
        ApiError::invalid(format!("The setting '{}' is not set for principal '{principal}'.", name.as_str()))
    })?;
    state.store.commit(Txn::new().delete(key, Expect::Version(version))).await.map_err(RecordError::from)?;
    Ok(DeleteAccountSettingResponse { setting: Some(setting) })
}

/// The setting in force for `principal`: its own, the account default, or AWS's.
pub async fn effective(state: &State, principal: &str, name: SettingName) -> Result<Setting, ApiError> {
    for p in [principal.to_string(), root(state)] {
        if let Some((s, _)) = records::get::<Setting>(&*state.store, &key(&p, name)).await? {
            return Ok(s);
        }
    }
    Ok(Setting {
        name: Some(name),
        value: Some(aws_default(name).0.to_string()),
        principal_arn: Some(principal.to_string()),
        r#type: Some(SettingType::AwsManaged),
    })
}

/// ListAccountSettings: the principal's own settings, or with `effectiveSettings` every
/// setting as it applies; filtered by `name` and `value`; 1-10 per page.
pub async fn list(
    state: Arc<State>,
    call: Call,
    req: ListAccountSettingsRequest,
) -> Result<ListAccountSettingsResponse, ApiError> {
    let page = Page::from_request(Some(req.max_results.unwrap_or(10)), req.next_token.as_deref(), 10)?;
    let principal = principal(&call, req.principal_arn)?;
    let mut settings = Vec::new();
    for name in all_names().filter(|n| req.name.is_none_or(|r| r == *n)) {
        let setting = if req.effective_settings.unwrap_or(false) {
            Some(effective(&state, &principal, name).await?)
        } else {
            records::get::<Setting>(&*state.store, &key(&principal, name)).await?.map(|(s, _)| s)
        };
        settings.extend(setting.filter(|s| req.value.is_none() || s.value == req.value));
    }
    let start = page.after.as_deref().map_or(0, |after| {
        settings.iter().position(|s| s.name.map(|n| n.as_str()) == Some(after)).map_or(settings.len(), |i| i + 1)
    });
    let page_items: Vec<Setting> = settings.into_iter().skip(start).take(page.size).collect();
    let last = page_items.last().and_then(|s| s.name).map(|n| n.as_str());
    let next_token = page.next_token(page_items.len(), last);
    Ok(ListAccountSettingsResponse { settings: Some(page_items), next_token })
}
