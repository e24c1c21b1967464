//! IAM and STS, as far as berth needs them: users, roles, policies and access keys over
//! the AWS query protocol, temporary credentials from STS, and the authorization of every
//! API call against the caller's policies.
//!
//! - [`wire`]: the query protocol (form parameters in, XML out, XML errors).
//! - [`entities`]: the stored roles, users and managed policies.
//! - [`roles`], [`users`], [`policies`], [`permissions`], [`access_keys`]: the IAM
//!   operations; [`sts`]: GetCallerIdentity and AssumeRole.
//! - [`authorize`]: policy evaluation for a caller, cached; [`ecs`]: the resource of each
//!   ECS call.
//!
//! The evaluator itself is the I/O-free `berth-iam` crate. See docs/iam.md.

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use berth_store::BoxFuture;

mod access_keys;
mod authorize;
mod aws_managed;
pub mod ecs;
mod entities;
mod permissions;
mod policies;
mod roles;
pub mod sts;
mod users;
mod wire;

#[cfg(test)]
mod tests;

pub use authorize::Authorizer;
pub(crate) use authorize::{check, Denied};
use wire::{IamError, Params, Xml};

use crate::state::{Call, State};

const IAM_NAMESPACE: &str = "https://iam.amazonaws.com/doc/2010-05-08/";
const STS_NAMESPACE: &str = "https://sts.amazonaws.com/doc/2011-06-15/";
const IAM_VERSION: &str = "2010-05-08";
const STS_VERSION: &str = "2011-06-15";

/// Caps every temporary credential's lifetime at this many seconds (a test hook: AWS's
/// floor of 900 s is too long to wait for in a test). Unset in normal use.
const SESSION_CAP_ENV: &str = "BERTH_IAM_SESSION_CAP_SECONDS";

/// IAM's server-wide state.
pub struct Iam {
    /// Cached policies per principal.
    pub authorizer: Authorizer,
    /// The administrator's principal ARN, allowed everything.
    pub root_arn: String,
    /// The lifetime cap of [`SESSION_CAP_ENV`], if set.
    session_cap: Option<i64>,
    iam_ops: HashMap<&'static str, Op>,
    sts_ops: HashMap<&'static str, Op>,
}

impl Iam {
    /// IAM for `account`.
    pub fn new(account: &str) -> Self {
        Self {
            authorizer: Authorizer::default(),
            root_arn: format!("arn:aws:iam::{account}:root"),
            session_cap: std::env::var(SESSION_CAP_ENV).ok().and_then(|v| v.parse().ok()).filter(|s| *s > 0),
            iam_ops: iam_operations(),
            sts_ops: sts_operations(),
        }
    }
}

/// One request to an IAM or STS operation.
pub struct Ctx {
    pub state: Arc<State>,
    pub call: Call,
    pub params: Params,
}

impl Ctx {
    /// An IAM ARN in this account.
    fn arn(&self, kind: &str, name: Option<&str>) -> String {
        entities::arn(&self.state.account, kind, "/", name.unwrap_or("*"))
    }
}

type Handler = fn(Ctx) -> BoxFuture<'static, Result<Option<Xml>, IamError>>;

/// An operation: its handler and the resource it is authorized on.
struct Op {
    handler: Handler,
    resource: fn(&Ctx) -> String,
}

macro_rules! ops {
    ($t:ident; $($name:expr => $handler:path, $resource:expr;)*) => {
        $( $t.insert($name, Op { handler: |c| Box::pin($handler(c)), resource: $resource }); )*
    };
}

/// The operations roles and users share, named `{verb}{Kind}{noun}` as IAM names them.
macro_rules! entity_ops {
    ($t:ident, $kind:literal, $e:ty, $resource:expr) => {{
        use permissions::{
            attach, delete_inline, detach, get_inline, list_attached, list_inline, list_tags, put_inline, tag, untag,
        };
        ops! { $t;
            concat!("Tag", $kind) => tag::<$e>, $resource;
            concat!("Untag", $kind) => untag::<$e>, $resource;
            concat!("List", $kind, "Tags") => list_tags::<$e>, $resource;
            concat!("Put", $kind, "Policy") => put_inline::<$e>, $resource;
            concat!("Get", $kind, "Policy") => get_inline::<$e>, $resource;
            concat!("List", $kind, "Policies") => list_inline::<$e>, $resource;
            concat!("Delete", $kind, "Policy") => delete_inline::<$e>, $resource;
            concat!("Attach", $kind, "Policy") => attach::<$e>, $resource;
            concat!("Detach", $kind, "Policy") => detach::<$e>, $resource;
            concat!("ListAttached", $kind, "Policies") => list_attached::<$e>, $resource;
        }
    }};
}

fn role(c: &Ctx) -> String {
    c.arn("role", c.params.get("RoleName"))
}

fn user(c: &Ctx) -> String {
    c.arn("user", c.params.get("UserName"))
}

