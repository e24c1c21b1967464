//! A hand-written recursive-descent parser for the cluster query language. The argument of a
//! test is read according to its operator (a list for `in`, a pattern for `=~`), so lexing is
//! done on the fly rather than by a separate tokenizer. Nesting is bounded by [`MAX_DEPTH`].

use regex::RegexBuilder;

use super::{
    parse_date, parse_number, Arg, Expr, Field, Node, Op, QueryError, SubjectKind, Test, Value, MAX_DEPTH, MAX_LEN,
};

/// The compiled size limit of one `=~` pattern, so a hostile pattern cannot take much memory.
const PATTERN_SIZE_LIMIT: usize = 1 << 20;

pub(super) fn parse(src: &str) -> Result<Expr, QueryError> {
    let len = src.chars().count();
    if len > MAX_LEN {
        return Err(QueryError::TooLong { len });
    }
    if src.trim().is_empty() {
        return Err(QueryError::Empty);
    }
    let mut p = Parser { src, pos: 0, depth: 0 };
    let node = p.or()?;
    p.skip_ws();
    if p.pos < src.len() {
        return Err(p.unexpected("'and', 'or' or the end of the expression"));
    }
    Ok(Expr { source: src.to_string(), node })
}

struct Parser<'a> {
    src: &'a str,
    /// Byte offset of the next character.
    pos: usize,
    depth: usize,
}

/// Characters a subject is made of: attribute names take letters, digits, `-`, `_`, `/`, `\`
/// and `.`; `:` separates `attribute:` and `task:`.
fn is_subject_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '/' | '\\' | '@')
}

