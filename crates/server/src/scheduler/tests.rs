use std::collections::{BTreeMap, BTreeSet, HashMap};

use berth_api::model::{PlacementConstraint, PlacementConstraintType, PlacementStrategy, PlacementStrategyType};
use proptest::prelude::{any, prop_assert, prop_assert_eq, prop_oneof, proptest, ProptestConfig};
use proptest::strategy::Strategy as _;
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::*;

const ZONES: [&str; 3] = ["us-east-1a", "us-east-1b", "us-east-1c"];

fn arn(n: usize) -> String {
    format!("arn:aws:ecs:us-east-1:123456789012:container-instance/c/ci-{n:04}")
}

fn instance(n: usize, cpu: i64, memory: i64) -> InstanceState {
    let resources = Resources { cpu, memory, ports_tcp: [22].into(), ports_udp: BTreeSet::new() };
    InstanceState {
        arn: arn(n),
        ec2_instance_id: format!("i-{n:04}"),
        attributes: [
            ("ecs.availability-zone".to_string(), ZONES[n % 3].to_string()),
            ("ecs.instance-type".to_string(), ["t2.small", "m5.large"][n % 2].to_string()),
            ("ecs.os-type".to_string(), "linux".to_string()),
        ]
        .into(),
        registered: resources.clone(),
        remaining: resources,
        ..Default::default()
    }
}

fn cluster(n: usize, cpu: i64, memory: i64) -> Placement {
    let mut p = Placement::with_seed(7);
    for i in 0..n {
        p.upsert(instance(i, cpu, memory));
    }
    p
}

fn demand(cpu: i64, memory: i64, group: &str) -> Demand {
    Demand { cpu, memory, group: group.to_string(), ..Default::default() }
}

fn rng() -> StdRng {
    StdRng::seed_from_u64(42)
}

fn per_instance(placed: &[String]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for a in placed {
        *m.entry(a.clone()).or_default() += 1;
    }
    m
}

fn memberof(expr: &str) -> Constraint {
    Constraint::MemberOf(berth_api::query::parse(expr).unwrap())
}

#[test]
fn binpack_memory_takes_the_least_remaining_that_fits() {
    let mut p = cluster(3, 4096, 4096);
    // Leave 1000, 600 and 300 MiB.
    for (n, used) in [(0, 3096), (1, 3496), (2, 3796)] {
        p.place_on(&arn(n), &demand(0, used, "family:fill")).unwrap();
    }
    let r = p.place(&demand(10, 500, "family:a"), 1, &[], &[Strategy::Binpack(BinpackField::Memory)], &mut rng());
    assert_eq!(r.placed, vec![arn(1)], "600 is the least that still fits 500");
    let r = p.place(&demand(10, 500, "family:a"), 1, &[], &[Strategy::Binpack(BinpackField::Memory)], &mut rng());
    assert_eq!(r.placed, vec![arn(0)]);
}

#[test]
fn binpack_fills_one_instance_before_the_next() {
    let mut p = cluster(4, 1024, 1024);
    let r = p.place(&demand(256, 256, "family:a"), 8, &[], &[Strategy::Binpack(BinpackField::Cpu)], &mut rng());
    assert_eq!(r.unplaced, 0);
    let counts = per_instance(&r.placed);
    assert_eq!(counts.len(), 2, "{counts:?}");
    assert!(counts.values().all(|&c| c == 4));
}

#[test]
fn binpack_cpu_and_memory_are_separate_orders() {
    let mut p = cluster(2, 2048, 2048);
    p.place_on(&arn(0), &demand(1024, 0, "family:x")).unwrap(); // 0: 1024 cpu, 2048 mem left
    p.place_on(&arn(1), &demand(0, 1024, "family:x")).unwrap(); // 1: 2048 cpu, 1024 mem left
    let cpu = p.place(&demand(1, 1, "g"), 1, &[], &[Strategy::Binpack(BinpackField::Cpu)], &mut rng());
    assert_eq!(cpu.placed, vec![arn(0)]);
    let mem = p.place(&demand(1, 1, "g"), 1, &[], &[Strategy::Binpack(BinpackField::Memory)], &mut rng());
    assert_eq!(mem.placed, vec![arn(1)]);
}

