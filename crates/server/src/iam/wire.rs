//! The AWS query protocol as IAM and STS speak it: form-encoded parameters in, XML out,
//! and `<ErrorResponse>` errors with IAM's codes and HTTP statuses.

use std::collections::HashMap;
use std::fmt::Write as _;

use berth_api::{ApiError, ErrorKind};

use crate::records::RecordError;

/// The request parameters, `Action` and `Version` included.
#[derive(Debug, Default)]
pub struct Params(HashMap<String, String>);

impl Params {
    /// Decodes `a=1&b=2` pairs from the query string and the form body (body wins).
    pub fn decode(query: &str, body: &[u8]) -> Self {
        let mut map = HashMap::new();
        for (k, v) in form_urlencoded::parse(query.as_bytes()).chain(form_urlencoded::parse(body)) {
            map.insert(k.into_owned(), v.into_owned());
        }
        Self(map)
    }

    /// The parameter, if sent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// A required parameter: absent is IAM's "Member must not be null".
    pub fn required(&self, name: &str) -> Result<&str, IamError> {
        self.get(name).ok_or_else(|| {
            IamError::validation(format!(
                "Value null at '{}' failed to satisfy constraint: Member must not be null",
                lower_first(name)
            ))
        })
    }

    /// A required IAM name (`[\w+=,.@-]+`, at most `max` characters).
    pub fn name(&self, param: &str, max: usize) -> Result<&str, IamError> {
        let value = self.required(param)?;
        let ok = value.chars().all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c));
        if value.is_empty() || !ok {
            return Err(IamError::validation(format!(
                "Value '{value}' at '{}' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]+",
                lower_first(param)
            )));
        }
        if value.chars().count() > max {
            return Err(IamError::validation(format!(
                "Value '{value}' at '{}' failed to satisfy constraint: Member must have length less than or equal to {max}",
                lower_first(param)
            )));
        }
        Ok(value)
    }

    /// `Path`: `/` by default, else `/.../`.
    pub fn path(&self) -> Result<String, IamError> {
        let Some(path) = self.get("Path") else { return Ok("/".into()) };
        let ok = path == "/"
            || (path.len() >= 2
                && path.starts_with('/')
                && path.ends_with('/')
                && path.chars().all(|c| ('!'..='~').contains(&c)));
        if ok && path.len() <= 512 {
            Ok(path.to_owned())
        } else {
            Err(IamError::validation(format!(
                "The specified value for path is invalid. It must begin and end with / and contain only alphanumeric characters and/or / characters: {path}"
            )))
        }
    }

    /// An optional integer parameter within `min..=max`.
    pub fn int(&self, name: &str, min: i64, max: i64) -> Result<Option<i64>, IamError> {
        let Some(raw) = self.get(name) else { return Ok(None) };
        let field = lower_first(name);
        let n: i64 = raw.parse().map_err(|_| {
            IamError::validation(format!(
                "Value '{raw}' at '{field}' failed to satisfy constraint: Member must be a number"
            ))
        })?;
        if n < min {
            return Err(IamError::validation(format!("Value '{n}' at '{field}' failed to satisfy constraint: Member must have value greater than or equal to {min}")));
        }
        if n > max {
            return Err(IamError::validation(format!("Value '{n}' at '{field}' failed to satisfy constraint: Member must have value less than or equal to {max}")));
        }
        Ok(Some(n))
    }

    /// A list sent as `Name.member.1`, `Name.member.2`, ... of `(Key, Value)` structures.
    pub fn tags(&self, name: &str) -> Vec<(String, String)> {
        (1..)
            .map_while(|i| {
                let key = self.get(&format!("{name}.member.{i}.Key"))?;
                Some((key.to_owned(), self.get(&format!("{name}.member.{i}.Value")).unwrap_or_default().to_owned()))
            })
            .collect()
    }

    /// A list of strings sent as `Name.member.N`.
    pub fn list(&self, name: &str) -> Vec<String> {
        (1..).map_while(|i| self.get(&format!("{name}.member.{i}")).map(str::to_owned)).collect()
    }
}

/// `RoleName` -> `roleName`, as IAM names fields in validation messages.
fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_ascii_lowercase().to_string() + c.as_str()).unwrap_or_default()
}

