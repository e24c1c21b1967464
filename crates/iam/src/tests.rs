use proptest::prelude::*;

use super::*;

const CLUSTER_X: &str = "arn:aws:ecs:us-east-1:123456789012:cluster/x";

fn policy(statements: &str) -> Policy {
    Policy::parse(&format!(r#"{{"Version":"2012-10-17","Statement":{statements}}}"#)).expect("valid policy")
}

fn decide(p: &Policy, action: &str, resource: &str) -> Decision {
    evaluate([p], &Request::new(action, resource))
}

#[test]
fn allow_then_implicit_deny() {
    let p = policy(r#"{"Effect":"Allow","Action":"ecs:ListClusters","Resource":"*"}"#);
    assert_eq!(decide(&p, "ecs:ListClusters", "*"), Decision::Allow);
    assert_eq!(decide(&p, "ecs:DeleteCluster", CLUSTER_X), Decision::ImplicitDeny);
    assert_eq!(evaluate([], &Request::new("ecs:ListClusters", "*")), Decision::ImplicitDeny);
}

#[test]
fn explicit_deny_beats_allow_across_policies() {
    let allow = policy(r#"[{"Effect":"Allow","Action":"ecs:*","Resource":"*"}]"#);
    let deny = policy(r#"{"Effect":"Deny","Action":"ecs:DeleteCluster","Resource":"*"}"#);
    let req = Request::new("ecs:DeleteCluster", CLUSTER_X);
    assert_eq!(evaluate([&allow, &deny], &req), Decision::ExplicitDeny);
    assert_eq!(evaluate([&deny, &allow], &req), Decision::ExplicitDeny);
    assert_eq!(evaluate([&allow, &deny], &Request::new("ecs:ListClusters", "*")), Decision::Allow);
}

#[test]
fn actions_match_case_insensitively_with_wildcards() {
    let p = policy(r#"{"Effect":"Allow","Action":["ecs:Describe*","ecs:List?lusters"],"Resource":"*"}"#);
    assert_eq!(decide(&p, "ECS:describeclusters", "*"), Decision::Allow);
    assert_eq!(decide(&p, "ecs:listclusters", "*"), Decision::Allow);
    assert_eq!(decide(&p, "ecs:ListTasks", "*"), Decision::ImplicitDeny);
}

#[test]
fn resources_match_case_sensitively() {
    let p = policy(r#"{"Effect":"Allow","Action":"ecs:*","Resource":"arn:aws:ecs:*:*:cluster/x*"}"#);
    assert_eq!(decide(&p, "ecs:DeleteCluster", CLUSTER_X), Decision::Allow);
    assert_eq!(decide(&p, "ecs:DeleteCluster", "arn:aws:ecs:us-east-1:123456789012:cluster/X"), Decision::ImplicitDeny);
    assert_eq!(decide(&p, "ecs:DeleteCluster", "arn:aws:ecs:us-east-1:123456789012:cluster/y"), Decision::ImplicitDeny);
}

#[test]
fn not_action_and_not_resource_are_complements() {
    let p = policy(r#"{"Effect":"Allow","NotAction":"ecs:Delete*","NotResource":"arn:aws:ecs:*:*:cluster/prod"}"#);
    assert_eq!(decide(&p, "ecs:ListClusters", CLUSTER_X), Decision::Allow);
    assert_eq!(decide(&p, "ecs:DeleteCluster", CLUSTER_X), Decision::ImplicitDeny);
    assert_eq!(decide(&p, "ecs:ListClusters", "arn:aws:ecs:us-east-1:1:cluster/prod"), Decision::ImplicitDeny);
    let deny = policy(r#"{"Effect":"Deny","NotAction":"ecs:List*","Resource":"*"}"#);
    let all = policy(r#"{"Effect":"Allow","Action":"*","Resource":"*"}"#);
    assert_eq!(evaluate([&all, &deny], &Request::new("iam:CreateUser", "*")), Decision::ExplicitDeny);
    assert_eq!(evaluate([&all, &deny], &Request::new("ecs:ListTasks", "*")), Decision::Allow);
}

#[test]
fn string_and_arn_conditions() {
    let p = policy(
        r#"{"Effect":"Allow","Action":"ecs:*","Resource":"*",
            "Condition":{"ArnLike":{"ecs:cluster":"arn:aws:ecs:*:*:cluster/dev-*"},
                         "StringNotEquals":{"aws:username":"mallory"}}}"#,
    );
    let dev = "arn:aws:ecs:us-east-1:1:cluster/dev-a";
    let ok = Request::new("ecs:RunTask", "*").with("ecs:cluster", dev).with("aws:username", "bob");
    assert_eq!(evaluate([&p], &ok), Decision::Allow);
    let mallory = Request::new("ecs:RunTask", "*").with("ecs:cluster", dev).with("aws:username", "mallory");
    assert_eq!(evaluate([&p], &mallory), Decision::ImplicitDeny);
    let prod = Request::new("ecs:RunTask", "*").with("ecs:cluster", "arn:aws:ecs:us-east-1:1:cluster/prod");
    assert_eq!(evaluate([&p], &prod), Decision::ImplicitDeny);
    // A missing key fails a positive operator...
    assert_eq!(evaluate([&p], &Request::new("ecs:RunTask", "*")), Decision::ImplicitDeny);
}

#[test]
fn missing_keys_and_if_exists() {
    let p = policy(
        r#"{"Effect":"Allow","Action":"ecs:*","Resource":"*",
            "Condition":{"StringEqualsIfExists":{"ECS:Cluster":"arn:c"},"StringNotLike":{"aws:username":"x*"}}}"#,
    );
    assert_eq!(evaluate([&p], &Request::new("ecs:ListClusters", "*")), Decision::Allow);
    assert_eq!(evaluate([&p], &Request::new("ecs:ListClusters", "*").with("ecs:cluster", "arn:c")), Decision::Allow);
    assert_eq!(
        evaluate([&p], &Request::new("ecs:ListClusters", "*").with("ecs:cluster", "arn:d")),
        Decision::ImplicitDeny
    );
    assert_eq!(
        evaluate([&p], &Request::new("ecs:ListClusters", "*").with("aws:username", "xavier")),
        Decision::ImplicitDeny
    );
    let null =
        policy(r#"{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"Null":{"aws:ResourceTag/team":"true"}}}"#);
    assert_eq!(evaluate([&null], &Request::new("ecs:X", "*")), Decision::ExplicitDeny);
    assert_eq!(
        evaluate([&null], &Request::new("ecs:X", "*").with("aws:ResourceTag/team", "a")),
        Decision::ImplicitDeny
    );
}

#[test]
fn resource_tag_conditions_are_found_and_evaluated() {
    let p = policy(
        r#"{"Effect":"Allow","Action":"ecs:*","Resource":"*","Condition":{"StringEquals":{"aws:ResourceTag/Team":"blue"}}}"#,
    );
    assert!(p.mentions_key("aws:resourcetag/"));
    assert!(!policy(r#"{"Effect":"Allow","Action":"*","Resource":"*"}"#).mentions_key("aws:resourcetag/"));
    let blue = Request::new("ecs:DeleteCluster", CLUSTER_X).with("aws:ResourceTag/team", "blue");
    assert_eq!(evaluate([&p], &blue), Decision::Allow);
    let red = Request::new("ecs:DeleteCluster", CLUSTER_X).with("aws:ResourceTag/team", "red");
    assert_eq!(evaluate([&p], &red), Decision::ImplicitDeny);
}

#[test]
fn malformed_documents_are_refused_with_iam_reasons() {
    let cases = [
        ("not json", MalformedPolicy::InvalidJson),
        ("[]", MalformedPolicy::InvalidJson),
        (r#"{"Version":"2012-10-17"}"#, MalformedPolicy::Syntax),
        (
            r#"{"Version":"2020-01-01","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
            MalformedPolicy::Version,
        ),
        (r#"{"Statement":{"Effect":"Maybe","Action":"*","Resource":"*"}}"#, MalformedPolicy::Syntax),
        (r#"{"Statement":{"Effect":"Allow","Resource":"*"}}"#, MalformedPolicy::NoActions),
        (r#"{"Statement":{"Effect":"Allow","Action":"*"}}"#, MalformedPolicy::NoResources),
        (r#"{"Statement":{"Effect":"Allow","Action":"*","NotAction":"x","Resource":"*"}}"#, MalformedPolicy::Syntax),
        (r#"{"Statement":{"Effect":"Allow","Action":[],"Resource":"*"}}"#, MalformedPolicy::Syntax),
        (r#"{"Statement":{"Effect":"Allow","Action":[1],"Resource":"*"}}"#, MalformedPolicy::Syntax),
        (
            r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Principal":"*"}}"#,
            MalformedPolicy::PrincipalInIdentityPolicy,
        ),
        (r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Extra":1}}"#, MalformedPolicy::Syntax),
        (
            r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"NumericLessThan":{"a":"1"}}}}"#,
            MalformedPolicy::ConditionOperator("NumericLessThan".into()),
        ),
    ];
    for (doc, want) in cases {
        assert_eq!(Policy::parse(doc), Err(want), "{doc}");
    }
    assert_eq!(
        Policy::parse_trust(
            r#"{"Statement":{"Effect":"Allow","Action":"sts:AssumeRole","Resource":"*","Principal":"*"}}"#
        ),
        Err(MalformedPolicy::ResourceInTrustPolicy)
    );
    assert_eq!(
        Policy::parse_trust(r#"{"Statement":{"Effect":"Allow","Action":"sts:AssumeRole"}}"#),
        Err(MalformedPolicy::NoPrincipal)
    );
}

#[test]
fn trust_policies_name_principals_accounts_and_services() {
    let trust = Policy::parse_trust(
        r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"},
            {"Effect":"Allow","Principal":{"AWS":["arn:aws:iam::1:user/bob","2"]},"Action":"sts:AssumeRole"}]}"#,
    )
    .expect("valid trust policy");
    assert!(trust.trusts(&[], "9", Some("ecs-tasks.amazonaws.com")));
    assert!(trust.trusts(&["arn:aws:iam::1:user/bob"], "1", None));
    assert!(trust.trusts(&["arn:aws:iam::2:user/eve"], "2", None));
    assert!(!trust.trusts(&["arn:aws:iam::1:user/eve"], "1", None));
    assert!(!trust.trusts(&[], "1", Some("ec2.amazonaws.com")));
}

proptest! {
    #[test]
    fn a_literal_matches_only_itself(s in "[a-zA-Z0-9:/_-]{0,20}", t in "[a-zA-Z0-9:/_-]{0,20}") {
        prop_assert!(matches(&s, &s, false));
        prop_assert_eq!(matches(&s, &t, false), s == t);
        prop_assert_eq!(matches(&s, &t, true), s.eq_ignore_ascii_case(&t));
    }

    #[test]
    fn star_matches_any_infix(pre in "[a-z:]{0,8}", mid in "[a-z:*?]{0,12}", post in "[a-z/]{0,8}") {
        let value = format!("{pre}{mid}{post}");
        let pattern = format!("{pre}*{post}");
        prop_assert!(matches(&pattern, &value, false));
        prop_assert!(matches("*", &value, false));
    }

    #[test]
    fn question_marks_match_exactly_that_many(s in "[a-z]{0,10}") {
        let q = "?".repeat(s.chars().count());
        prop_assert!(matches(&q, &s, false));
        let more = format!("{q}?");
        prop_assert!(!matches(&more, &s, false));
    }

    #[test]
    fn matcher_agrees_with_a_regex_oracle(p in "[ab*?]{0,8}", v in "[ab]{0,10}") {
        let re: String = p.chars().map(|c| match c { '*' => ".*".to_string(), '?' => ".".to_string(), c => c.to_string() }).collect();
        let oracle = regex_lite_match(&format!("^{re}$"), &v);
        prop_assert_eq!(matches(&p, &v, false), oracle);
    }
}

/// A backtracking reference matcher over the tiny regex subset the oracle test builds.
fn regex_lite_match(re: &str, v: &str) -> bool {
    fn go(p: &[u8], v: &[u8]) -> bool {
        match p {
            [b'$'] => v.is_empty(),
            [b'.', b'*', rest @ ..] => (0..=v.len()).any(|i| go(rest, &v[i..])),
            [b'.', rest @ ..] => !v.is_empty() && go(rest, &v[1..]),
            [c, rest @ ..] => v.first() == Some(c) && go(rest, &v[1..]),
            [] => v.is_empty(),
        }
    }
    go(&re.as_bytes()[1..], v.as_bytes())
}

proptest! {
    #[test]
    fn unicode_is_matched_by_character_like_ascii(p in "[aé*?]{0,8}", v in "[aé]{0,10}") {
        // `é` is one character (two bytes): the character path must agree with the byte
        // path on the same shape spelled with `b`.
        let (pb, vb) = (p.replace('é', "b"), v.replace('é', "b"));
        prop_assert_eq!(matches(&p, &v, false), matches(&pb, &vb, false));
        prop_assert_eq!(matches(&p.to_uppercase(), &v, true), matches(&pb, &vb, false));
    }
}

proptest! {
    /// Untrusted documents never panic the parser: any JSON-ish text is a policy or an error.
    #[test]
    fn parsing_never_panics(doc in r#"[{}\[\]",: a-zA-Z*0-9]{0,80}"#) {
        let _ = Policy::parse(&doc);
        let _ = Policy::parse_trust(&doc);
    }

    /// A parsed statement list evaluates the same whichever order the policies come in.
    #[test]
    fn evaluation_ignores_policy_order(allow_first in any::<bool>(), action in "ecs:[A-Z][a-z]{1,8}") {
        let allow = policy(r#"{"Effect":"Allow","Action":"ecs:*","Resource":"*"}"#);
        let deny = policy(r#"{"Effect":"Deny","Action":"ecs:D*","Resource":"*"}"#);
        let req = Request::new(action.clone(), "*");
        let order: [&Policy; 2] = if allow_first { [&allow, &deny] } else { [&deny, &allow] };
        let want = if action.starts_with("ecs:D") { Decision::ExplicitDeny } else { Decision::Allow };
        prop_assert_eq!(evaluate(order, &req), want);
    }
}
