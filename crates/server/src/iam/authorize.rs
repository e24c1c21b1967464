//! Authorization: who the caller is, which policies apply to them (cached), and the
//! decision for one action on one resource, with AWS's AccessDenied message.
//!
//! # Behavior
//!
//! - The account root (the administrator key) is allowed everything without evaluation,
//!   as on AWS, so the agent and the API benchmark pay nothing for IAM.
//! - A user is governed by its inline and attached policies; an assumed-role session by
//!   its role's. The parsed set is cached per principal and dropped by [`Authorizer::invalidate`],
//!   which every IAM write calls.
//!
//! # Limitations
//!
//! - The cache is per server process: with several replicas, a policy change is seen by
//!   the other replicas only when they restart (berth runs one replica today).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use berth_iam::{evaluate, Decision, Policy, Request};

use super::entities::{self, ManagedPolicy, Permissions, Role, User};
use crate::records::{self, RecordError};
use crate::state::State;

/// Who signed a request, read from the principal ARN its key acts as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// `arn:aws:iam::ACCOUNT:root`: the administrator.
    Root,
    /// `arn:aws:iam::ACCOUNT:user/PATH/NAME`.
    User { name: String },
    /// `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`.
    AssumedRole { role: String, session: String },
    /// Anything else: allowed nothing.
    Unknown,
}

impl Identity {
    /// The identity `principal` (an ARN) names in `account`.
    pub fn of(account: &str, principal: &str) -> Self {
        if let Some(rest) = resource_in(principal, "iam", account) {
            if rest == "root" {
                return Self::Root;
            }
            if let Some(path) = rest.strip_prefix("user/") {
                return Self::User { name: path.rsplit('/').next().unwrap_or(path).to_owned() };
            }
        }
        if let Some(rest) = resource_in(principal, "sts", account).and_then(|r| r.strip_prefix("assumed-role/")) {
            if let Some((role, session)) = rest.split_once('/') {
                return Self::AssumedRole { role: role.to_owned(), session: session.to_owned() };
            }
        }
        Self::Unknown
    }
}

/// The resource part of `arn:aws:SERVICE::ACCOUNT:RESOURCE`, without allocating (this
/// runs on every authorized request).
fn resource_in<'a>(arn: &'a str, service: &str, account: &str) -> Option<&'a str> {
    arn.strip_prefix("arn:aws:")?.strip_prefix(service)?.strip_prefix("::")?.strip_prefix(account)?.strip_prefix(':')
}

/// The per-principal cache of parsed policies.
#[derive(Default)]
pub struct Authorizer {
    cache: RwLock<HashMap<String, Arc<Vec<Policy>>>>,
    /// Bumped by every invalidation, so a load that raced with a change is not cached.
    generation: AtomicU64,
}

impl Authorizer {
    /// Forgets every cached policy set: some IAM entity changed.
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut cache) = self.cache.write() {
            cache.clear();
        }
    }

    fn cached(&self, principal: &str) -> Option<Arc<Vec<Policy>>> {
        self.cache.read().ok().and_then(|c| c.get(principal).cloned())
    }

    fn remember(&self, principal: &str, generation: u64, policies: Arc<Vec<Policy>>) {
        if let Ok(mut cache) = self.cache.write() {
            if self.generation.load(Ordering::SeqCst) == generation {
                cache.insert(principal.to_owned(), policies);
            }
        }
    }
}

/// A refusal, with AWS's message; the protocol layer gives it its wire form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied(pub String);

/// Decides whether `principal` may do `request`: `Ok` when allowed.
pub async fn check(state: &State, principal: &str, request: Request) -> Result<Result<(), Denied>, RecordError> {
    let identity = Identity::of(&state.account, principal);
    if identity == Identity::Root {
        return Ok(Ok(()));
    }
    let policies = policies(state, principal, &identity).await?;
    let request = with_principal_keys(state, principal, &identity, request);
    Ok(match evaluate(policies.iter(), &request) {
        Decision::Allow => Ok(()),
        Decision::ExplicitDeny => Err(Denied(format!(
            "User: {principal} is not authorized to perform: {} on resource: {} with an explicit deny in an identity-based policy",
            request.action, request.resource
        ))),
        Decision::ImplicitDeny => Err(Denied(format!(
            "User: {principal} is not authorized to perform: {} on resource: {} because no identity-based policy allows the {} action",
            request.action, request.resource, request.action
        ))),
    })
}

/// Whether any policy of `principal` has a condition on `aws:ResourceTag/...`, so that
/// the caller looks up the resource's tags only then.
pub async fn wants_resource_tags(state: &State, principal: &str) -> Result<bool, RecordError> {
    let identity = Identity::of(&state.account, principal);
    if identity == Identity::Root {
        return Ok(false);
    }
    Ok(policies(state, principal, &identity).await?.iter().any(|p| p.mentions_key("aws:resourcetag/")))
}

/// The global condition keys berth knows about the caller.
fn with_principal_keys(state: &State, principal: &str, identity: &Identity, request: Request) -> Request {
    let request = request.with("aws:PrincipalAccount", &state.account);
    match identity {
        Identity::User { name } => request.with("aws:username", name).with("aws:PrincipalArn", principal),
        Identity::AssumedRole { role, .. } => {
            request.with("aws:PrincipalArn", entities::arn(&state.account, "role", "/", role))
        }
        Identity::Root | Identity::Unknown => request.with("aws:PrincipalArn", principal),
    }
}

/// The parsed policies governing `principal`, from the cache or the store.
async fn policies(state: &State, principal: &str, identity: &Identity) -> Result<Arc<Vec<Policy>>, RecordError> {
    let authorizer = &state.iam.authorizer;
    if let Some(p) = authorizer.cached(principal) {
        return Ok(p);
    }
    let generation = authorizer.generation.load(Ordering::SeqCst);
    let permissions = match identity {
        Identity::User { name } => {
            records::get::<User>(&*state.store, &entities::user_key(name)).await?.map(|(u, _)| u.permissions)
        }
        Identity::AssumedRole { role, .. } => {
            records::get::<Role>(&*state.store, &entities::role_key(role)).await?.map(|(r, _)| r.permissions)
        }
        Identity::Root | Identity::Unknown => None,
    };
    let policies = Arc::new(match permissions {
        Some(p) => parse_all(state, &p).await?,
        None => Vec::new(),
    });
    authorizer.remember(principal, generation, Arc::clone(&policies));
    Ok(policies)
}

/// Every inline and attached policy of an entity, parsed. Documents were validated when
/// stored, so one that no longer parses (a newer build's grammar) is skipped, which can
/// only take permissions away.
async fn parse_all(state: &State, permissions: &Permissions) -> Result<Vec<Policy>, RecordError> {
    let mut documents: Vec<String> = permissions.inline.values().cloned().collect();
    for arn in &permissions.attached {
        let document = match super::aws_managed::document(arn) {
            Some(d) => Some(d.to_owned()),
            None => records::get::<ManagedPolicy>(&*state.store, &entities::policy_key(arn))
                .await?
                .and_then(|(p, _)| p.default_document().map(str::to_owned)),
        };
        documents.extend(document);
    }
    Ok(documents.iter().filter_map(|d| Policy::parse(d).ok()).collect())
}
