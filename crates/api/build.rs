//! Generates the ECS, CloudWatch Logs and Secrets Manager wire types from botocore's vendored models (`model/`).
//!
//! Every structure becomes a serde struct whose members are all optional (so any
//! request round-trips, including members berth does not act on yet), every enum
//! becomes a Rust enum that serializes to the ECS names, and every operation becomes
//! a marker type that ties its name to its input and output shapes. Required members
//! and the model's length and range constraints are checked by a generated
//! `Validate` implementation, so the rules live in one place: the model.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::io::Read;
use std::path::Path;

use serde_json::Value;

/// One vendored model: where it is, the file it generates, and what its operations are
/// signed and targeted as (`None`: the [`Operation`] trait's ECS defaults).
struct Model {
    path: &'static str,
    out: &'static str,
    service: Option<(&'static str, &'static str)>,
}

const MODELS: &[Model] = &[
    Model { path: "model/ecs-2014-11-13.json.gz", out: "model.rs", service: None },
    Model {
        path: "model/logs-2014-03-28.json.gz",
        out: "logs_model.rs",
        service: Some(("crate::protocol::LOGS_TARGET_PREFIX", "crate::protocol::LOGS_SIGNING_NAME")),
    },
    Model {
        path: "model/secretsmanager-2017-10-17.json.gz",
        out: "secrets_model.rs",
        service: Some(("crate::protocol::SECRETS_TARGET_PREFIX", "crate::protocol::SECRETS_SIGNING_NAME")),
    },
];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let out_dir = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    for m in MODELS {
        println!("cargo:rerun-if-changed={}", m.path);
        let model = load_model(Path::new(m.path));
        let shapes = model["shapes"].as_object().expect("model has shapes");
        let mut gen = Generator { shapes, service: m.service, out: String::new() };
        gen.emit_all(&model);
        std::fs::write(Path::new(&out_dir).join(m.out), gen.out).expect("write generated model");
    }
}

fn load_model(path: &Path) -> Value {
    let file = std::fs::File::open(path).expect("vendored model is present");
    let mut text = String::new();
    flate2::read::GzDecoder::new(file).read_to_string(&mut text).expect("model is gzip text");
    serde_json::from_str(&text).expect("model is JSON")
}

struct Generator<'a> {
    shapes: &'a serde_json::Map<String, Value>,
    service: Option<(&'static str, &'static str)>,
    out: String,
}

