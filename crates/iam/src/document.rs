//! The policy document grammar, parsed into typed statements.

use serde_json::{Map, Value};

use crate::condition::Condition;
use crate::pattern::matches;
use crate::Request;

/// Why a document is not a valid policy; `Display` is IAM's `MalformedPolicyDocument`
/// message for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MalformedPolicy {
    /// The document is not JSON, or not an object.
    #[error("This policy contains invalid Json")]
    InvalidJson,
    /// The grammar is broken; the text says where.
    #[error("Syntax errors in policy.")]
    Syntax,
    /// `Version` is not one IAM knows.
    #[error("The policy failed legacy parsing")]
    Version,
    /// A statement has neither `Action` nor `NotAction`.
    #[error("Policy statement must contain actions.")]
    NoActions,
    /// An identity policy statement has neither `Resource` nor `NotResource`.
    #[error("Policy statement must contain resources.")]
    NoResources,
    /// An identity policy names a principal.
    #[error("Policy document should not specify a principal.")]
    PrincipalInIdentityPolicy,
    /// A trust policy names a resource.
    #[error("Has prohibited field Resource")]
    ResourceInTrustPolicy,
    /// A trust policy statement has no principal.
    #[error("Missing required field Principal")]
    NoPrincipal,
    /// A condition operator berth does not evaluate.
    #[error("Policy has an invalid condition operator: {0}")]
    ConditionOperator(String),
}

/// What a statement does when it applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Grants the request.
    Allow,
    /// Refuses the request, whatever else allows it.
    Deny,
}

/// A set of values that a statement lists, or lists the complement of (`Not*`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Patterns {
    values: Vec<String>,
    negated: bool,
}

impl Patterns {
    fn matches(&self, value: &str, ignore_case: bool) -> bool {
        self.values.iter().any(|p| matches(p, value, ignore_case)) != self.negated
    }
}

/// Who a trust-policy statement names.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Principal {
    /// `"Principal": "*"`, or `{"AWS": "*"}`.
    pub anyone: bool,
    /// `AWS` principals: ARNs or account ids.
    pub aws: Vec<String>,
    /// `Service` principals, e.g. `ecs-tasks.amazonaws.com`.
    pub service: Vec<String>,
}

/// One statement of a policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    /// Allow or Deny.
    pub effect: Effect,
    actions: Patterns,
    resources: Option<Patterns>,
    /// The principal of a trust-policy statement.
    pub principal: Option<Principal>,
    conditions: Vec<Condition>,
}

impl Statement {
    /// Whether this statement covers `request`: action, resource and every condition.
    pub fn applies(&self, request: &Request) -> bool {
        self.actions.matches(&request.action, true)
            && self.resources.as_ref().is_none_or(|r| r.matches(&request.resource, false))
            && self.conditions.iter().all(|c| c.holds(&request.context))
    }
}

/// A parsed policy document.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// The statements, in document order.
    pub statements: Vec<Statement>,
}

/// Which kind of document is parsed: they differ in which fields are required.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Identity,
    Trust,
}

impl Policy {
    /// Parses an identity-based policy (user, role, managed policy).
    pub fn parse(document: &str) -> Result<Self, MalformedPolicy> {
        Self::parse_as(document, Kind::Identity)
    }

    /// Parses a role's trust policy (`AssumeRolePolicyDocument`).
    pub fn parse_trust(document: &str) -> Result<Self, MalformedPolicy> {
        Self::parse_as(document, Kind::Trust)
    }

    fn parse_as(document: &str, kind: Kind) -> Result<Self, MalformedPolicy> {
        let value: Value = serde_json::from_str(document).map_err(|_| MalformedPolicy::InvalidJson)?;
        let Value::Object(doc) = value else { return Err(MalformedPolicy::InvalidJson) };
        for key in doc.keys() {
            if !matches!(key.as_str(), "Version" | "Id" | "Statement") {
                return Err(MalformedPolicy::Syntax);
            }
        }
        match doc.get("Version") {
            None => {}
            Some(Value::String(v)) if v == "2012-10-17" || v == "2008-10-17" => {}
            Some(_) => return Err(MalformedPolicy::Version),
        }
        let statements = match doc.get("Statement") {
            Some(Value::Array(items)) if !items.is_empty() => items.iter().collect::<Vec<_>>(),
            Some(one @ Value::Object(_)) => vec![one],
            _ => return Err(MalformedPolicy::Syntax),
        };
        let statements = statements.into_iter().map(|s| statement(s, kind)).collect::<Result<_, _>>()?;
        Ok(Self { statements })
    }

    /// Whether any condition tests a key starting with `prefix` (lower-case, e.g.
    /// `aws:resourcetag/`), so that a caller can skip computing keys nobody asks for.
    pub fn mentions_key(&self, prefix: &str) -> bool {
        self.statements.iter().flat_map(|s| &s.conditions).any(|c| c.key().starts_with(prefix))
    }

