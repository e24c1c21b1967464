//! CloudWatch Logs filter patterns: terms, quoted phrases, `?` alternatives and `-`
//! exclusions; JSON patterns (`{ $.level = "error" && $.ms > 100 }`); and space-delimited
//! patterns (`[ip, user, ..., status = 5*, bytes > 1000]`).
//!
//! # Limitations
//!
//! Matching is case-sensitive as on AWS; regular expressions (`%...%`) and metric-filter
//! dimensions are not supported and are refused as invalid patterns.

use serde_json::Value;

/// A parsed filter pattern.
#[derive(Debug, Clone, PartialEq)]
pub enum Pattern {
    /// Every event.
    All,
    /// Terms and phrases the message contains.
    Terms { all: Vec<String>, any: Vec<String>, none: Vec<String> },
    /// A condition on the message read as JSON.
    Json(Expr),
    /// Fields of the message split on spaces; `None` stands for `...`.
    Fields(Vec<Option<Field>>),
}

/// A boolean expression over JSON selectors.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Compare { selector: Vec<Step>, op: Op, value: Literal },
    Exists { selector: Vec<Step>, exists: bool },
    Is { selector: Vec<Step>, what: Value },
}

/// One step of a JSON selector (`.name` or `[n]`).
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Key(String),
    Index(usize),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A value compared against: a number, or a string that may hold `*` wildcards.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Number(f64),
    Text(String),
}

/// One named field of a space-delimited pattern with its conditions (alternatives of
/// conjunctions), empty when the field is only named.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub any_of: Vec<Vec<(Op, Literal)>>,
}

/// Why a pattern did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Invalid filter pattern: {0}")]
pub struct PatternError(String);

impl Pattern {
    /// Parses `text` (an empty pattern matches everything).
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        let text = text.trim();
        if text.is_empty() {
            Ok(Pattern::All)
        } else if let Some(inner) = text.strip_prefix('{') {
            let inner = inner.strip_suffix('}').ok_or_else(|| PatternError("a JSON pattern ends with '}'".into()))?;
            let mut p = Parser { tokens: lex(inner)?, at: 0 };
            let expr = p.or()?;
            match p.tokens.get(p.at) {
                None => Ok(Pattern::Json(expr)),
                Some(t) => Err(PatternError(format!("unexpected '{t}'"))),
            }
        } else if let Some(inner) = text.strip_prefix('[') {
            let inner = inner
                .strip_suffix(']')
                .ok_or_else(|| PatternError("a space-delimited pattern ends with ']'".into()))?;
            inner.split(',').map(field).collect::<Result<_, _>>().map(Pattern::Fields)
        } else {
            terms(text)
        }
    }

    /// Whether `message` matches.
    pub fn matches(&self, message: &str) -> bool {
        match self {
            Pattern::All => true,
            Pattern::Terms { all, any, none } => {
                all.iter().all(|t| message.contains(t.as_str()))
                    && (any.is_empty() || any.iter().any(|t| message.contains(t.as_str())))
                    && !none.iter().any(|t| message.contains(t.as_str()))
            }
            Pattern::Json(expr) => serde_json::from_str::<Value>(message).is_ok_and(|v| eval(expr, &v)),
            Pattern::Fields(fields) => fields_match(fields, &split_fields(message)),
        }
    }
}

fn terms(text: &str) -> Result<Pattern, PatternError> {
    let (mut all, mut any, mut none) = (Vec::new(), Vec::new(), Vec::new());
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        let (sigil, body) = match rest.as_bytes()[0] {
            b'?' => (Some('?'), &rest[1..]),
            b'-' => (Some('-'), &rest[1..]),
            _ => (None, rest),
        };
        let (term, after) = if let Some(quoted) = body.strip_prefix('"') {
            let end = quoted.find('"').ok_or_else(|| PatternError("an unterminated quoted phrase".into()))?;
            (quoted[..end].to_string(), &quoted[end + 1..])
        } else {
            let end = body.find(char::is_whitespace).unwrap_or(body.len());
            (body[..end].to_string(), &body[end..])
        };
        match sigil {
            Some('?') => any.push(term),
            Some(_) => none.push(term),
            None => all.push(term),
        }
        rest = after.trim_start();
    }
    Ok(Pattern::Terms { all, any, none })
}