fn ends_bare_value(c: char) -> bool {
    c.is_whitespace() || matches!(c, '(' | ')' | '[' | ']' | ',' | '\'' | '"')
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    /// 1-based character position of byte offset `at`, for messages.
    fn position(&self, at: usize) -> usize {
        self.src[..at].chars().count() + 1
    }

    fn skip_ws(&mut self) {
        let trimmed = self.rest().trim_start();
        self.pos = self.src.len() - trimmed.len();
    }

    /// The next token as a message names it.
    fn describe_next(&self) -> String {
        let rest = self.rest();
        let Some(c) = rest.chars().next() else { return "end of expression".to_string() };
        let token: String = if is_subject_char(c) {
            rest.chars().take_while(|&c| is_subject_char(c)).take(64).collect()
        } else if matches!(c, '=' | '!' | '<' | '>' | '~' | '&' | '|') {
            rest.chars().take_while(|c| matches!(c, '=' | '!' | '<' | '>' | '~' | '&' | '|')).take(8).collect()
        } else {
            c.to_string()
        };
        format!("'{token}'")
    }

    fn unexpected(&self, expected: &'static str) -> QueryError {
        QueryError::Unexpected { pos: self.position(self.pos), found: self.describe_next(), expected }
    }

    /// Consumes keyword `kw` (case-insensitive) when it stands alone: not followed by a character
    /// that could continue a word (`in[a]`, `not(...)` and `exists)` are fine).
    fn eat_keyword(&mut self, kw: &str) -> bool {
        let rest = self.rest();
        let Some(head) = rest.get(..kw.len()) else { return false };
        if !head.eq_ignore_ascii_case(kw) || rest[kw.len()..].chars().next().is_some_and(is_subject_char) {
            return false;
        }
        self.pos += kw.len();
        true
    }

    fn eat(&mut self, sym: &str) -> bool {
        if self.rest().starts_with(sym) {
            self.pos += sym.len();
            true
        } else {
            false
        }
    }

    fn enter(&mut self, at: usize) -> Result<(), QueryError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(QueryError::TooDeep { pos: self.position(at) });
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Node, QueryError> {
        let mut terms = vec![self.and()?];
        loop {
            self.skip_ws();
            if self.eat("||") || self.eat_keyword("or") {
                terms.push(self.and()?);
            } else {
                break;
            }
        }
        Ok(if terms.len() == 1 { terms.remove(0) } else { Node::Or(terms) })
    }

    fn and(&mut self) -> Result<Node, QueryError> {
        let mut terms = vec![self.unary()?];
        loop {
            self.skip_ws();
            if self.eat("&&") || self.eat_keyword("and") {
                terms.push(self.unary()?);
            } else {
                break;
            }
        }
        Ok(if terms.len() == 1 { terms.remove(0) } else { Node::And(terms) })
    }

    fn unary(&mut self) -> Result<Node, QueryError> {
        self.skip_ws();
        let at = self.pos;
        if self.eat_keyword("not") || self.eat("!") {
            self.enter(at)?;
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(Node::Not(Box::new(inner)));
        }
        if self.eat("(") {
            self.enter(at)?;
            let inner = self.or()?;
            self.skip_ws();
            if !self.eat(")") {
                return Err(self.unexpected("')'"));
            }
            self.depth -= 1;
            return Ok(inner);
        }
        self.test()
    }

    fn test(&mut self) -> Result<Node, QueryError> {
        let at = self.pos;
        let len = self.rest().find(|c: char| !is_subject_char(c)).unwrap_or(self.rest().len());
        if len == 0 {
            return Err(self.unexpected("a subject such as attribute:NAME, or '(' or 'not'"));
        }
        let name = &self.rest()[..len];
        let subject = subject_kind(name)
            .ok_or_else(|| QueryError::UnknownSubject { pos: self.position(at), subject: name.to_string() })?;
        self.pos += len;
        self.skip_ws();
        let op_at = self.pos;
        let (op, op_text) = self.operator()?;
        if !operator_allowed(&subject, op) {
            return Err(QueryError::InvalidOperator {
                pos: self.position(op_at),
                op: op_text.to_string(),
                subject: name.to_string(),
            });
        }
        let arg = match op {
            Op::Exists | Op::NotExists => Arg::None,
            Op::In | Op::NotIn => Arg::List(self.list(&subject, name)?),
            Op::Matches | Op::NotMatches => {
                self.skip_ws();
                let value_at = self.pos;
                let pattern = self.value("a pattern")?;
                let re = RegexBuilder::new(&format!("^(?:{pattern})$"))
                    .size_limit(PATTERN_SIZE_LIMIT)
                    .dfa_size_limit(PATTERN_SIZE_LIMIT)
                    .build()
                    .map_err(|e| QueryError::InvalidPattern {
                        pos: self.position(value_at),
                        pattern: pattern.clone(),
                        reason: e.to_string().split_whitespace().collect::<Vec<_>>().join(" "),
                    })?;
                Arg::Pattern(re)
            }
            _ => {
                self.skip_ws();
                Arg::One(self.typed_value(&subject, name)?)
            }
        };
        Ok(Node::Test(Test { subject, op, arg }))
    }

    fn operator(&mut self) -> Result<(Op, &'a str), QueryError> {
        const SYMBOLS: &[(&str, Op)] = &[
            ("==", Op::Eq),
            ("!=", Op::Ne),
            (">=", Op::Ge),
            ("<=", Op::Le),
            ("=~", Op::Matches),
            ("!~", Op::NotMatches),
            (">", Op::Gt),
            ("<", Op::Lt),
        ];
        const WORDS: &[(&str, Op)] = &[
            ("!in", Op::NotIn),
            ("!exists", Op::NotExists),
            ("equals", Op::Eq),
            ("not_equals", Op::Ne),
            ("greater_than_equal", Op::Ge),
            ("greater_than", Op::Gt),
            ("less_than_equal", Op::Le),
            ("less_than", Op::Lt),
            ("exists", Op::Exists),
            ("not_exists", Op::NotExists),
            ("in", Op::In),
            ("not_in", Op::NotIn),
            ("matches", Op::Matches),
            ("not_matches", Op::NotMatches),
        ];
        let start = self.pos;
        for (kw, op) in WORDS {
            if self.eat_keyword(kw) {
                return Ok((*op, &self.src[start..self.pos]));
            }
        }
        for (sym, op) in SYMBOLS {
            if self.eat(sym) {
                return Ok((*op, &self.src[start..self.pos]));
            }
        }
        Err(self.unexpected("an operator such as ==, !=, in, =~ or exists"))
    }

    /// A bare or quoted value; `what` names it in errors.
    fn value(&mut self, what: &'static str) -> Result<String, QueryError> {
        let at = self.pos;
        match self.peek() {
            Some(q @ ('\'' | '"')) => {
                let body = &self.rest()[1..];
                let end = body.find(q).ok_or(QueryError::UnterminatedQuote { pos: self.position(at) })?;
                let text = body[..end].to_string();
                self.pos += end + 2;
                Ok(text)
            }
            _ => {
                let rest = self.rest();
                let mut end = rest.len();
                for (i, c) in rest.char_indices() {
                    if ends_bare_value(c) || rest[i..].starts_with("&&") || rest[i..].starts_with("||") {
                        end = i;
                        break;
                    }
                }
                if end == 0 {
                    return Err(self.unexpected(what));
                }
                self.pos += end;
                Ok(rest[..end].to_string())
            }
        }
    }

    /// A value checked and converted for `subject`.
    fn typed_value(&mut self, subject: &SubjectKind, name: &str) -> Result<Value, QueryError> {
        let at = self.pos;
        let text = self.value("a value")?;
        let invalid = |expected| QueryError::InvalidValue {
            pos: self.position(at),
            value: text.clone(),
            subject: name.to_string(),
            expected,
        };
        let number = match subject {
            SubjectKind::Field(Field::RunningTasksCount) => {
                let n: u64 = text.parse().map_err(|_| invalid("a whole number"))?;
                Some(n as f64)
            }
            SubjectKind::Field(Field::RegisteredAt) => {
                Some(parse_date(&text).ok_or_else(|| invalid("a date such as 2018-06-18 or 2018-06-18T22:28:28Z"))?)
            }
            SubjectKind::Field(Field::AgentConnected) => {
                if !text.eq_ignore_ascii_case("true") && !text.eq_ignore_ascii_case("false") {
                    return Err(invalid("true or false"));
                }
                return Ok(Value { text: text.to_ascii_lowercase(), number: None });
            }
            _ => parse_number(&text),
        };
        Ok(Value { text, number })
    }

    fn list(&mut self, subject: &SubjectKind, name: &str) -> Result<Vec<Value>, QueryError> {
        self.skip_ws();
        if !self.eat("[") {
            return Err(self.unexpected("'[' opening a list of values"));
        }
        let mut values = Vec::new();
        loop {
            self.skip_ws();
            values.push(self.typed_value(subject, name)?);
            self.skip_ws();
            if self.eat(",") {
                continue;
            }
            if self.eat("]") {
                return Ok(values);
            }
            return Err(self.unexpected("',' or ']'"));
        }
    }
}

