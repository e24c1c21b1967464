//! IAM policy documents: parsing and evaluation the way AWS does it. No I/O.
//!
//! # Behavior
//!
//! - [`Policy::parse`] accepts the JSON grammar of IAM policies (Version `2012-10-17` or
//!   `2008-10-17`, `Statement` as one object or an array, `Action`/`NotAction`,
//!   `Resource`/`NotResource`, `Principal`/`NotPrincipal` and `Condition`, each value a
//!   string or an array of strings) and refuses anything else with the reason IAM's
//!   `MalformedPolicyDocument` gives.
//! - [`evaluate`] follows AWS's order for identity-based policies: an explicit `Deny` wins,
//!   then any `Allow`, else the request is implicitly denied.
//! - Actions match case-insensitively, resources case-sensitively; both take `*` and `?`.
//! - Conditions: `StringEquals`, `StringNotEquals`, `StringEqualsIgnoreCase`,
//!   `StringNotEqualsIgnoreCase`, `StringLike`, `StringNotLike`, `ArnEquals`, `ArnLike`,
//!   `ArnNotEquals`, `ArnNotLike`, `Bool`, `Null`, each with an `IfExists` form. Keys
//!   match case-insensitively; a key absent from the request fails the condition (unless
//!   `IfExists`, or the operator is a negated one, as on AWS).
//!
//! # Limitations
//!
//! - No policy variables (`${aws:username}`), numeric, date or IP operators, and no
//!   `ForAllValues:`/`ForAnyValue:` set qualifiers: a document using them is refused as
//!   malformed rather than evaluated wrongly.

mod condition;
mod document;
mod pattern;

#[cfg(test)]
mod tests;

pub use document::{Effect, MalformedPolicy, Policy, Principal, Statement};
pub use pattern::matches;

use std::collections::HashMap;

/// One request to authorize: the action, the resource, and the condition keys berth
/// knows for it (lower-cased names, e.g. `ecs:cluster`, `aws:principalarn`).
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// `service:Operation`, e.g. `ecs:DeleteCluster`.
    pub action: String,
    /// The resource ARN, or `*` when the action has no resource-level scope.
    pub resource: String,
    /// Condition key (lower-case) -> its values.
    pub context: HashMap<String, Vec<String>>,
}

impl Request {
    /// A request for `action` on `resource` with no condition keys yet.
    pub fn new(action: impl Into<String>, resource: impl Into<String>) -> Self {
        Self { action: action.into(), resource: resource.into(), context: HashMap::new() }
    }

    /// Adds condition key `key` (any case) with one value.
    pub fn with(mut self, key: &str, value: impl Into<String>) -> Self {
        self.context.entry(key.to_ascii_lowercase()).or_default().push(value.into());
        self
    }
}

/// The outcome of evaluating a request against a principal's policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Some statement allows it and none denies it.
    Allow,
    /// A statement denies it: nothing can allow it.
    ExplicitDeny,
    /// No statement allows it.
    ImplicitDeny,
}

/// Evaluates `request` against every policy in `policies`: explicit Deny, then Allow,
/// else implicit deny.
pub fn evaluate<'a>(policies: impl IntoIterator<Item = &'a Policy>, request: &Request) -> Decision {
    let mut allowed = false;
    for statement in policies.into_iter().flat_map(|p| p.statements.iter()) {
        if statement.applies(request) {
            match statement.effect {
                Effect::Deny => return Decision::ExplicitDeny,
                Effect::Allow => allowed = true,
            }
        }
    }
    if allowed {
        Decision::Allow
    } else {
        Decision::ImplicitDeny
    }
}
