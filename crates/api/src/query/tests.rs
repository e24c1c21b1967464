use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;

#[derive(Default)]
struct Instance {
    attributes: BTreeMap<String, String>,
    groups: BTreeSet<String>,
    connected: bool,
    version: Option<String>,
    ec2: Option<String>,
    registered_at: Option<f64>,
    running: u32,
}

impl Subject for Instance {
    fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes.get(name).map(String::as_str)
    }
    fn task_groups(&self) -> impl Iterator<Item = &str> {
        self.groups.iter().map(String::as_str)
    }
    fn field(&self, field: Field) -> Option<FieldValue<'_>> {
        match field {
            Field::AgentConnected => Some(FieldValue::Bool(self.connected)),
            Field::AgentVersion => self.version.as_deref().map(FieldValue::Text),
            Field::Ec2InstanceId => self.ec2.as_deref().map(FieldValue::Text),
            Field::RegisteredAt => self.registered_at.map(FieldValue::Time),
            Field::RunningTasksCount => Some(FieldValue::Number(f64::from(self.running))),
        }
    }
}

fn t2_small() -> Instance {
    let attributes = [
        ("ecs.instance-type", "t2.small"),
        ("ecs.availability-zone", "us-east-1a"),
        ("ecs.os-type", "linux"),
        ("stack", "prod"),
        ("weight", "10"),
        ("flag", ""),
    ];
    Instance {
        attributes: attributes.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        groups: ["service:web", "family:batch"].iter().map(|s| s.to_string()).collect(),
        connected: true,
        version: Some("1.14.5".into()),
        ec2: Some("i-abcd1234".into()),
        registered_at: parse_date("2018-06-18T22:28:28Z"),
        running: 2,
    }
}

fn eval(expr: &str) -> bool {
    parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}")).matches(&t2_small())
}