/// An XML body under construction; every text value is escaped.
#[derive(Debug, Default)]
pub struct Xml(String);

impl Xml {
    /// An element with text content.
    pub fn leaf(&mut self, name: &str, value: impl std::fmt::Display) -> &mut Self {
        let _ = write!(self.0, "<{name}>{}</{name}>", escape(&value.to_string()));
        self
    }

    /// Escaped text inside the current element.
    pub fn text(&mut self, value: &str) -> &mut Self {
        self.0.push_str(&escape(value));
        self
    }

    /// An element whose text is only written when there is one.
    pub fn opt(&mut self, name: &str, value: Option<&str>) -> &mut Self {
        if let Some(v) = value {
            self.leaf(name, v);
        }
        self
    }

    /// An element containing what `inner` writes.
    pub fn node(&mut self, name: &str, inner: impl FnOnce(&mut Self)) -> &mut Self {
        let _ = write!(self.0, "<{name}>");
        inner(self);
        let _ = write!(self.0, "</{name}>");
        self
    }

    /// A list: `<name><member>...</member>...</name>`.
    pub fn members<T>(&mut self, name: &str, items: &[T], mut each: impl FnMut(&mut Self, &T)) -> &mut Self {
        self.node(name, |x| {
            for item in items {
                x.node("member", |x| each(x, item));
            }
        })
    }