#[test]
fn binpack_skips_instances_short_of_the_other_resource() {
    let mut p = cluster(2, 2048, 2048);
    p.place_on(&arn(0), &demand(2000, 0, "family:x")).unwrap(); // least memory? equal; but no cpu
    p.place_on(&arn(0), &demand(0, 100, "family:x")).unwrap(); // 0 has the least memory left
    let r = p.place(&demand(100, 100, "g"), 1, &[], &[Strategy::Binpack(BinpackField::Memory)], &mut rng());
    assert_eq!(r.placed, vec![arn(1)]);
}

#[test]
fn spread_over_zones_is_even() {
    let mut p = cluster(9, 4096, 4096);
    let spread = [Strategy::Spread(SpreadField::Attribute("ecs.availability-zone".into()))];
    let r = p.place(&demand(10, 10, "service:web"), 9, &[], &spread, &mut rng());
    assert_eq!(r.placed.len(), 9);
    let mut per_zone: HashMap<String, usize> = HashMap::new();
    for a in &r.placed {
        *per_zone.entry(p.get(a).unwrap().attributes["ecs.availability-zone"].clone()).or_default() += 1;
    }
    assert_eq!(per_zone.len(), 3);
    assert!(per_zone.values().all(|&c| c == 3), "{per_zone:?}");
}

#[test]
fn spread_counts_only_tasks_of_the_same_group() {
    let mut p = cluster(3, 4096, 4096);
    // Zone a is busy with another group: it must not repel service:web.
    for _ in 0..5 {
        p.place_on(&arn(0), &demand(1, 1, "service:other")).unwrap();
    }
    // Zone b already has web.
    p.place_on(&arn(1), &demand(1, 1, "service:web")).unwrap();
    let spread = [Strategy::Spread(SpreadField::Attribute("ecs.availability-zone".into()))];
    let r = p.place(&demand(1, 1, "service:web"), 2, &[], &spread, &mut rng());
    let chosen: BTreeSet<_> = r.placed.iter().cloned().collect();
    assert_eq!(chosen, [arn(0), arn(2)].into_iter().collect());
}

#[test]
fn spread_over_instances_is_even() {
    let mut p = cluster(5, 4096, 4096);
    let r = p.place(&demand(1, 1, "family:a"), 15, &[], &[Strategy::Spread(SpreadField::Instance)], &mut rng());
    let counts = per_instance(&r.placed);
    assert_eq!(counts.len(), 5);
    assert!(counts.values().all(|&c| c == 3), "{counts:?}");
}

#[test]
fn spread_instances_without_the_attribute_form_their_own_value() {
    let mut p = Placement::with_seed(1);
    let mut a = instance(0, 1024, 1024);
    a.attributes.insert("rack".into(), "r1".into());
    p.upsert(a);
    p.upsert(instance(1, 1024, 1024));
    let spread = [Strategy::Spread(SpreadField::Attribute("rack".into()))];
    let r = p.place(&demand(1, 1, "g"), 2, &[], &spread, &mut rng());
    assert_eq!(per_instance(&r.placed).len(), 2);
}

#[test]
fn spread_then_binpack_packs_within_each_zone() {
    let mut p = cluster(6, 1024, 1024);
    let chain = [
        Strategy::Spread(SpreadField::Attribute("ecs.availability-zone".into())),
        Strategy::Binpack(BinpackField::Memory),
    ];
    let r = p.place(&demand(100, 100, "service:web"), 6, &[], &chain, &mut rng());
    let counts = per_instance(&r.placed);
    // Two instances per zone, but binpack puts both of a zone's tasks on one of them.
    assert_eq!(counts.len(), 3, "{counts:?}");
    assert!(counts.values().all(|&c| c == 2));
}

#[test]
fn binpack_ties_are_broken_by_the_next_strategy() {
    let mut p = cluster(3, 1024, 1024);
    p.place_on(&arn(0), &demand(0, 0, "service:web")).unwrap();
    p.place_on(&arn(1), &demand(0, 0, "service:web")).unwrap();
    // Equal memory everywhere: spread(instanceId) decides, and only instance 2 has no web task.
    let chain = [Strategy::Binpack(BinpackField::Memory), Strategy::Spread(SpreadField::Instance)];
    for seed in 0..20 {
        let mut q = cluster(3, 1024, 1024);
        q.place_on(&arn(0), &demand(0, 0, "service:web")).unwrap();
        q.place_on(&arn(1), &demand(0, 0, "service:web")).unwrap();
        let r = q.place(&demand(10, 10, "service:web"), 1, &[], &chain, &mut StdRng::seed_from_u64(seed));
        assert_eq!(r.placed, vec![arn(2)]);
    }
    let r = p.place(&demand(1, 1, "service:web"), 1, &[], &chain, &mut rng());
    assert_eq!(r.placed, vec![arn(2)]);
}