impl Generator<'_> {
    fn emit_all(&mut self, model: &Value) {
        let names: Vec<&String> = self.shapes.keys().collect();
        for name in names {
            let shape = &self.shapes[name.as_str()];
            let is_exception = shape.get("exception").is_some();
            match shape["type"].as_str() {
                Some("structure") if !is_exception && shape.get("document").is_none() => self.emit_struct(name, shape),
                Some("string") if shape.get("enum").is_some() => self.emit_enum(name, shape),
                _ => {}
            }
        }
        self.emit_operations(model["operations"].as_object().expect("model has operations"));
    }

    /// The Rust type of a member whose target shape is `target`.
    fn rust_type(&self, target: &str) -> String {
        let shape = &self.shapes[target];
        match shape["type"].as_str().unwrap_or_default() {
            "string" if shape.get("enum").is_some() => target.to_string(),
            "string" | "blob" => "::std::string::String".into(),
            "integer" => "i32".into(),
            "long" => "i64".into(),
            "boolean" => "bool".into(),
            "double" | "float" => "f64".into(),
            "timestamp" => "crate::Timestamp".into(),
            "list" => format!("::std::vec::Vec<{}>", self.rust_type(member_target(&shape["member"]))),
            "map" => format!(
                "::std::collections::BTreeMap<::std::string::String, {}>",
                self.rust_type(member_target(&shape["value"]))
            ),
            "structure" if shape.get("document").is_some() || shape.get("exception").is_some() => {
                "::serde_json::Value".into()
            }
            "structure" => target.to_string(),
            other => panic!("unsupported shape type {other} for {target}"),
        }
    }

    fn emit_struct(&mut self, name: &str, shape: &Value) {
        let members = shape["members"].as_object().cloned().unwrap_or_default();
        let required: HashSet<&str> = shape
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut fields = String::new();
        let mut checks = String::new();
        for (wire, member) in &members {
            let target = member_target(member);
            let field = field_ident(wire);
            // A structure that holds itself (Logs' LogFieldType) needs the indirection.
            let recursive = target == name;
            let ty = if recursive {
                format!("::std::boxed::Box<{}>", self.rust_type(target))
            } else {
                self.rust_type(target)
            };
            let _ = writeln!(
                fields,
                "    #[serde(rename = {wire:?}, default, skip_serializing_if = \"::std::option::Option::is_none\")]\n    pub {field}: ::std::option::Option<{ty}>,"
            );
            if required.contains(wire.as_str()) {
                let _ = writeln!(checks, "        if self.{field}.is_none() {{ v.missing({wire:?}); }}");
            }
            let _ = writeln!(
                checks,
                "        if let ::std::option::Option::Some(x) = &self.{field} {{ v.enter({wire:?}, |v| {{ {} }}); }}",
                self.check_expr(target, if recursive { "&**x" } else { "x" })
            );
        }
        let _ = write!(
            self.out,
            "#[derive(Debug, Clone, Default, PartialEq, ::serde::Serialize, ::serde::Deserialize)]\n\
             pub struct {name} {{\n{fields}}}\n\n\
             impl crate::validate::Validate for {name} {{\n    \
             #[allow(unused_variables)]\n    \
             fn validate(&self, v: &mut crate::validate::Validator) {{\n{checks}    }}\n}}\n\n"
        );
    }

    /// An expression that validates `var` (a reference to a value of shape `target`).
    fn check_expr(&self, target: &str, var: &str) -> String {
        let shape = &self.shapes[target];
        let bounds = bounds(shape);
        match shape["type"].as_str().unwrap_or_default() {
            "string" if shape.get("enum").is_none() => {
                format!("v.length({var}.chars().count(), {bounds});")
            }
            "integer" | "long" => format!("v.range(i64::from(*{var}), {bounds});"),
            "double" => format!("v.range_f64(*{var}, {bounds});"),
            "list" => format!(
                "v.length({var}.len(), {bounds}); for (i, e) in {var}.iter().enumerate() {{ v.enter_index(i, |v| {{ {} }}); }}",
                self.check_expr(member_target(&shape["member"]), "e")
            ),
            "map" => format!(
                "v.length({var}.len(), {bounds}); for (k, e) in {var} {{ v.enter_key(k, |v| {{ {} }}); }}",
                self.check_expr(member_target(&shape["value"]), "e")
            ),
            "structure" if shape.get("document").is_none() && shape.get("exception").is_none() => {
                format!("crate::validate::Validate::validate({var}, v);")
            }
            _ => "let _ = v;".into(),
        }
    }

    fn emit_enum(&mut self, name: &str, shape: &Value) {
        let values: Vec<&str> =
            shape["enum"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
        let variants = variant_idents(&values);
        let mut body = String::new();
        let mut as_str = String::new();
        for (value, ident) in values.iter().zip(&variants) {
            let _ = writeln!(body, "    #[serde(rename = {value:?})]\n    {ident},");
            let _ = writeln!(as_str, "            Self::{ident} => {value:?},");
        }
        let list = values.iter().map(|v| format!("{v:?}")).collect::<Vec<_>>().join(", ");
        let _ = write!(
            self.out,
            "#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, ::serde::Serialize, ::serde::Deserialize)]\n\
             pub enum {name} {{\n{body}}}\n\n\
             impl {name} {{\n    \
             /// Every value ECS accepts, in the model's order.\n    \
             pub const VALUES: &'static [&'static str] = &[{list}];\n\n    \
             /// The ECS wire name.\n    \
             pub const fn as_str(&self) -> &'static str {{\n        match self {{\n{as_str}        }}\n    }}\n}}\n\n\
             impl ::std::fmt::Display for {name} {{\n    \
             fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {{ f.write_str(self.as_str()) }}\n}}\n\n\
             impl ::std::str::FromStr for {name} {{\n    \
             type Err = crate::validate::UnknownEnumValue;\n    \
             fn from_str(s: &str) -> ::std::result::Result<Self, Self::Err> {{\n        \
             ::serde_json::from_value(::serde_json::Value::String(s.to_string())).map_err(|_| crate::validate::UnknownEnumValue {{ value: s.to_string(), allowed: Self::VALUES }})\n    }}\n}}\n\n"
        );
    }

    fn emit_operations(&mut self, ops: &serde_json::Map<String, Value>) {
        let mut names = Vec::new();
        let mut body = String::new();
        for (name, op) in ops {
            let input = op["input"]["shape"].as_str().expect("every operation has input");
            let output = op["output"]["shape"].as_str().map_or("crate::Empty".to_string(), |o| format!("super::{o}"));
            let service = self.service.map_or(String::new(), |(prefix, signing)| {
                format!("const TARGET_PREFIX: &'static str = {prefix};\n        const SIGNING_NAME: &'static str = {signing};\n        ")
            });
            let _ = write!(
                body,
                "    /// The `{name}` operation.\n    #[derive(Debug, Clone, Copy)]\n    pub struct {name};\n    \
                 impl crate::Operation for {name} {{\n        \
                 {service}const NAME: &'static str = {name:?};\n        \
                 type Input = super::{input};\n        \
                 type Output = {output};\n    }}\n\n"
            );
            names.push(format!("{name:?}"));
        }
        let _ = write!(
            self.out,
            "/// One marker type per operation in the model.\npub mod ops {{\n{body}}}\n\n\
             /// Every operation name in the model.\npub const OPERATION_NAMES: &[&str] = &[{}];\n",
            names.join(", ")
        );
    }
}

