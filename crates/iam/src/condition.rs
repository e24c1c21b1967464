//! The `Condition` block: operator -> key -> values, every entry required to hold.

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::document::{strings, MalformedPolicy};
use crate::pattern::matches;

/// How an operator compares a request value with a policy value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compare {
    Equals,
    EqualsIgnoreCase,
    Like,
    Bool,
}

/// One operator on one key, e.g. `StringLike` on `ecs:cluster`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Condition {
    compare: Compare,
    /// `StringNotEquals`, `ArnNotLike`, ...: true when no policy value matches.
    negated: bool,
    /// `...IfExists`: true when the key is absent.
    if_exists: bool,
    /// `Null`: the policy says whether the key must be absent.
    null: bool,
    key: String,
    values: Vec<String>,
}

impl Condition {
    /// Parses `{"StringEquals": {"ecs:cluster": "x"}, ...}`.
    pub(crate) fn parse_block(block: &Map<String, Value>) -> Result<Vec<Self>, MalformedPolicy> {
        let mut out = Vec::new();
        for (operator, entries) in block {
            let Value::Object(entries) = entries else { return Err(MalformedPolicy::Syntax) };
            for (key, values) in entries {
                let values = match values {
                    Value::Bool(b) => vec![b.to_string()],
                    other => strings(other)?,
                };
                out.push(Self::new(operator, key, values)?);
            }
        }
        Ok(out)
    }

    fn new(operator: &str, key: &str, values: Vec<String>) -> Result<Self, MalformedPolicy> {
        let unknown = || MalformedPolicy::ConditionOperator(operator.to_owned());
        let (base, if_exists) = match operator.strip_suffix("IfExists") {
            Some(base) => (base, true),
            None => (operator, false),
        };
        let (compare, negated, null) = match base {
            "StringEquals" | "ArnEquals" => (Compare::Equals, false, false),
            "StringNotEquals" | "ArnNotEquals" => (Compare::Equals, true, false),
            "StringEqualsIgnoreCase" => (Compare::EqualsIgnoreCase, false, false),
            "StringNotEqualsIgnoreCase" => (Compare::EqualsIgnoreCase, true, false),
            "StringLike" | "ArnLike" => (Compare::Like, false, false),
            "StringNotLike" | "ArnNotLike" => (Compare::Like, true, false),
            "Bool" => (Compare::Bool, false, false),
            "Null" if !if_exists => (Compare::Equals, false, true),
            _ => return Err(unknown()),
        };
        Ok(Self { compare, negated, if_exists, null, key: key.to_ascii_lowercase(), values })
    }

    /// The key tested, lower-case.
    pub(crate) fn key(&self) -> &str {
        &self.key
    }

    /// Whether the condition holds for the request's keys (lower-cased names).
    pub(crate) fn holds(&self, context: &HashMap<String, Vec<String>>) -> bool {
        let present = context.get(&self.key).filter(|v| !v.is_empty());
        if self.null {
            let want_absent = self.values.iter().any(|v| v.eq_ignore_ascii_case("true"));
            return present.is_none() == want_absent;
        }
        let Some(actual) = present else { return self.if_exists || self.negated };
        let any = actual.iter().any(|a| self.values.iter().any(|p| self.compare(p, a)));
        any != self.negated
    }

    fn compare(&self, policy: &str, actual: &str) -> bool {
        match self.compare {
            Compare::Equals => policy == actual,
            Compare::EqualsIgnoreCase | Compare::Bool => policy.eq_ignore_ascii_case(actual),
            Compare::Like => matches(policy, actual, false),
        }
    }
}