#[test]
fn remaining_ties_are_random() {
    let mut seen = BTreeSet::new();
    for seed in 0..40 {
        let mut p = Placement::with_seed(seed);
        for i in 0..4 {
            p.upsert(instance(i, 1024, 1024));
        }
        let r = p.place(&demand(1, 1, "g"), 1, &[], &[Strategy::Binpack(BinpackField::Memory)], &mut rng());
        seen.insert(r.placed[0].clone());
    }
    assert!(seen.len() >= 3, "ties go to different instances: {seen:?}");
}

#[test]
fn random_reaches_every_instance_and_only_fit_ones() {
    let mut p = cluster(10, 1024, 1024);
    for n in 0..9 {
        p.place_on(&arn(n), &demand(1024, 0, "family:fill")).unwrap();
    }
    let r = p.place(&demand(512, 1, "g"), 2, &[], &[Strategy::Random], &mut rng());
    assert_eq!(r.placed, vec![arn(9), arn(9)]);
    let mut p = cluster(10, 100_000, 100_000);
    let r = p.place(&demand(1, 1, "g"), 400, &[], &[], &mut rng());
    assert_eq!(per_instance(&r.placed).len(), 10);
}

#[test]
fn distinct_instance_puts_each_task_of_the_group_on_its_own_instance() {
    let mut p = cluster(3, 4096, 4096);
    let binpack = [Strategy::Binpack(BinpackField::Memory)];
    let r = p.place(&demand(1, 1, "service:db"), 4, &[Constraint::DistinctInstance], &binpack, &mut rng());
    assert_eq!(per_instance(&r.placed).len(), 3);
    assert_eq!(r.unplaced, 1);
    assert_eq!(r.failures.len(), 3);
    assert!(r.failures.iter().all(|f| f.reason == FailureReason::DistinctInstance));
    assert_eq!(r.failures[0].reason.as_str(), "DistinctInstance placement constraint unsatisfied.");
    // Another group is not affected.
    let r = p.place(&demand(1, 1, "service:cache"), 3, &[Constraint::DistinctInstance], &binpack, &mut rng());
    assert_eq!(r.unplaced, 0);
}

#[test]
fn member_of_restricts_candidates() {
    let mut p = cluster(6, 4096, 4096);
    let c = [memberof("attribute:ecs.instance-type == m5.large and attribute:ecs.availability-zone != us-east-1b")];
    let r = p.place(&demand(1, 1, "g"), 20, &c, &[Strategy::Spread(SpreadField::Instance)], &mut rng());
    // Odd instances are m5.large; instance 1 is in zone b: 3 and 5 remain.
    assert_eq!(per_instance(&r.placed).keys().cloned().collect::<Vec<_>>(), vec![arn(3), arn(5)]);
    let none = [memberof("attribute:ecs.instance-type == g2.2xlarge")];
    let r = p.place(&demand(1, 1, "g"), 1, &none, &[], &mut rng());
    assert_eq!(r.unplaced, 1);
    assert_eq!(r.failures.len(), 6);
    assert!(r.failures.iter().all(|f| f.reason.as_str() == "MemberOf placement constraint unsatisfied."));
}

#[test]
fn member_of_sees_copies_placed_earlier_in_the_call() {
    let mut p = cluster(3, 4096, 4096);
    let c = [memberof("not(task:group == service:db)")];
    let r = p.place(&demand(1, 1, "service:db"), 4, &c, &[], &mut rng());
    assert_eq!(per_instance(&r.placed).len(), 3, "anti-affinity acts like distinctInstance");
    assert_eq!(r.unplaced, 1);
    let affinity = [memberof("task:group == service:db")];
    let r = p.place(&demand(1, 1, "service:app"), 5, &affinity, &[], &mut rng());
    assert_eq!(r.unplaced, 0);
}