    /// Whether this trust policy lets `principal_arns` (the caller's ARN, and its account
    /// root) or the service `service` assume the role: an allowing `sts:AssumeRole`
    /// statement naming them, and no denying one.
    pub fn trusts(&self, principal_arns: &[&str], account: &str, service: Option<&str>) -> bool {
        let request = Request::new("sts:AssumeRole", "*");
        let names = |p: &Principal| {
            p.anyone
                || p.aws.iter().any(|a| a == account || principal_arns.iter().any(|arn| matches(a, arn, false)))
                || service.is_some_and(|s| p.service.iter().any(|x| x == s))
        };
        let mut allowed = false;
        for s in self.statements.iter().filter(|s| s.applies(&request) && s.principal.as_ref().is_some_and(names)) {
            match s.effect {
                Effect::Deny => return false,
                Effect::Allow => allowed = true,
            }
        }
        allowed
    }
}

fn statement(value: &Value, kind: Kind) -> Result<Statement, MalformedPolicy> {
    let Value::Object(s) = value else { return Err(MalformedPolicy::Syntax) };
    for key in s.keys() {
        let known = matches!(
            key.as_str(),
            "Sid"
                | "Effect"
                | "Action"
                | "NotAction"
                | "Resource"
                | "NotResource"
                | "Principal"
                | "NotPrincipal"
                | "Condition"
        );
        if !known {
            return Err(MalformedPolicy::Syntax);
        }
    }
    if s.get("Sid").is_some_and(|v| !v.is_string()) {
        return Err(MalformedPolicy::Syntax);
    }
    let effect = match s.get("Effect").and_then(Value::as_str) {
        Some("Allow") => Effect::Allow,
        Some("Deny") => Effect::Deny,
        _ => return Err(MalformedPolicy::Syntax),
    };
    let actions = patterns(s, "Action", "NotAction")?.ok_or(MalformedPolicy::NoActions)?;
    let resources = patterns(s, "Resource", "NotResource")?;
    let principal = principal(s)?;
    match kind {
        Kind::Identity if principal.is_some() => return Err(MalformedPolicy::PrincipalInIdentityPolicy),
        Kind::Identity if resources.is_none() => return Err(MalformedPolicy::NoResources),
        Kind::Trust if resources.is_some() => return Err(MalformedPolicy::ResourceInTrustPolicy),
        Kind::Trust if principal.is_none() => return Err(MalformedPolicy::NoPrincipal),
        _ => {}
    }
    let conditions = match s.get("Condition") {
        None => Vec::new(),
        Some(Value::Object(c)) => Condition::parse_block(c)?,
        Some(_) => return Err(MalformedPolicy::Syntax),
    };
    Ok(Statement { effect, actions, resources, principal, conditions })
}

/// The `key` (or `not_key`) list of a statement; both at once is a syntax error.
fn patterns(s: &Map<String, Value>, key: &str, not_key: &str) -> Result<Option<Patterns>, MalformedPolicy> {
    match (s.get(key), s.get(not_key)) {
        (Some(_), Some(_)) => Err(MalformedPolicy::Syntax),
        (Some(v), None) => Ok(Some(Patterns { values: strings(v)?, negated: false })),
        (None, Some(v)) => Ok(Some(Patterns { values: strings(v)?, negated: true })),
        (None, None) => Ok(None),
    }
}

/// A string, or a non-empty array of strings.
pub(crate) fn strings(value: &Value) -> Result<Vec<String>, MalformedPolicy> {
    match value {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) if !items.is_empty() => {
            items.iter().map(|v| v.as_str().map(str::to_owned).ok_or(MalformedPolicy::Syntax)).collect()
        }
        _ => Err(MalformedPolicy::Syntax),
    }
}

fn principal(s: &Map<String, Value>) -> Result<Option<Principal>, MalformedPolicy> {
    if s.contains_key("NotPrincipal") {
        // Rare, and easy to get wrong: refused rather than half-evaluated.
        return Err(MalformedPolicy::Syntax);
    }
    let Some(value) = s.get("Principal") else { return Ok(None) };
    let mut p = Principal::default();
    match value {
        Value::String(star) if star == "*" => p.anyone = true,
        Value::Object(m) => {
            for (kind, names) in m {
                let names = strings(names)?;
                match kind.as_str() {
                    "AWS" if names.iter().any(|n| n == "*") => p.anyone = true,
                    "AWS" => p.aws = names,
                    "Service" => p.service = names,
                    "Federated" | "CanonicalUser" => {}
                    _ => return Err(MalformedPolicy::Syntax),
                }
            }
        }
        _ => return Err(MalformedPolicy::Syntax),
    }
    Ok(Some(p))
}