/// JSON-pattern tokens: punctuation, operators, quoted strings (kept with their quotes) and words.
fn lex(text: &str) -> Result<Vec<String>, PatternError> {
    let mut tokens = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let two: String = chars[i..chars.len().min(i + 2)].iter().collect();
        if c.is_whitespace() {
            i += 1;
        } else if ["&&", "||", "!=", "<=", ">="].contains(&two.as_str()) {
            tokens.push(two);
            i += 2;
        } else if "()=<>".contains(c) {
            tokens.push(c.to_string());
            i += 1;
        } else if c == '"' {
            let end = chars[i + 1..]
                .iter()
                .position(|&d| d == '"')
                .ok_or_else(|| PatternError("an unterminated string".into()))?;
            tokens.push(chars[i..i + end + 2].iter().collect());
            i += end + 2;
        } else {
            let start = i;
            while i < chars.len() && !chars[i].is_whitespace() && !"()=<>!&|\"".contains(chars[i]) {
                i += 1;
            }
            if i == start {
                return Err(PatternError(format!("unexpected '{c}'")));
            }
            tokens.push(chars[start..i].iter().collect());
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<String>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&str> {
        self.tokens.get(self.at).map(String::as_str)
    }

    fn next(&mut self) -> Result<String, PatternError> {
        let t = self.tokens.get(self.at).cloned().ok_or_else(|| PatternError("the pattern ends early".into()))?;
        self.at += 1;
        Ok(t)
    }

    fn or(&mut self) -> Result<Expr, PatternError> {
        let mut left = self.and()?;
        while self.peek() == Some("||") {
            self.at += 1;
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, PatternError> {
        let mut left = self.unary()?;
        while self.peek() == Some("&&") {
            self.at += 1;
            left = Expr::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, PatternError> {
        if self.peek() == Some("(") {
            self.at += 1;
            let e = self.or()?;
            return match self.next()?.as_str() {
                ")" => Ok(e),
                t => Err(PatternError(format!("expected ')' but found '{t}'"))),
            };
        }
        let selector = selector(&self.next()?)?;
        let op = self.next()?;
        match op.as_str() {
            "IS" => {
                let what = match self.next()?.as_str() {
                    "NULL" => Value::Null,
                    "TRUE" => Value::Bool(true),
                    "FALSE" => Value::Bool(false),
                    t => return Err(PatternError(format!("IS takes NULL, TRUE or FALSE, not '{t}'"))),
                };
                Ok(Expr::Is { selector, what })
            }
            "NOT" => match self.next()?.as_str() {
                "EXISTS" => Ok(Expr::Exists { selector, exists: false }),
                t => Err(PatternError(format!("expected EXISTS after NOT, found '{t}'"))),
            },
            _ => Ok(Expr::Compare { selector, op: operator(&op)?, value: literal(&self.next()?) }),
        }
    }
}

fn operator(t: &str) -> Result<Op, PatternError> {
    Ok(match t {
        "=" => Op::Eq,
        "!=" => Op::Ne,
        "<" => Op::Lt,
        "<=" => Op::Le,
        ">" => Op::Gt,
        ">=" => Op::Ge,
        _ => return Err(PatternError(format!("'{t}' is not a comparison operator"))),
    })
}

fn literal(t: &str) -> Literal {
    match t.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        Some(s) => Literal::Text(s.to_string()),
        None => t.parse().map_or_else(|_| Literal::Text(t.to_string()), Literal::Number),
    }
}

/// `$.a.b[0]` -> steps.
fn selector(t: &str) -> Result<Vec<Step>, PatternError> {
    let rest =
        t.strip_prefix('$').ok_or_else(|| PatternError(format!("a JSON selector starts with '$', not '{t}'")))?;
    let mut steps = Vec::new();
    for part in rest.split('.').skip(1) {
        let (key, indexes) = part.split_once('[').map_or((part, ""), |(k, i)| (k, i));
        if !key.is_empty() {
            steps.push(Step::Key(key.to_string()));
        }
        for index in indexes.split('[').filter(|s| !s.is_empty()) {
            let n = index.trim_end_matches(']').parse().map_err(|_| PatternError(format!("bad index in '{t}'")))?;
            steps.push(Step::Index(n));
        }
    }
    if steps.is_empty() {
        return Err(PatternError(format!("the selector '{t}' names no member")));
    }
    Ok(steps)
}

fn select<'a>(v: &'a Value, steps: &[Step]) -> Option<&'a Value> {
    steps.iter().try_fold(v, |v, s| match s {
        Step::Key(k) => v.get(k),
        Step::Index(i) => v.get(i),
    })
}

fn eval(e: &Expr, v: &Value) -> bool {
    match e {
        Expr::And(a, b) => eval(a, v) && eval(b, v),
        Expr::Or(a, b) => eval(a, v) || eval(b, v),
        Expr::Exists { selector, exists } => select(v, selector).is_some() == *exists,
        Expr::Is { selector, what } => select(v, selector) == Some(what),
        Expr::Compare { selector, op, value } => select(v, selector).is_some_and(|found| {
            let text = match found {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => return false,
            };
            compare(&text, *op, value)
        }),
    }
}

/// Compares a field's text with a literal: numerically when both are numbers, else as text
/// with `*` wildcards (only `=` and `!=` apply to text).
fn compare(text: &str, op: Op, value: &Literal) -> bool {
    match (value, text.parse::<f64>()) {
        (Literal::Number(want), Ok(have)) => match op {
            Op::Eq => have == *want,
            Op::Ne => have != *want,
            Op::Lt => have < *want,
            Op::Le => have <= *want,
            Op::Gt => have > *want,
            Op::Ge => have >= *want,
        },
        (Literal::Number(want), Err(_)) => op == Op::Ne && text != want.to_string(),
        (Literal::Text(want), _) => match op {
            Op::Eq => wildcard(want, text),
            Op::Ne => !wildcard(want, text),
            _ => false,
        },
    }
}

/// `*` matches any run of characters.
fn wildcard(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || !text[first.len()..].ends_with(last) || text.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(i) => rest = &rest[i + middle.len()..],
            None => return false,
        }
    }
    true
}