#[test]
fn failures_name_each_active_instance_with_its_first_reason() {
    let mut p = cluster(4, 1024, 1024);
    p.place_on(&arn(0), &demand(1000, 0, "f")).unwrap(); // no CPU
    p.place_on(&arn(1), &demand(0, 1000, "f")).unwrap(); // no memory
    let mut disconnected = instance(2, 1024, 1024);
    disconnected.agent_connected = false;
    p.upsert(disconnected);
    let mut draining = instance(3, 1024, 1024);
    draining.active = false;
    p.upsert(draining);
    let r = p.place(&demand(100, 100, "g"), 3, &[], &[], &mut rng());
    assert!(r.placed.is_empty());
    assert_eq!(r.unplaced, 3);
    let got: Vec<(String, &str)> = r.failures.iter().map(|f| (f.arn.clone().unwrap(), f.reason.as_str())).collect();
    assert_eq!(got, vec![(arn(0), "RESOURCE:CPU"), (arn(1), "RESOURCE:MEMORY"), (arn(2), "AGENT")]);
    let wire: berth_api::model::Failure = r.failures[0].clone().into();
    assert_eq!(wire.reason.as_deref(), Some("RESOURCE:CPU"));
    assert_eq!(wire.arn, Some(arn(0)));
}

#[test]
fn an_empty_cluster_places_nothing_and_says_so() {
    let mut p = Placement::new();
    assert!(p.is_empty());
    let r = p.place(&demand(1, 1, "g"), 2, &[], &[], &mut rng());
    assert_eq!(r, PlacementResult { placed: vec![], failures: vec![], unplaced: 2 });
}

#[test]
fn required_attributes_are_reported_as_attribute() {
    let mut p = cluster(2, 1024, 1024);
    let mut d = demand(1, 1, "g");
    d.requires = vec![RequiredAttribute { name: "ecs.capability.task-eni".into(), value: None }];
    let r = p.place(&d, 1, &[], &[], &mut rng());
    assert!(r.failures.iter().all(|f| f.reason == FailureReason::Attribute));
    d.requires = vec![RequiredAttribute { name: "ecs.instance-type".into(), value: Some("m5.large".into()) }];
    let r = p.place(&d, 1, &[], &[], &mut rng());
    assert_eq!(r.placed, vec![arn(1)]);
}

#[test]
fn static_host_ports_conflict() {
    let mut p = cluster(2, 4096, 4096);
    let mut web = demand(1, 1, "family:web");
    web.ports_tcp = vec![80];
    let r = p.place(&web, 3, &[], &[Strategy::Binpack(BinpackField::Memory)], &mut rng());
    assert_eq!(per_instance(&r.placed).len(), 2);
    assert_eq!(r.unplaced, 1);
    assert!(r.failures.iter().all(|f| f.reason.as_str() == "RESOURCE:PORTS"));
    // The host's own reserved port 22 is taken too.
    let mut ssh = demand(1, 1, "family:ssh");
    ssh.ports_tcp = vec![22];
    assert_eq!(p.place_on(&arn(0), &ssh).unwrap_err().reason, FailureReason::Resource(ResourceName::Ports));
    // UDP is a separate space.
    let mut dns = demand(1, 1, "family:dns");
    dns.ports_udp = vec![80];
    p.place_on(&arn(0), &dns).unwrap();
    assert_eq!(p.place_on(&arn(0), &dns).unwrap_err().reason.as_str(), "RESOURCE:PORTS_UDP");
}

#[test]
fn release_gives_everything_back() {
    let mut p = cluster(1, 1024, 2048);
    let before = p.get(&arn(0)).unwrap().clone();
    let mut d = demand(512, 1024, "service:web");
    d.ports_tcp = vec![8080];
    p.place_on(&arn(0), &d).unwrap();
    let during = p.get(&arn(0)).unwrap();
    assert_eq!((during.remaining.cpu, during.remaining.memory, during.running_tasks), (512, 1024, 1));
    assert!(during.remaining.ports_tcp.contains(&8080));
    assert_eq!(during.group_count("service:web"), 1);
    p.release(&arn(0), &d);
    assert_eq!(p.get(&arn(0)).unwrap(), &before);
    // Releasing what was never placed does not grow the instance past what it registered,
    // nor free the host's own ports.
    let mut ssh = demand(512, 512, "x");
    ssh.ports_tcp = vec![22];
    p.release(&arn(0), &ssh);
    assert_eq!(p.get(&arn(0)).unwrap(), &before);
    // The instance is placeable again, through the index.
    let r = p.place(&demand(1024, 2048, "g"), 1, &[], &[Strategy::Binpack(BinpackField::Memory)], &mut rng());
    assert_eq!(r.placed, vec![arn(0)]);
}

