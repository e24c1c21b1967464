//! STS: GetCallerIdentity, and AssumeRole's temporary credentials (`ASIA...` key,
//! secret, session token, expiry) that sign requests as
//! `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION` under the role's policies.
//!
//! [`issue_role_credentials`] is the one place temporary credentials are made: AssumeRole
//! calls it for a signed-in caller, and task roles call it for the service principal
//! `ecs-tasks.amazonaws.com`.

use base64::Engine as _;
use berth_iam::Policy;
use berth_store::{Expect, Txn};
use rand::RngCore;

use super::authorize::Identity;
use super::entities::{self, Entity, Role, User};
use super::wire::{IamError, Xml};
use super::Ctx;
use crate::credentials;
use crate::records;
use crate::state::State;

/// DurationSeconds' bounds and default (AWS's).
const MIN_DURATION: i64 = 900;
const MAX_DURATION: i64 = 43200;
const DEFAULT_DURATION: i64 = 3600;

/// Temporary credentials for a role session.
#[derive(Debug, Clone)]
pub struct TemporaryCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    pub expiration: chrono::DateTime<chrono::Utc>,
    /// `ROLEID:SESSION`.
    pub assumed_role_id: String,
    /// `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`.
    pub arn: String,
}

/// Who asks for a role's credentials, for its trust policy to decide.
#[derive(Debug, Clone, Copy)]
pub struct Trustee<'a> {
    /// The caller's principal ARNs (its own, and its role's for a role session).
    pub principals: &'a [&'a str],
    /// A service principal, e.g. `ecs-tasks.amazonaws.com` for task roles.
    pub service: Option<&'a str>,
}

/// Why credentials were not issued.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// No role has this ARN in this account.
    #[error("role {0} does not exist")]
    NoSuchRole(String),
    /// The role's trust policy does not allow the trustee.
    #[error("the trust policy of role {0} does not allow it to be assumed")]
    NotTrusted(String),
    /// The requested duration exceeds the role's MaxSessionDuration.
    #[error("The requested DurationSeconds exceeds the MaxSessionDuration set for this role.")]
    TooLong,
    /// The store failed.
    #[error(transparent)]
    Record(#[from] crate::records::RecordError),
}

/// Issues credentials for role `role_arn`, session `session`, valid `duration` seconds
/// (capped by the test hook `BERTH_IAM_SESSION_CAP_SECONDS`), if its trust policy allows
/// `trustee`. They are stored before they are returned, so they survive a restart.
pub async fn issue_role_credentials(
    state: &State,
    role_arn: &str,
    session: &str,
    duration: i64,
    trustee: Trustee<'_>,
) -> Result<TemporaryCredentials, IssueError> {
    let role = trusted_role(state, role_arn, trustee).await?;
    if duration > role.max_session_duration {
        return Err(IssueError::TooLong);
    }
    let lifetime = state.iam.session_cap.map_or(duration, |cap| duration.min(cap));
    let expiration = chrono::Utc::now() + chrono::TimeDelta::seconds(lifetime);
    let arn = format!("arn:aws:sts::{}:assumed-role/{}/{session}", state.account, role.name);
    let mut token = [0u8; 96];
    rand::rng().fill_bytes(&mut token);
    let mut key = credentials::new_key(arn.clone());
    key.access_key_id = credentials::random_id("ASIA", 16);
    key.session_token = Some(base64::engine::general_purpose::STANDARD.encode(token));
    key.expires_at = Some(expiration.timestamp());
    key.create_date = Some(entities::iso_now());
    let txn = Txn::new().put(credentials::key_path(&key.access_key_id), records::encode(&key)?, Expect::Absent);
    state.store.commit(prune_expired(state, txn)).await.map_err(records::RecordError::from)?;
    state.keys.insert(key.clone());
    Ok(TemporaryCredentials {
        access_key_id: key.access_key_id,
        secret_access_key: key.secret_access_key,
        session_token: key.session_token.unwrap_or_default(),
        expiration,
        assumed_role_id: format!("{}:{session}", role.id),
        arn,
    })
}