/// One field of a space-delimited pattern: `...`, `name`, or `name op value [&& | ||] ...`.
fn field(text: &str) -> Result<Option<Field>, PatternError> {
    let text = text.trim();
    if text == "..." {
        return Ok(None);
    }
    if text.is_empty() {
        return Err(PatternError("an empty field".into()));
    }
    let any_of = text
        .split("||")
        .map(|alt| alt.split("&&").filter_map(|c| condition(c).transpose()).collect::<Result<Vec<_>, _>>())
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .filter(|c| !c.is_empty())
        .collect();
    Ok(Some(Field { any_of }))
}

fn condition(text: &str) -> Result<Option<(Op, Literal)>, PatternError> {
    let tokens = lex(text)?;
    match tokens.as_slice() {
        [_name] => Ok(None),
        [_name, op, value] => Ok(Some((operator(op)?, literal(value)))),
        _ => Err(PatternError(format!("cannot read the field condition '{}'", text.trim()))),
    }
}

/// A message's space-delimited fields; `"..."` and `[...]` each make one field.
fn split_fields(message: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = message.trim_start();
    while !rest.is_empty() {
        let close = match rest.as_bytes()[0] {
            b'"' => Some('"'),
            b'[' => Some(']'),
            _ => None,
        };
        let (field, after) = match close.and_then(|c| rest[1..].find(c).map(|i| (c, i))) {
            Some((_, i)) => (&rest[1..=i], &rest[i + 2..]),
            None => {
                let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
                (&rest[..end], &rest[end..])
            }
        };
        out.push(field);
        rest = after.trim_start();
    }
    out
}

fn fields_match(pattern: &[Option<Field>], values: &[&str]) -> bool {
    let ok = |f: &Option<Field>, v: &str| {
        f.as_ref().is_none_or(|f| {
            f.any_of.is_empty() || f.any_of.iter().any(|all| all.iter().all(|(op, lit)| compare(v, *op, lit)))
        })
    };
    match pattern.iter().position(Option::is_none) {
        None => pattern.len() == values.len() && pattern.iter().zip(values).all(|(f, v)| ok(f, v)),
        Some(dots) => {
            let (head, tail) = (&pattern[..dots], &pattern[dots + 1..]);
            head.len() + tail.len() <= values.len()
                && head.iter().zip(values).all(|(f, v)| ok(f, v))
                && tail.iter().rev().zip(values.iter().rev()).all(|(f, v)| ok(f, v))
        }
    }
}

#[cfg(test)]
mod tests;
