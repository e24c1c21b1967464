//! The ECS cluster query language: the expressions of `memberOf` placement constraints and of
//! `ListContainerInstances --filter`. Pure: [`parse`] turns text into an [`Expr`], and
//! [`Expr::matches`] evaluates it against anything that implements [`Subject`].
//!
//! # Behavior
//!
//! The grammar follows the ECS developer guide ("Create expressions to define container
//! instances for Amazon ECS tasks"):
//!
//! ```text
//! expr    := and ( ("or" | "||") and )*
//! and     := unary ( ("and" | "&&") unary )*
//! unary   := ("not" | "!") unary | "(" expr ")" | test
//! test    := subject operator [argument]
//! subject := agentConnected | agentVersion | attribute:NAME | ec2InstanceId
//!          | registeredAt | runningTasksCount | task:group
//! argument:= value | "[" value ("," value)* "]"        (lists for in / not_in)
//! value   := bare-word | 'single quoted' | "double quoted"
//! ```
//!
//! - Operators: `==`/`equals`, `!=`/`not_equals`, `>`/`greater_than`, `>=`/`greater_than_equal`,
//!   `<`/`less_than`, `<=`/`less_than_equal`, `exists`, `!exists`/`not_exists`, `in`,
//!   `!in`/`not_in`, `=~`/`matches`, `!~`/`not_matches`. `not` binds tighter than `and`,
//!   which binds tighter than `or`; keywords are case-insensitive.
//! - Each field subject accepts the operators the guide lists for it (for example
//!   `agentConnected` has no ordering); `attribute:NAME` accepts all of them and `task:group`
//!   all but the orderings.
//! - `==`, `in` and friends compare strings exactly. The orderings compare numbers when both
//!   sides are numbers, dotted versions for `agentVersion`, instants for `registeredAt`
//!   (formats `2018-06-18T22:28:28+00:00`, `...Z`, `2018-06-18T22:28:28`, `2018-06-18`; no
//!   zone means UTC), and strings lexically otherwise.
//! - `=~` takes a regular expression that must match the whole value, as Java's
//!   `String.matches` does (ECS documents Java patterns; the common subset is the same).
//! - A subject the instance lacks (an attribute it does not have) satisfies only `!exists`:
//!   `attribute:stack != prod` selects the instances that have `stack` with another value, as
//!   the ECS guide's example describes. An attribute that has no value is present with the
//!   empty string as its value.
//! - `task:group` is a set (the groups of the tasks on the instance): `==`, `in` and `=~` hold
//!   when some group matches, `!=`, `!in` and `!~` when none does (so on an empty instance).
//!
//! # Limitations
//!
//! - Bare values end at white space, parentheses, brackets, commas, quotes, `&&` and `||`;
//!   a value containing any of them (a regex with a group, an attribute value with a space)
//!   must be quoted. Quotes have no escapes.
//! - Expressions are at most [`MAX_LEN`] characters (ECS's limit) and nest at most
//!   [`MAX_DEPTH`] parentheses or `not`s, so evaluation never recurses deeply.
//! - Rust's `regex` syntax stands in for Java's: backreferences and look-around are rejected
//!   as invalid patterns.

mod parser;
#[cfg(test)]
mod tests;

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use regex::Regex;

use crate::error::ApiError;

/// The longest expression accepted, in characters (ECS's limit).
pub const MAX_LEN: usize = 2000;
/// The deepest nesting of parentheses and `not` accepted.
pub const MAX_DEPTH: usize = 32;

/// Parses a cluster query expression.
pub fn parse(expr: &str) -> Result<Expr, QueryError> {
    parser::parse(expr)
}