fn subject_kind(name: &str) -> Option<SubjectKind> {
    Some(match name {
        "agentConnected" => SubjectKind::Field(Field::AgentConnected),
        "agentVersion" => SubjectKind::Field(Field::AgentVersion),
        "ec2InstanceId" => SubjectKind::Field(Field::Ec2InstanceId),
        "registeredAt" => SubjectKind::Field(Field::RegisteredAt),
        "runningTasksCount" => SubjectKind::Field(Field::RunningTasksCount),
        "task:group" => SubjectKind::TaskGroup,
        _ => {
            let attr = name.strip_prefix("attribute:")?;
            if attr.is_empty() {
                return None;
            }
            SubjectKind::Attribute(attr.to_string())
        }
    })
}

/// The operators the ECS guide lists for each subject.
fn operator_allowed(subject: &SubjectKind, op: Op) -> bool {
    use Op::*;
    match subject {
        SubjectKind::Attribute(_) => true,
        SubjectKind::TaskGroup => !op.is_ordering(),
        SubjectKind::Field(Field::AgentConnected | Field::Ec2InstanceId) => {
            matches!(op, Eq | Ne | In | NotIn | Matches | NotMatches)
        }
        SubjectKind::Field(Field::AgentVersion | Field::RegisteredAt | Field::RunningTasksCount) => {
            matches!(op, Eq | Ne | Gt | Ge | Lt | Le)
        }
    }
}