/// The role `role_arn` names, if it exists and its trust policy allows `trustee`.
pub async fn trusted_role(state: &State, role_arn: &str, trustee: Trustee<'_>) -> Result<Role, IssueError> {
    let no_role = || IssueError::NoSuchRole(role_arn.to_owned());
    let name = role_arn
        .strip_prefix(&format!("arn:aws:iam::{}:role/", state.account))
        .and_then(|p| p.rsplit('/').next())
        .ok_or_else(no_role)?;
    let (role, _) = records::get::<Role>(&*state.store, &Role::key(name)).await?.ok_or_else(no_role)?;
    let trusted = Policy::parse_trust(&role.assume_role_policy_document)
        .is_ok_and(|t| t.trusts(trustee.principals, &state.account, trustee.service));
    if !trusted {
        return Err(IssueError::NotTrusted(role_arn.to_owned()));
    }
    Ok(role)
}

/// How long an expired temporary key is kept: a caller still using it within this time is
/// told ExpiredTokenException (not that the key is unknown).
const EXPIRED_KEPT_SECONDS: i64 = 24 * 3600;

/// Adds the deletion of every temporary key expired for over [`EXPIRED_KEPT_SECONDS`] to
/// `txn` (and forgets them), so the store does not grow with sessions nobody can use any more.
fn prune_expired(state: &State, mut txn: Txn) -> Txn {
    for id in state.keys.expired(chrono::Utc::now().timestamp() - EXPIRED_KEPT_SECONDS) {
        state.keys.remove(&id);
        txn = txn.delete(credentials::key_path(&id), Expect::Any);
    }
    txn
}

/// `AssumeRole`.
pub async fn assume_role(c: Ctx) -> Result<Option<Xml>, IamError> {
    let role_arn = c.params.required("RoleArn")?;
    let session = c.params.name("RoleSessionName", 64)?;
    if session.len() < 2 {
        return Err(IamError::validation(format!(
            "Value '{session}' at 'roleSessionName' failed to satisfy constraint: Member must have length greater than or equal to 2"
        )));
    }
    let duration = c.params.int("DurationSeconds", MIN_DURATION, MAX_DURATION)?.unwrap_or(DEFAULT_DURATION);
    let caller = c.call.principal.as_str();
    let own_role = match Identity::of(&c.state.account, caller) {
        Identity::AssumedRole { role, .. } => Some(entities::arn(&c.state.account, "role", "/", &role)),
        _ => None,
    };
    let mut principals = vec![caller];
    principals.extend(own_role.as_deref());
    let trustee = Trustee { principals: &principals, service: None };
    let creds = issue_role_credentials(&c.state, role_arn, session, duration, trustee).await.map_err(|e| match e {
        IssueError::NoSuchRole(_) | IssueError::NotTrusted(_) => IamError::access_denied(format!(
            "User: {caller} is not authorized to perform: sts:AssumeRole on resource: {role_arn}"
        )),
        IssueError::TooLong => IamError::validation_plain(e.to_string()),
        IssueError::Record(r) => r.into(),
    })?;
    let mut x = Xml::default();
    x.node("Credentials", |x| {
        x.leaf("AccessKeyId", &creds.access_key_id)
            .leaf("SecretAccessKey", &creds.secret_access_key)
            .leaf("SessionToken", &creds.session_token)
            .leaf("Expiration", entities::iso(creds.expiration));
    })
    .node("AssumedRoleUser", |x| {
        x.leaf("AssumedRoleId", &creds.assumed_role_id).leaf("Arn", &creds.arn);
    });
    Ok(Some(x))
}

/// `GetCallerIdentity`: needs no permission.
pub async fn get_caller_identity(c: Ctx) -> Result<Option<Xml>, IamError> {
    let state = &c.state;
    let user_id = match Identity::of(&state.account, &c.call.principal) {
        Identity::User { name } => records::get::<User>(&*state.store, &User::key(&name)).await?.map(|(u, _)| u.id),
        Identity::AssumedRole { role, session } => {
            records::get::<Role>(&*state.store, &Role::key(&role)).await?.map(|(r, _)| format!("{}:{session}", r.id))
        }
        Identity::Root | Identity::Unknown => Some(state.account.clone()),
    };
    let mut x = Xml::default();
    x.leaf("UserId", user_id.unwrap_or_default()).leaf("Account", &state.account).leaf("Arn", &c.call.principal);
    Ok(Some(x))
}