    /// `Tags` as IAM lists them.
    pub fn tags(&mut self, tags: &[(String, String)]) -> &mut Self {
        self.members("Tags", tags, |x, (k, v)| {
            x.leaf("Key", k).leaf("Value", v);
        })
    }
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// A policy document as IAM returns it: URL-encoded JSON.
pub fn encode_document(document: &str) -> String {
    percent_encoding::utf8_percent_encode(document, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// A response: `<{action}Response xmlns=...>` with the result (when `result` is `Some`).
pub fn response(namespace: &str, action: &str, result: Option<Xml>, request_id: &str) -> String {
    let mut body = format!(r#"<{action}Response xmlns="{namespace}">"#);
    if let Some(Xml(inner)) = result {
        let _ = write!(body, "<{action}Result>{inner}</{action}Result>");
    }
    let _ = write!(body, "<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata></{action}Response>");
    body
}

/// An IAM or STS error, with the code, HTTP status and message IAM uses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct IamError {
    /// The `<Code>`.
    pub code: &'static str,
    /// The HTTP status.
    pub status: u16,
    /// The `<Message>`.
    pub message: String,
}

impl IamError {
    fn new(code: &'static str, status: u16, message: impl Into<String>) -> Self {
        Self { code, status, message: message.into() }
    }

    /// `NoSuchEntity` (404).
    pub fn no_such_entity(message: impl Into<String>) -> Self {
        Self::new("NoSuchEntity", 404, message)
    }

    /// `EntityAlreadyExists` (409).
    pub fn already_exists(message: impl Into<String>) -> Self {
        Self::new("EntityAlreadyExists", 409, message)
    }

    /// `MalformedPolicyDocument` (400).
    pub fn malformed(e: &berth_iam::MalformedPolicy) -> Self {
        Self::new("MalformedPolicyDocument", 400, e.to_string())
    }

    /// `DeleteConflict` (409).
    pub fn delete_conflict(message: impl Into<String>) -> Self {
        Self::new("DeleteConflict", 409, message)
    }

    /// `LimitExceeded` (409).
    pub fn limit_exceeded(message: impl Into<String>) -> Self {
        Self::new("LimitExceeded", 409, message)
    }

    /// `ValidationError` (400), with the "1 validation error detected: " prefix.
    pub fn validation(detail: impl std::fmt::Display) -> Self {
        Self::new("ValidationError", 400, format!("1 validation error detected: {detail}"))
    }

    /// `ValidationError` (400) whose message stands alone.
    pub fn validation_plain(message: impl Into<String>) -> Self {
        Self::new("ValidationError", 400, message)
    }

    /// `InvalidInput` (400).
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new("InvalidInput", 400, message)
    }

    /// `AccessDenied` (403).
    pub fn access_denied(message: impl Into<String>) -> Self {
        Self::new("AccessDenied", 403, message)
    }

    /// `InvalidAction` (400): the service has no such action.
    pub fn invalid_action(action: &str, version: &str) -> Self {
        Self::new("InvalidAction", 400, format!("Could not find operation {action} for version {version}"))
    }

    /// The XML error body.
    pub fn body(&self, namespace: &str, request_id: &str) -> String {
        let kind = if self.status >= 500 { "Receiver" } else { "Sender" };
        let mut x = Xml::default();
        x.node("Error", |x| {
            x.leaf("Type", kind).leaf("Code", self.code).leaf("Message", &self.message);
        })
        .leaf("RequestId", request_id);
        format!(r#"<ErrorResponse xmlns="{namespace}">{}</ErrorResponse>"#, x.0)
    }
}

/// Authentication and store failures, as the query protocol names them.
impl From<ApiError> for IamError {
    fn from(e: ApiError) -> Self {
        let (code, status) = match e.kind {
            ErrorKind::MissingAuthenticationToken => ("MissingAuthenticationToken", 403),
            ErrorKind::IncompleteSignature => ("IncompleteSignature", 400),
            ErrorKind::InvalidSignature => ("SignatureDoesNotMatch", 403),
            ErrorKind::UnrecognizedClient => ("InvalidClientTokenId", 403),
            ErrorKind::ExpiredToken => ("ExpiredToken", 400),
            ErrorKind::AccessDenied => ("AccessDenied", 403),
            ErrorKind::Conflict => ("ConcurrentModification", 409),
            ErrorKind::RequestEntityTooLarge => ("RequestEntityTooLarge", 413),
            _ => ("ServiceFailure", 500),
        };
        Self::new(code, status, e.message)
    }
}

impl From<RecordError> for IamError {
    fn from(e: RecordError) -> Self {
        ApiError::from(e).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_decode_lists_tags_and_validate_names() {
        let p = Params::decode(
            "Action=CreateRole",
            b"RoleName=a%2Bb&Tags.member.1.Key=k&Tags.member.1.Value=v+w&Tags.member.2.Key=z&TagKeys.member.1=x",
        );
        assert_eq!(p.get("Action"), Some("CreateRole"));
        assert_eq!(p.name("RoleName", 64), Ok("a+b"));
        assert_eq!(p.tags("Tags"), [("k".to_owned(), "v w".to_owned()), ("z".to_owned(), String::new())]);
        assert_eq!(p.list("TagKeys"), ["x"]);
        let missing = p.required("PolicyDocument").unwrap_err();
        assert_eq!((missing.code, missing.status), ("ValidationError", 400));
        assert!(missing.message.contains("'policyDocument'"), "{}", missing.message);
        let bad = Params::decode("", b"RoleName=a/b&MaxSessionDuration=10");
        assert!(bad.name("RoleName", 64).unwrap_err().message.contains("[\\w+=,.@-]+"));
        assert!(bad
            .int("MaxSessionDuration", 3600, 43200)
            .unwrap_err()
            .message
            .contains("greater than or equal to 3600"));
        assert_eq!(Params::decode("", b"Path=nope").path().unwrap_err().code, "ValidationError");
    }

    #[test]
    fn xml_is_escaped_and_wrapped_as_iam_does() {
        let mut x = Xml::default();
        x.leaf("A", "<&>").members("L", &["1", "2"], |x, s| {
            x.text(s);
        });
        let body = response("ns", "Op", Some(x), "rid");
        assert_eq!(
            body,
            r#"<OpResponse xmlns="ns"><OpResult><A>&lt;&amp;&gt;</A><L><member>1</member><member>2</member></L></OpResult><ResponseMetadata><RequestId>rid</RequestId></ResponseMetadata></OpResponse>"#
        );
        assert_eq!(
            IamError::no_such_entity("gone").body("ns", "rid"),
            r#"<ErrorResponse xmlns="ns"><Error><Type>Sender</Type><Code>NoSuchEntity</Code><Message>gone</Message></Error><RequestId>rid</RequestId></ErrorResponse>"#
        );
        assert_eq!(encode_document(r#"{"a": 1}"#), "%7B%22a%22%3A%201%7D");
    }
}