/// Key operations name their user, or act on the caller's own when none is given.
fn key_user(c: &Ctx) -> String {
    match c.params.get("UserName") {
        Some(name) => c.arn("user", Some(name)),
        None => c.call.principal.clone(),
    }
}

fn policy(c: &Ctx) -> String {
    c.params.get("PolicyArn").map_or_else(|| "*".to_owned(), str::to_owned)
}

fn new_policy(c: &Ctx) -> String {
    c.arn("policy", c.params.get("PolicyName"))
}

fn any(_: &Ctx) -> String {
    "*".to_owned()
}

fn iam_operations() -> HashMap<&'static str, Op> {
    let mut t = HashMap::new();
    entity_ops!(t, "Role", entities::Role, role);
    entity_ops!(t, "User", entities::User, user);
    ops! { t;
        "CreateRole" => roles::create, role;
        "GetRole" => roles::get, role;
        "ListRoles" => roles::list, any;
        "DeleteRole" => roles::delete, role;
        "UpdateAssumeRolePolicy" => roles::update_assume_role_policy, role;
        "UpdateRole" => roles::update, role;
        "CreateUser" => users::create, user;
        "GetUser" => users::get, key_user;
        "ListUsers" => users::list, any;
        "DeleteUser" => users::delete, user;
        "CreatePolicy" => policies::create, new_policy;
        "GetPolicy" => policies::get, policy;
        "GetPolicyVersion" => policies::get_version, policy;
        "ListPolicyVersions" => policies::list_versions, policy;
        "CreatePolicyVersion" => policies::create_version, policy;
        "SetDefaultPolicyVersion" => policies::set_default_version, policy;
        "DeletePolicyVersion" => policies::delete_version, policy;
        "ListPolicies" => policies::list, any;
        "DeletePolicy" => policies::delete, policy;
        "CreateAccessKey" => access_keys::create, key_user;
        "ListAccessKeys" => access_keys::list, key_user;
        "DeleteAccessKey" => access_keys::delete, key_user;
    }
    t
}

fn sts_operations() -> HashMap<&'static str, Op> {
    let mut t = HashMap::new();
    ops! { t;
        "GetCallerIdentity" => sts::get_caller_identity, any;
        "AssumeRole" => sts::assume_role, |c: &Ctx| c.params.get("RoleArn").unwrap_or("*").to_owned();
    }
    t
}

/// Serves one query-protocol request (IAM or STS, by the signature's service).
pub async fn serve(state: &Arc<State>, method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let params = Params::decode(uri.query().unwrap_or_default(), body);
    let sts_version = params.get("Version") == Some(STS_VERSION);
    let (namespace, result) = match crate::front::authenticate(state, method, uri, headers, body) {
        Err(e) => (if sts_version { STS_NAMESPACE } else { IAM_NAMESPACE }, Err(IamError::from(e))),
        Ok((call, service)) => match service.as_str() {
            "sts" => (STS_NAMESPACE, dispatch(state, &state.iam.sts_ops, "sts", STS_VERSION, call, params).await),
            "iam" => (IAM_NAMESPACE, dispatch(state, &state.iam.iam_ops, "iam", IAM_VERSION, call, params).await),
            other => (
                IAM_NAMESPACE,
                Err(IamError::from(berth_api::ApiError::new(
                    berth_api::ErrorKind::InvalidSignature,
                    format!("Credential should be scoped to correct service: 'iam' or 'sts', not '{other}'."),
                ))),
            ),
        },
    };
    let (status, body) = match result {
        Ok((action, xml)) => (StatusCode::OK, wire::response(namespace, &action, xml, &request_id)),
        Err(e) => {
            if e.status >= 500 {
                tracing::error!(request_id, error = %e.message, "IAM request failed");
            }
            (
                StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                e.body(namespace, &request_id),
            )
        }
    };
    let mut response = (status, body).into_response();
    let h = response.headers_mut();
    h.insert("content-type", HeaderValue::from_static("text/xml"));
    if let Ok(id) = HeaderValue::from_str(&request_id) {
        h.insert("x-amzn-requestid", id);
    }
    response
}

/// Finds the action, authorizes it, and runs it.
async fn dispatch(
    state: &Arc<State>,
    table: &HashMap<&'static str, Op>,
    service: &str,
    version: &str,
    call: Call,
    params: Params,
) -> Result<(String, Option<Xml>), IamError> {
    let action = params.get("Action").unwrap_or_default().to_owned();
    let op = table.get(action.as_str()).ok_or_else(|| IamError::invalid_action(&action, version))?;
    let ctx = Ctx { state: Arc::clone(state), call, params };
    // GetCallerIdentity needs no permission, as on AWS.
    if action != "GetCallerIdentity" {
        let request = berth_iam::Request::new(format!("{service}:{action}"), (op.resource)(&ctx));
        if let Err(Denied(message)) = check(state, &ctx.call.principal, request).await? {
            return Err(IamError::access_denied(message));
        }
    }
    let xml = (op.handler)(ctx).await?;
    Ok((action, xml))
}