fn err(expr: &str) -> String {
    match parse(expr) {
        Ok(_) => panic!("{expr} parsed"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_guide_examples_parse_and_match() {
    assert!(eval("attribute:ecs.instance-type == t2.small"));
    assert!(eval("attribute:ecs.availability-zone in [us-east-1a, us-east-1b]"));
    assert!(!eval("attribute:ecs.instance-type =~ g2.* and attribute:ecs.availability-zone != us-east-1d"));
    assert!(eval("attribute:ecs.instance-type =~ t2.* and attribute:ecs.availability-zone == us-east-1a"));
    assert!(eval("task:group == service:web"));
    assert!(eval("not(task:group == database)"));
    assert!(eval("runningTasksCount == 2"));
    assert!(!eval("agentVersion < 1.14.5"));
    assert!(eval("agentVersion < 1.15.0"));
    assert!(!eval("registeredAt < 2018-02-13"));
    assert!(eval("ec2InstanceId in ['i-abcd1234', 'i-wxyx7890']"));
    assert!(eval("(attribute:ecs.instance-type == t2.micro or attribute:stack == prod) and runningTasksCount < 5"));
}

#[test]
fn equality_and_inequality() {
    assert!(eval("attribute:stack == prod"));
    assert!(eval("attribute:stack equals prod"));
    assert!(!eval("attribute:stack == Prod"), "string equality is case-sensitive");
    assert!(eval("attribute:stack != dev"));
    assert!(eval("attribute:stack not_equals dev"));
    assert!(!eval("attribute:stack != prod"));
}

#[test]
fn an_absent_attribute_satisfies_only_not_exists() {
    for expr in [
        "attribute:missing == x",
        "attribute:missing != x",
        "attribute:missing in [x]",
        "attribute:missing not_in [x]",
        "attribute:missing =~ .*",
        "attribute:missing !~ x",
        "attribute:missing > 1",
        "attribute:missing exists",
    ] {
        assert!(!eval(expr), "{expr}");
    }
    assert!(eval("attribute:missing !exists"));
    assert!(eval("attribute:missing not_exists"));
    assert!(eval("not attribute:missing == x"));
}

#[test]
fn exists_and_valueless_attributes() {
    assert!(eval("attribute:ecs.os-type exists"));
    assert!(eval("attribute:flag exists"));
    assert!(!eval("attribute:flag !exists"));
    assert!(eval("attribute:flag == ''"));
}

#[test]
fn orderings_are_numeric_when_both_sides_are_numbers() {
    assert!(eval("attribute:weight > 9"), "10 > 9 numerically");
    assert!(eval("attribute:weight greater_than 9.5"));
    assert!(eval("attribute:weight >= 10"));
    assert!(eval("attribute:weight greater_than_equal 10"));
    assert!(eval("attribute:weight < 100"));
    assert!(eval("attribute:weight less_than 100"));
    assert!(eval("attribute:weight <= 10"));
    assert!(eval("attribute:weight less_than_equal 10"));
    assert!(!eval("attribute:weight < 10"));
    // Lexical otherwise.
    assert!(eval("attribute:stack > pra"));
    assert!(eval("attribute:stack < prp"));
    assert!(eval("attribute:weight < abc"), "'10' < 'abc' lexically");
}

#[test]
fn in_and_not_in() {
    assert!(eval("attribute:stack in [dev, prod]"));
    assert!(eval("attribute:stack in[prod]"));
    assert!(!eval("attribute:stack in [dev, test]"));
    assert!(eval("attribute:stack not_in [dev, test]"));
    assert!(eval("attribute:stack !in [dev, test]"));
    assert!(!eval("attribute:stack !in [dev, prod]"));
    assert!(eval("attribute:stack in [\"prod\"]"));
}

#[test]
fn matches_must_match_the_whole_value() {
    assert!(eval("attribute:ecs.instance-type =~ t2.*"));
    assert!(eval("attribute:ecs.instance-type matches t2\\.small"));
    assert!(!eval("attribute:ecs.instance-type =~ t2"), "anchored like Java's String.matches");
    assert!(eval("attribute:ecs.instance-type !~ g2.*"));
    assert!(eval("attribute:ecs.instance-type not_matches g2.*"));
    assert!(eval("attribute:ecs.instance-type =~ 't2\\.(micro|small)'"));
    assert!(eval("attribute:ecs.instance-type =~ t2.micro|t2.small"));
}

#[test]
fn task_group_is_a_set() {
    assert!(eval("task:group == family:batch"));
    assert!(eval("task:group in [service:db, service:web]"));
    assert!(eval("task:group != service:db"));
    assert!(!eval("task:group != service:web"), "some task is in service:web");
    assert!(eval("task:group =~ service:.*"));
    assert!(!eval("task:group !~ service:.*"));
    assert!(eval("task:group exists"));
    let empty = Instance::default();
    assert!(parse("task:group != service:web").unwrap().matches(&empty));
    assert!(parse("task:group !exists").unwrap().matches(&empty));
    assert!(!parse("task:group == service:web").unwrap().matches(&empty));
}

#[test]
fn fields() {
    assert!(eval("agentConnected == true"));
    assert!(eval("agentConnected == TRUE"));
    assert!(eval("agentConnected != false"));
    assert!(eval("agentConnected in [true]"));
    assert!(eval("agentConnected =~ t.*"));
    let disconnected = Instance::default();
    assert!(parse("agentConnected == false").unwrap().matches(&disconnected));
    assert!(eval("runningTasksCount > 1"));
    assert!(eval("runningTasksCount != 0"));
    assert!(!eval("runningTasksCount == 0"));
    assert!(eval("agentVersion > 1.9.0"), "versions compare per segment");
    assert!(eval("agentVersion == 1.14.5"));
    assert!(eval("ec2InstanceId == i-abcd1234"));
    assert!(eval("ec2InstanceId =~ i-.*"));
    assert!(eval("ec2InstanceId !in [i-1]"));
}

#[test]
fn registered_at_reads_every_documented_date_format() {
    assert!(eval("registeredAt == 2018-06-18T22:28:28+00:00"));
    assert!(eval("registeredAt == 2018-06-18T22:28:28Z"));
    assert!(eval("registeredAt == 2018-06-18T22:28:28"));
    assert!(eval("registeredAt > 2018-06-18"));
    assert!(eval("registeredAt < 2018-06-19"));
    assert!(eval("registeredAt == 2018-06-19T00:28:28+02:00"));
    assert!(eval("registeredAt >= 2018-06-18T22:28:27.5Z"));
    assert_eq!(parse_date("1970-01-01"), Some(0.0));
    assert_eq!(parse_date("2000-03-01T00:00:00Z"), Some(951_868_800.0));
    assert_eq!(parse_date("2018-02-30"), None);
    assert_eq!(parse_date("2018-06-18T25:00:00"), None);
}

#[test]
fn precedence_not_over_and_over_or() {
    // true or (false and false) = true; (true or false) and false = false.
    assert!(eval("attribute:stack == prod or attribute:stack == dev and attribute:stack == test"));
    assert!(!eval("(attribute:stack == prod or attribute:stack == dev) and attribute:stack == test"));
    // not binds to the next test only.
    assert!(!eval("not attribute:stack == prod and attribute:stack == prod"));
    assert!(eval("not (attribute:stack == prod and attribute:stack == dev)"));
    assert!(eval("attribute:stack == prod && !attribute:stack == dev || attribute:x exists"));
    assert!(eval("!(attribute:stack == dev)"));
    assert!(eval("not not attribute:stack == prod"));
    assert!(eval("attribute:stack == prod AND attribute:weight == 10 OR attribute:x exists"));
    assert!(eval("attribute:stack == prod&&attribute:weight == 10"));
}

#[test]
fn operators_stick_to_their_subject() {
    assert!(eval("attribute:stack==prod"));
    assert!(eval("attribute:weight>=10"));
    assert!(eval("  attribute:stack   ==   prod  "));
}

#[test]
fn parse_errors_name_the_position_and_token() {
    assert_eq!(err(""), "Invalid query expression: the expression is empty.");
    assert_eq!(
        err("attribute:stack prod"),
        "Invalid query expression: unexpected 'prod' at position 17; \
         expected an operator such as ==, !=, in, =~ or exists."
    );
    assert_eq!(
        err("attribute:stack =="),
        "Invalid query expression: unexpected end of expression at position 19; expected a value."
    );
    assert!(err("foo == bar").contains("unknown subject 'foo' at position 1"));
    assert!(err("attribute: == bar").contains("unknown subject 'attribute:'"));
    assert!(err("(attribute:stack == prod").contains("expected ')'"));
    assert!(err("attribute:stack == prod)").contains("unexpected ')' at position 24"));
    assert!(err("attribute:stack == prod attribute:x exists").contains("expected 'and', 'or'"));
    assert!(err("attribute:stack in prod").contains("expected '[' opening a list"));
    assert!(err("attribute:stack in [a b]").contains("expected ',' or ']'"));
    assert!(err("attribute:stack in []").contains("expected a value"));
    assert!(err("attribute:stack == 'prod").contains("unterminated quoted value starting at position 20"));
    assert!(err("attribute:stack =~ 'a('").contains("invalid pattern 'a('"));
    assert!(err("runningTasksCount == many").contains("invalid value 'many' for runningTasksCount"));
    assert!(err("registeredAt < yesterday").contains("invalid value 'yesterday' for registeredAt"));
    assert!(err("agentConnected == yes").contains("expected true or false"));
    assert!(err("agentConnected > 1").contains("operator '>' is not valid for subject 'agentConnected'"));
    assert!(err("runningTasksCount exists").contains("operator 'exists' is not valid"));
    assert!(err("task:group < a").contains("not valid for subject 'task:group'"));
    assert!(err("attribute:a == b and").contains("at position 21; expected a subject"));
    assert!(err("not").contains("expected a subject"));
}

#[test]
fn limits_length_and_depth() {
    let long = format!("attribute:a == {}", "x".repeat(MAX_LEN));
    assert!(matches!(parse(&long), Err(QueryError::TooLong { .. })));
    let ok = format!("{}attribute:a exists{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
    assert!(parse(&ok).is_ok());
    let deep = format!("{}attribute:a exists{}", "(".repeat(MAX_DEPTH + 1), ")".repeat(MAX_DEPTH + 1));
    assert!(matches!(parse(&deep), Err(QueryError::TooDeep { pos: 33 })));
    let nots = format!("{}attribute:a exists", "!".repeat(MAX_DEPTH + 1));
    assert!(matches!(parse(&nots), Err(QueryError::TooDeep { .. })));
    // A long flat chain is fine: and/or chains do not nest.
    let chain = vec!["attribute:a exists"; 80].join(" or ");
    assert!(parse(&chain).is_ok());
}

#[test]
fn static_expressions_are_told_apart() {
    assert!(parse("attribute:a == b and ec2InstanceId == i-1").unwrap().is_static());
    assert!(!parse("attribute:a == b and not task:group == x").unwrap().is_static());
    assert!(!parse("runningTasksCount == 0").unwrap().is_static());
}

#[test]
fn errors_map_to_invalid_parameter() {
    let api: ApiError = parse("nope").unwrap_err().into();
    assert_eq!(api.kind, crate::ErrorKind::InvalidParameter);
}

#[test]
fn display_gives_back_the_source() {
    let e = parse("attribute:a == b").unwrap();
    assert_eq!(e.to_string(), "attribute:a == b");
    assert_eq!("attribute:a == b".parse::<Expr>().unwrap(), e);
}

proptest! {
    #[test]
    fn parse_never_panics(s in "\\PC{0,300}") {
        let _ = parse(&s);
    }

    #[test]
    fn dates_never_panic(s in "[0-9T:+\\-Z.]{0,30}|\\PC{0,30}") {
        if let Some(t) = parse_date(&s) {
            prop_assert!(t.is_finite());
        }
        let _ = parse(&format!("registeredAt < {s}"));
    }

    #[test]
    fn parse_never_panics_on_grammar_soup(parts in proptest::collection::vec(prop_oneof![
        Just("attribute:a"), Just("task:group"), Just("runningTasksCount"), Just("registeredAt"),
        Just("agentConnected"), Just("=="), Just("!="), Just("=~"), Just("!in"), Just("in"), Just("exists"),
        Just("<"), Just(">="), Just("and"), Just("or"), Just("not"), Just("!"), Just("&&"), Just("||"),
        Just("("), Just(")"), Just("["), Just("]"), Just(","), Just("'"), Just("\""), Just("x"), Just("1"),
        Just("2018-06-18"), Just(".*("), Just(" "),
    ], 0..60)) {
        let s = parts.concat();
        if let Ok(e) = parse(&s) {
            let _ = e.matches(&t2_small());
        }
        let spaced = parts.join(" ");
        if let Ok(e) = parse(&spaced) {
            let _ = e.matches(&Instance::default());
        }
    }
}