#[test]
fn place_on_reports_missing_inactive_and_agent() {
    let mut p = cluster(1, 1024, 1024);
    let d = demand(1, 1, "g");
    assert_eq!(
        p.place_on("nope", &d).unwrap_err(),
        PlacementFailure { arn: Some("nope".into()), reason: FailureReason::Missing }
    );
    p.place_on("ci-0000", &d).expect("found by id");
    let mut i = instance(0, 1024, 1024);
    i.active = false;
    p.upsert(i);
    assert_eq!(p.place_on(&arn(0), &d).unwrap_err().reason.as_str(), "INACTIVE");
    let mut i = instance(0, 1024, 1024);
    i.agent_connected = false;
    p.upsert(i);
    assert_eq!(p.place_on(&arn(0), &d).unwrap_err().reason.as_str(), "AGENT");
}

#[test]
fn upsert_and_remove_keep_the_indexes_right() {
    let mut p = cluster(3, 1024, 1024);
    let spread = [Strategy::Spread(SpreadField::Attribute("ecs.availability-zone".into()))];
    p.place(&demand(1, 1, "g"), 3, &[], &spread, &mut rng()); // builds the zone index
    p.remove(&arn(0));
    assert!(p.get(&arn(0)).is_none());
    let mut moved = instance(1, 1024, 1024);
    moved.attributes.insert("ecs.availability-zone".into(), "us-east-1c".into());
    p.upsert(moved);
    assert_eq!(p.len(), 2);
    let r = p.place(&demand(1, 1, "g"), 4, &[], &spread, &mut rng());
    assert!(r.placed.iter().all(|a| *a == arn(1) || *a == arn(2)));
    let r = p.place(&demand(1, 2000, "g"), 1, &[], &spread, &mut rng());
    assert_eq!(r.failures.len(), 2);
    p.upsert(instance(7, 4096, 4096));
    let r = p.place(&demand(1, 2000, "g"), 1, &[], &spread, &mut rng());
    assert_eq!(r.placed, vec![arn(7)]);
}