/// Why an expression did not parse. The message names the position (1-based, in characters)
/// and the offending token; it is answered as an `InvalidParameterException`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// The expression is blank.
    #[error("Invalid query expression: the expression is empty.")]
    Empty,
    /// The expression is longer than ECS allows.
    #[error("Invalid query expression: it is {len} characters long; the maximum is 2000.")]
    TooLong {
        /// Its length in characters.
        len: usize,
    },
    /// Parentheses or `not` nest too deeply.
    #[error("Invalid query expression: nesting deeper than 32 levels at position {pos}.")]
    TooDeep {
        /// Where the nesting went too deep.
        pos: usize,
    },
    /// A token that does not fit the grammar there.
    #[error("Invalid query expression: unexpected {found} at position {pos}; expected {expected}.")]
    Unexpected {
        /// Where.
        pos: usize,
        /// The token found, quoted, or "end of expression".
        found: String,
        /// What the grammar wanted there.
        expected: &'static str,
    },
    /// A subject that is not one of the language's.
    #[error(
        "Invalid query expression: unknown subject '{subject}' at position {pos}; expected agentConnected, \
         agentVersion, attribute:NAME, ec2InstanceId, registeredAt, runningTasksCount or task:group."
    )]
    UnknownSubject {
        /// Where.
        pos: usize,
        /// The subject given.
        subject: String,
    },
    /// An operator the subject does not support.
    #[error("Invalid query expression: operator '{op}' is not valid for subject '{subject}' at position {pos}.")]
    InvalidOperator {
        /// Where.
        pos: usize,
        /// The operator given.
        op: String,
        /// The subject it was applied to.
        subject: String,
    },
    /// A value of the wrong form for its subject (a date, a number, a boolean).
    #[error("Invalid query expression: invalid value '{value}' for {subject} at position {pos}; expected {expected}.")]
    InvalidValue {
        /// Where.
        pos: usize,
        /// The value given.
        value: String,
        /// The subject it was compared with.
        subject: String,
        /// What form the value must have.
        expected: &'static str,
    },
    /// A `=~` / `!~` pattern that is not a valid regular expression.
    #[error("Invalid query expression: invalid pattern '{pattern}' at position {pos}: {reason}")]
    InvalidPattern {
        /// Where.
        pos: usize,
        /// The pattern given.
        pattern: String,
        /// The regex engine's complaint, on one line.
        reason: String,
    },
    /// A quoted value without its closing quote.
    #[error("Invalid query expression: unterminated quoted value starting at position {pos}.")]
    UnterminatedQuote {
        /// Where the quote opened.
        pos: usize,
    },
}

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> Self {
        ApiError::invalid(e.to_string())
    }
}

/// A container instance (or anything else) an expression is evaluated against.
pub trait Subject {
    /// The value of attribute `name`: `None` when absent, `Some("")` when present without a value.
    fn attribute(&self, name: &str) -> Option<&str>;
    /// The groups of the tasks on the instance (for `task:group`), each once.
    fn task_groups(&self) -> impl Iterator<Item = &str>;
    /// Whether some task on the instance is in `group`.
    fn has_task_group(&self, group: &str) -> bool {
        self.task_groups().any(|g| g == group)
    }
    /// The value of a field subject; `None` when the instance does not have it.
    fn field(&self, field: Field) -> Option<FieldValue<'_>>;
}

/// The field subjects of the language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// `agentConnected`: whether the instance's agent is connected.
    AgentConnected,
    /// `agentVersion`: the agent's version, `1.14.5`.
    AgentVersion,
    /// `ec2InstanceId`: the host's instance id.
    Ec2InstanceId,
    /// `registeredAt`: when the instance registered.
    RegisteredAt,
    /// `runningTasksCount`: how many tasks run on the instance.
    RunningTasksCount,
}

impl Field {
    /// The subject's name in expressions.
    pub const fn name(self) -> &'static str {
        match self {
            Self::AgentConnected => "agentConnected",
            Self::AgentVersion => "agentVersion",
            Self::Ec2InstanceId => "ec2InstanceId",
            Self::RegisteredAt => "registeredAt",
            Self::RunningTasksCount => "runningTasksCount",
        }
    }
}

/// The value of a field subject.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FieldValue<'a> {
    /// `agentConnected`.
    Bool(bool),
    /// `runningTasksCount`.
    Number(f64),
    /// `registeredAt`, in epoch seconds.
    Time(f64),
    /// `agentVersion`, `ec2InstanceId`.
    Text(&'a str),
}

/// A parsed expression. Cheap to evaluate; `Display` gives back the source text.
#[derive(Debug, Clone)]
pub struct Expr {
    source: String,
    node: Node,
}

impl Expr {
    /// Whether `subject` satisfies the expression.
    pub fn matches(&self, subject: &impl Subject) -> bool {
        self.node.eval(subject)
    }