fn member_target(member: &Value) -> &str {
    member["shape"].as_str().expect("member names a shape")
}

/// `(min, max)` constraint arguments as Rust `Option` literals.
fn bounds(shape: &Value) -> String {
    let lit = |k: &str| match shape.get(k) {
        Some(Value::Number(n)) if n.is_f64() => format!("Some({:?}_f64 as i64)", n.as_f64().unwrap_or_default()),
        Some(Value::Number(n)) => format!("Some({}_i64)", n),
        _ => "None".into(),
    };
    match shape["type"].as_str() {
        Some("double") => {
            let litf =
                |k: &str| shape.get(k).and_then(Value::as_f64).map_or("None".into(), |f| format!("Some({f:?}_f64)"));
            format!("{}, {}", litf("min"), litf("max"))
        }
        _ => format!("{}, {}", lit("min"), lit("max")),
    }
}

/// camelCase wire member name to a snake_case Rust field.
fn field_ident(wire: &str) -> String {
    let chars: Vec<char> = wire.chars().collect();
    let mut out = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            if prev.is_ascii_lowercase() || prev.is_ascii_digit() || (prev.is_ascii_uppercase() && next_lower) {
                out.push('_');
            }
        }
        out.push(c.to_ascii_lowercase());
    }
    const KEYWORDS: &[&str] = &[
        "type", "match", "ref", "self", "mod", "use", "where", "loop", "move", "async", "await", "dyn", "static",
        "struct", "enum", "fn", "in", "for", "if", "else", "let", "mut", "pub", "return", "trait", "impl", "const",
        "crate", "super", "true", "false", "box", "override", "final", "priv", "yield", "macro", "try", "abstract",
        "become", "do", "typeof", "unsized", "virtual",
    ];
    if KEYWORDS.contains(&out.as_str()) {
        format!("r#{out}")
    } else {
        out
    }
}

/// PascalCase identifiers for enum values, unique within the enum.
fn variant_idents(values: &[&str]) -> Vec<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    values
        .iter()
        .map(|v| {
            let mut ident: String =
                v.split(|c: char| !c.is_ascii_alphanumeric()).filter(|p| !p.is_empty()).map(pascal_part).collect();
            if ident.is_empty() || ident.starts_with(|c: char| c.is_ascii_digit()) {
                ident.insert(0, 'V');
            }
            let n = seen.entry(ident.clone()).or_insert(0);
            *n += 1;
            if *n > 1 {
                ident.push_str(&n.to_string());
            }
            ident
        })
        .collect()
}

/// `FARGATE` -> `Fargate`, `awsvpc` -> `Awsvpc`, `EC2` -> `Ec2`, `camelCase` keeps its humps.
fn pascal_part(part: &str) -> String {
    let all_upper = part.chars().all(|c| !c.is_ascii_lowercase());
    let mut chars = part.chars();
    let first = chars.next().map(|c| c.to_ascii_uppercase()).into_iter();
    let rest: String = if all_upper { chars.as_str().to_ascii_lowercase() } else { chars.as_str().to_string() };
    first.chain(rest.chars()).collect()
}