#[test]
fn wire_strategies_and_constraints() {
    let s = |t, f: Option<&str>| PlacementStrategy { r#type: Some(t), field: f.map(str::to_string) };
    assert_eq!(
        Strategy::from_model(&s(PlacementStrategyType::Binpack, Some("MEMORY"))).unwrap(),
        Strategy::Binpack(BinpackField::Memory)
    );
    assert_eq!(
        Strategy::from_model(&s(PlacementStrategyType::Spread, Some("host"))).unwrap(),
        Strategy::Spread(SpreadField::Instance)
    );
    assert_eq!(
        Strategy::from_model(&s(PlacementStrategyType::Spread, Some("attribute:ecs.availability-zone"))).unwrap(),
        Strategy::Spread(SpreadField::Attribute("ecs.availability-zone".into()))
    );
    assert_eq!(Strategy::from_model(&s(PlacementStrategyType::Random, None)).unwrap(), Strategy::Random);
    assert!(Strategy::from_model(&s(PlacementStrategyType::Binpack, Some("disk"))).is_err());
    assert!(Strategy::from_model(&s(PlacementStrategyType::Spread, None)).is_err());
    let six: Vec<_> = std::iter::repeat_n(s(PlacementStrategyType::Random, None), 6).collect();
    assert!(Strategy::from_models(&six).is_err());
    let c = |t, e: Option<&str>| PlacementConstraint { r#type: Some(t), expression: e.map(str::to_string) };
    assert_eq!(
        Constraint::from_model(&c(PlacementConstraintType::DistinctInstance, None)).unwrap(),
        Constraint::DistinctInstance
    );
    let err = Constraint::from_model(&c(PlacementConstraintType::DistinctInstance, Some("a"))).unwrap_err();
    assert_eq!(err.message, "You cannot specify an expression if the constraint type is distinctInstance.");
    let err = Constraint::from_model(&c(PlacementConstraintType::MemberOf, Some("attribute:x =="))).unwrap_err();
    assert_eq!(err.kind, berth_api::ErrorKind::InvalidParameter);
    assert!(Constraint::from_model(&c(PlacementConstraintType::MemberOf, Some("attribute:x exists"))).is_ok());
}

#[derive(Debug, Clone)]
enum Op {
    Place { cpu: i64, memory: i64, port: Option<u16>, group: u8, count: usize, chain: u8, distinct: bool },
    PlaceOn { instance: usize, cpu: i64, memory: i64, port: Option<u16> },
    Release { nth: usize },
    Reregister { instance: usize, zone: u8, connected: bool, active: bool },
}

fn port() -> impl proptest::strategy::Strategy<Value = Option<u16>> {
    proptest::option::weighted(0.3, 80u16..84)
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    prop_oneof![
        4 => (0i64..700, 0i64..900, port(), 0u8..3, 1usize..6, 0u8..6, any::<bool>()).prop_map(
            |(cpu, memory, port, group, count, chain, distinct)| {
                Op::Place { cpu, memory, port, group, count, chain, distinct }
            }
        ),
        1 => (0usize..6, 0i64..700, 0i64..900, port())
            .prop_map(|(instance, cpu, memory, port)| Op::PlaceOn { instance, cpu, memory, port }),
        2 => (0usize..64).prop_map(|nth| Op::Release { nth }),
        1 => (0usize..6, 0u8..3, proptest::bool::weighted(0.8), proptest::bool::weighted(0.9))
            .prop_map(|(instance, zone, connected, active)| Op::Reregister { instance, zone, connected, active }),
    ]
}

fn chain(n: u8) -> Vec<Strategy> {
    let zone = || Strategy::Spread(SpreadField::Attribute("ecs.availability-zone".into()));
    match n {
        0 => vec![Strategy::Binpack(BinpackField::Memory)],
        1 => vec![Strategy::Binpack(BinpackField::Cpu), Strategy::Spread(SpreadField::Instance)],
        2 => vec![zone(), Strategy::Binpack(BinpackField::Memory)],
        3 => vec![zone(), Strategy::Spread(SpreadField::Instance)],
        4 => vec![Strategy::Random],
        _ => vec![],
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Whatever happens, the index never gives an instance more than it registered, never
    /// books a port twice, and agrees with a replay of what it placed.
    #[test]
    fn placement_never_over_commits(ops in proptest::collection::vec(op(), 1..60), seed in any::<u64>()) {
        let mut p = Placement::with_seed(seed);
        let mut r = StdRng::seed_from_u64(seed);
        for i in 0..6 {
            p.upsert(instance(i, 2048, 4096));
        }
        let mut live: Vec<(String, Demand)> = Vec::new();
        for op in ops {
            match op {
                Op::Place { cpu, memory, port, group, count, chain: c, distinct } => {
                    let group = format!("g{group}");
                    let d = Demand { ports_tcp: port.into_iter().collect(), ..demand(cpu, memory, &group) };
                    let constraints = if distinct { vec![Constraint::DistinctInstance] } else { vec![] };
                    let res = p.place(&d, count, &constraints, &chain(c), &mut r);
                    prop_assert_eq!(res.placed.len() + res.unplaced, count);
                    prop_assert_eq!(res.failures.is_empty(), res.unplaced == 0);
                    for a in res.placed {
                        prop_assert!(p.get(&a).unwrap().placeable());
                        live.push((a, d.clone()));
                    }
                }
                Op::PlaceOn { instance, cpu, memory, port } => {
                    let d = Demand { ports_tcp: port.into_iter().collect(), ..demand(cpu, memory, "on") };
                    if p.place_on(&arn(instance), &d).is_ok() {
                        live.push((arn(instance), d));
                    }
                }
                Op::Release { nth } => {
                    if !live.is_empty() {
                        let (a, d) = live.swap_remove(nth % live.len());
                        p.release(&a, &d);
                    }
                }
                Op::Reregister { instance: i, zone, connected, active } => {
                    // The store's view replaces the index's: same usage, maybe another zone or status.
                    let mut st = p.get(&arn(i)).unwrap().clone();
                    st.attributes.insert("ecs.availability-zone".into(), ZONES[zone as usize].into());
                    st.agent_connected = connected;
                    st.active = active;
                    p.upsert(st);
                }
            }
            p.assert_consistent();
            for i in 0..6 {
                let st = p.get(&arn(i)).unwrap();
                let mine: Vec<&Demand> = live.iter().filter(|(a, _)| *a == arn(i)).map(|(_, d)| d).collect();
                let cpu: i64 = mine.iter().map(|d| d.cpu).sum();
                let memory: i64 = mine.iter().map(|d| d.memory).sum();
                prop_assert!(cpu <= st.registered.cpu && memory <= st.registered.memory);
                prop_assert_eq!(st.remaining.cpu, st.registered.cpu - cpu);
                prop_assert_eq!(st.remaining.memory, st.registered.memory - memory);
                let ports: Vec<u16> = mine.iter().flat_map(|d| d.ports_tcp.iter().copied()).collect();
                let distinct: BTreeSet<u16> = ports.iter().copied().collect();
                prop_assert_eq!(ports.len(), distinct.len(), "a port booked twice on {}", i);
                prop_assert!(!distinct.contains(&22));
                prop_assert_eq!(st.running_tasks as usize, mine.len());
            }
        }
    }
}