    /// The text the expression was parsed from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether the expression only reads attributes and fields that do not change when tasks are
    /// placed (no `task:group`, no `runningTasksCount`), so a result may be cached per instance
    /// for as long as the instance is not re-registered.
    pub fn is_static(&self) -> bool {
        self.node.is_static()
    }
}

impl PartialEq for Expr {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl FromStr for Expr {
    type Err = QueryError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s)
    }
}

#[derive(Debug, Clone)]
enum Node {
    Or(Vec<Node>),
    And(Vec<Node>),
    Not(Box<Node>),
    Test(Test),
}

impl Node {
    // Recursion is bounded: the parser flattens and/or chains and limits nesting to MAX_DEPTH.
    fn eval(&self, s: &impl Subject) -> bool {
        match self {
            Self::Or(nodes) => nodes.iter().any(|n| n.eval(s)),
            Self::And(nodes) => nodes.iter().all(|n| n.eval(s)),
            Self::Not(node) => !node.eval(s),
            Self::Test(t) => t.eval(s),
        }
    }

    fn is_static(&self) -> bool {
        match self {
            Self::Or(nodes) | Self::And(nodes) => nodes.iter().all(Node::is_static),
            Self::Not(node) => node.is_static(),
            Self::Test(t) => {
                !matches!(t.subject, SubjectKind::TaskGroup | SubjectKind::Field(Field::RunningTasksCount))
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum SubjectKind {
    Attribute(String),
    TaskGroup,
    Field(Field),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Exists,
    NotExists,
    In,
    NotIn,
    Matches,
    NotMatches,
}

impl Op {
    fn is_ordering(self) -> bool {
        matches!(self, Self::Gt | Self::Ge | Self::Lt | Self::Le)
    }

    fn accepts(self, ord: Ordering) -> bool {
        match self {
            Self::Gt => ord == Ordering::Greater,
            Self::Ge => ord != Ordering::Less,
            Self::Lt => ord == Ordering::Less,
            Self::Le => ord != Ordering::Greater,
            _ => false,
        }
    }
}

/// A literal argument: its text and, when it reads as one, its number (for dates, epoch seconds).
#[derive(Debug, Clone)]
struct Value {
    text: String,
    number: Option<f64>,
}

#[derive(Debug, Clone)]
enum Arg {
    None,
    One(Value),
    List(Vec<Value>),
    Pattern(Regex),
}

#[derive(Debug, Clone)]
struct Test {
    subject: SubjectKind,
    op: Op,
    arg: Arg,
}

/// The present value of a subject, in the form its comparisons need.
enum Actual<'a> {
    Text(&'a str),
    Number(f64),
    Version(&'a str),
}

impl Actual<'_> {
    fn text(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Self::Text(s) | Self::Version(s) => (*s).into(),
            Self::Number(n) => format_number(*n).into(),
        }
    }

    fn equals(&self, v: &Value) -> bool {
        match self {
            Self::Text(s) | Self::Version(s) => *s == v.text,
            Self::Number(n) => v.number == Some(*n),
        }
    }

    fn cmp(&self, v: &Value) -> Option<Ordering> {
        match self {
            Self::Number(n) => n.partial_cmp(&v.number?),
            Self::Version(s) => Some(compare_versions(s, &v.text)),
            Self::Text(s) => match (parse_number(s), v.number) {
                (Some(a), Some(b)) => a.partial_cmp(&b),
                _ => Some((*s).cmp(v.text.as_str())),
            },
        }
    }
}

impl Test {
    fn eval(&self, s: &impl Subject) -> bool {
        match &self.subject {
            SubjectKind::TaskGroup => self.eval_groups(s),
            SubjectKind::Attribute(name) => self.eval_one(s.attribute(name).map(Actual::Text)),
            SubjectKind::Field(f) => self.eval_one(s.field(*f).map(|v| match v {
                FieldValue::Bool(b) => Actual::Text(if b { "true" } else { "false" }),
                FieldValue::Number(n) | FieldValue::Time(n) => Actual::Number(n),
                FieldValue::Text(t) if *f == Field::AgentVersion => Actual::Version(t),
                FieldValue::Text(t) => Actual::Text(t),
            })),
        }
    }

    fn eval_one(&self, actual: Option<Actual<'_>>) -> bool {
        let Some(a) = actual else { return self.op == Op::NotExists };
        match (&self.arg, self.op) {
            (_, Op::Exists) => true,
            (_, Op::NotExists) => false,
            (Arg::One(v), Op::Eq) => a.equals(v),
            (Arg::One(v), Op::Ne) => !a.equals(v),
            (Arg::One(v), op) if op.is_ordering() => a.cmp(v).is_some_and(|o| op.accepts(o)),
            (Arg::List(vs), Op::In) => vs.iter().any(|v| a.equals(v)),
            (Arg::List(vs), Op::NotIn) => !vs.iter().any(|v| a.equals(v)),
            (Arg::Pattern(re), Op::Matches) => re.is_match(&a.text()),
            (Arg::Pattern(re), Op::NotMatches) => !re.is_match(&a.text()),
            _ => false,
        }
    }

    fn eval_groups(&self, s: &impl Subject) -> bool {
        match (&self.arg, self.op) {
            (_, Op::Exists) => s.task_groups().next().is_some(),
            (_, Op::NotExists) => s.task_groups().next().is_none(),
            (Arg::One(v), Op::Eq) => s.has_task_group(&v.text),
            (Arg::One(v), Op::Ne) => !s.has_task_group(&v.text),
            (Arg::List(vs), Op::In) => vs.iter().any(|v| s.has_task_group(&v.text)),
            (Arg::List(vs), Op::NotIn) => !vs.iter().any(|v| s.has_task_group(&v.text)),
            (Arg::Pattern(re), Op::Matches) => s.task_groups().any(|g| re.is_match(g)),
            (Arg::Pattern(re), Op::NotMatches) => !s.task_groups().any(|g| re.is_match(g)),
            _ => false,
        }
    }
}

/// A finite number, when `s` reads as one.
fn parse_number(s: &str) -> Option<f64> {
    let looks_numeric =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E'));
    if !looks_numeric {
        return None;
    }
    s.parse::<f64>().ok().filter(|n| n.is_finite())
}

fn format_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

/// Compares dotted versions segment by segment: numerically where both segments are numbers.
fn compare_versions(a: &str, b: &str) -> Ordering {
    let mut xs = a.split('.');
    let mut ys = b.split('.');
    loop {
        match (xs.next(), ys.next()) {
            (None, None) => return Ordering::Equal,
            (Some(_), None) => return Ordering::Greater,
            (None, Some(_)) => return Ordering::Less,
            (Some(x), Some(y)) => {
                let ord = match (x.parse::<u64>(), y.parse::<u64>()) {
                    (Ok(p), Ok(q)) => p.cmp(&q),
                    _ => x.cmp(y),
                };
                if ord != Ordering::Equal {
                    return ord;
                }
            }
        }
    }
}

/// Epoch seconds of `2018-06-18T22:28:28+00:00`, `2018-06-18T22:28:28Z`, `2018-06-18T22:28:28`
/// (UTC) or `2018-06-18` (midnight UTC); fractional seconds are accepted.
pub fn parse_date(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(r)?;
        if part.iter().all(u8::is_ascii_digit) {
            std::str::from_utf8(part).ok()?.parse().ok()
        } else {
            None
        }
    };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let mut secs = days_from_civil(year, month, day) as f64 * 86_400.0;
    if b.len() == 10 {
        return Some(secs);
    }
    if b.len() < 19 || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (h, m, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if h > 23 || m > 59 || sec > 60 {
        return None;
    }
    secs += (h * 3600 + m * 60 + sec) as f64;
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        secs += format!("0.{}", &frac[..digits]).parse::<f64>().ok()?;
        rest = &frac[digits..];
    }
    match rest {
        "" | "Z" => Some(secs),
        zone => {
            let zb = zone.as_bytes();
            if zb.len() != 6 || !matches!(zb[0], b'+' | b'-') || zb[3] != b':' {
                return None;
            }
            let digits = |r: std::ops::Range<usize>| -> Option<i64> {
                let part = zone.get(r)?;
                if part.bytes().all(|c| c.is_ascii_digit()) {
                    part.parse().ok()
                } else {
                    None
                }
            };
            let offset = (digits(1..3)? * 3600 + digits(4..6)? * 60) as f64;
            Some(if zb[0] == b'+' { secs - offset } else { secs + offset })
        }
    }
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}
