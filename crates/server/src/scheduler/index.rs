//! The per-cluster placement index and the placement algorithm over it (see the module docs of
//! [`super`] for the rules and the design).

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use rand::Rng;

use super::{
    BinpackField, Constraint, Demand, FailureReason, InstanceState, PlacementFailure, PlacementResult, ResourceName,
    SpreadField, Strategy,
};

/// How many random members `random` probes before it scans for the fit ones.
const RANDOM_PROBES: usize = 32;

/// An ordered-set key: (remaining cpu or memory, random salt, slot).
type Key = (i64, u64, usize);

/// A set of placeable instances, ordered for binpack and listed for random picks.
#[derive(Debug, Default)]
struct Ordered {
    members: Vec<usize>,
    at: HashMap<usize, usize>,
    by_cpu: BTreeSet<Key>,
    by_memory: BTreeSet<Key>,
}

/// The index keys of one instance: remaining cpu, remaining memory, salt.
type Keys = (i64, i64, u64);

impl Ordered {
    fn insert(&mut self, slot: usize, (cpu, memory, salt): Keys) {
        self.at.insert(slot, self.members.len());
        self.members.push(slot);
        self.by_cpu.insert((cpu, salt, slot));
        self.by_memory.insert((memory, salt, slot));
    }

    fn remove(&mut self, slot: usize, (cpu, memory, salt): Keys) {
        if let Some(at) = self.at.remove(&slot) {
            self.members.swap_remove(at);
            if let Some(&moved) = self.members.get(at) {
                self.at.insert(moved, at);
            }
        }
        self.by_cpu.remove(&(cpu, salt, slot));
        self.by_memory.remove(&(memory, salt, slot));
    }

    fn rekey(&mut self, slot: usize, (cpu, memory, salt): Keys, (new_cpu, new_memory, new_salt): Keys) {
        self.by_cpu.remove(&(cpu, salt, slot));
        self.by_memory.remove(&(memory, salt, slot));
        self.by_cpu.insert((new_cpu, new_salt, slot));
        self.by_memory.insert((new_memory, new_salt, slot));
    }

    fn ordered(&self, field: BinpackField) -> &BTreeSet<Key> {
        match field {
            BinpackField::Cpu => &self.by_cpu,
            BinpackField::Memory => &self.by_memory,
        }
    }
}

/// The instances sharing one value of an attribute.
#[derive(Debug, Default)]
struct Bucket {
    /// The placeable ones.
    set: Ordered,
    /// Tasks per group on every instance with the value (placeable or not).
    groups: HashMap<String, u64>,
    /// Instances with the value (placeable or not).
    instances: usize,
}

impl Bucket {
    fn add_group(&mut self, group: &str, n: u64) {
        match self.groups.get_mut(group) {
            Some(c) => *c += n,
            None => {
                self.groups.insert(group.to_string(), n);
            }
        }
    }

    fn sub_group(&mut self, group: &str, n: u64) {
        if let Some(c) = self.groups.get_mut(group) {
            *c = c.saturating_sub(n);
            if *c == 0 {
                self.groups.remove(group);
            }
        }
    }
}

/// One attribute's buckets, for `spread(attribute:NAME)`.
#[derive(Debug, Default)]
struct AttrIndex {
    values: BTreeMap<String, Bucket>,
    /// Instances without the attribute.
    missing: Bucket,
}

impl AttrIndex {
    fn bucket(&self, value: Option<&str>) -> Option<&Bucket> {
        match value {
            Some(v) => self.values.get(v),
            None => Some(&self.missing),
        }
    }

    fn bucket_mut(&mut self, value: Option<&str>) -> Option<&mut Bucket> {
        match value {
            Some(v) => self.values.get_mut(v),
            None => Some(&mut self.missing),
        }
    }

    fn buckets(&self) -> impl Iterator<Item = &Bucket> {
        self.values.values().chain(std::iter::once(&self.missing))
    }
}

#[derive(Debug)]
struct Slot {
    state: InstanceState,
    salt: u64,
}

impl Slot {
    fn keys(&self) -> Keys {
        (self.state.remaining.cpu, self.state.remaining.memory, self.salt)
    }
}

/// What a choice is made under.
#[derive(Clone, Copy)]
struct Ctx<'a> {
    demand: &'a Demand,
    constraints: &'a [Constraint],
    /// Only instances running exactly this many tasks of the group (a `spread(instanceId)` class).
    group_count: Option<u32>,
}

/// One cluster's container instances, indexed for placement. See the module docs of [`super`].
#[derive(Debug)]
pub struct Placement {
    slots: Vec<Option<Slot>>,
    free: Vec<usize>,
    by_arn: HashMap<String, usize>,
    by_id: HashMap<String, usize>,
    /// Every placeable instance.
    all: Ordered,
    /// Attribute name -> buckets, for the attributes spread over so far.
    attrs: HashMap<String, AttrIndex>,
    salt_state: u64,
}

impl Default for Placement {
    fn default() -> Self {
        Self::new()
    }
}

/// The instance's id: its `id`, else the last part of its ARN (`.../container-instance/CLUSTER/ID`).
fn id_of(state: &InstanceState) -> &str {
    if state.id.is_empty() {
        state.arn.rsplit('/').next().unwrap_or(&state.arn)
    } else {
        &state.id
    }
}

impl Placement {
    /// An empty index.
    pub fn new() -> Self {
        Self::with_seed(rand::random())
    }

    /// An empty index whose tie-breaking salts derive from `seed` (for reproducible tests).
    pub fn with_seed(seed: u64) -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
            by_arn: HashMap::new(),
            by_id: HashMap::new(),
            all: Ordered::default(),
            attrs: HashMap::new(),
            salt_state: seed,
        }
    }

    /// How many container instances the index holds, in any status.
    pub fn len(&self) -> usize {
        self.by_arn.len()
    }

    /// Whether the index holds no container instance at all.
    pub fn is_empty(&self) -> bool {
        self.by_arn.is_empty()
    }

    /// The instances, in no particular order.
    pub fn instances(&self) -> impl Iterator<Item = &InstanceState> {
        self.slots.iter().flatten().map(|s| &s.state)
    }

    /// Adds an instance, or replaces what is known of it.
    pub fn upsert(&mut self, instance: InstanceState) {
        let salt = self.next_salt();
        if let Some(&slot) = self.by_arn.get(&instance.arn) {
            self.unlink(slot);
            let s = self.slots[slot].as_mut().expect("indexed slot is occupied");
            self.by_id.remove(id_of(&s.state));
            self.by_id.insert(id_of(&instance).to_string(), slot);
            s.state = instance;
            s.salt = salt;
            self.link(slot);
            return;
        }
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.slots.push(None);
                self.slots.len() - 1
            }
        };
        self.by_arn.insert(instance.arn.clone(), slot);
        self.by_id.insert(id_of(&instance).to_string(), slot);
        self.slots[slot] = Some(Slot { state: instance, salt });
        self.link(slot);
    }

    /// Forgets an instance (deregistered).
    pub fn remove(&mut self, arn: &str) {
        let Some(slot) = self.lookup(arn) else { return };
        self.unlink(slot);
        if let Some(s) = self.slots[slot].take() {
            self.by_arn.remove(&s.state.arn);
            self.by_id.remove(id_of(&s.state));
        }
        self.free.push(slot);
    }

    /// What is known of an instance, by ARN or id.
    pub fn get(&self, arn: &str) -> Option<&InstanceState> {
        self.lookup(arn).and_then(|slot| self.slots[slot].as_ref()).map(|s| &s.state)
    }

    fn lookup(&self, arn_or_id: &str) -> Option<usize> {
        self.by_arn.get(arn_or_id).or_else(|| self.by_id.get(arn_or_id)).copied()
    }

    fn slot(&self, slot: usize) -> &Slot {
        self.slots[slot].as_ref().expect("indexed slot is occupied")
    }

    fn next_salt(&mut self) -> u64 {
        // splitmix64
        self.salt_state = self.salt_state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.salt_state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Places `count` copies of `demand` under `constraints`, ordering candidates by `strategies`
    /// (an empty chain is random). Each copy placed is reserved. When a copy fits nowhere, the
    /// rest are not placed and `failures` says why each ACTIVE instance refused.
    pub fn place(
        &mut self,
        demand: &Demand,
        count: usize,
        constraints: &[Constraint],
        strategies: &[Strategy],
        rng: &mut impl Rng,
    ) -> PlacementResult {
        for s in strategies {
            if let Strategy::Spread(SpreadField::Attribute(name)) = s {
                self.ensure_attribute_index(name);
            }
        }
        let mut placed = Vec::with_capacity(count);
        for n in 0..count {
            let ctx = Ctx { demand, constraints, group_count: None };
            match self.choose(strategies, &self.all, &ctx, rng) {
                Some(slot) => {
                    self.reserve(slot, demand);
                    placed.push(self.slot(slot).state.arn.clone());
                }
                None => {
                    let failures = self.explain(&ctx);
                    return PlacementResult { placed, failures, unplaced: count - n };
                }
            }
        }
        PlacementResult { placed, failures: Vec::new(), unplaced: 0 }
    }

    /// Places one copy on a named instance (StartTask, by ARN or id): no strategy and no
    /// constraint, but the agent, the required attributes and the resources are checked; reserves
    /// on success. Failures are `MISSING`, `INACTIVE` (not ACTIVE), `AGENT`, `ATTRIBUTE` and
    /// `RESOURCE:*`.
    pub fn place_on(&mut self, arn: &str, demand: &Demand) -> Result<(), PlacementFailure> {
        let Some(slot) = self.lookup(arn) else {
            return Err(PlacementFailure { arn: Some(arn.to_string()), reason: FailureReason::Missing });
        };
        let state = &self.slot(slot).state;
        let fail = |reason| PlacementFailure { arn: Some(state.arn.clone()), reason };
        if !state.active {
            return Err(fail(FailureReason::Inactive));
        }
        let ctx = Ctx { demand, constraints: &[], group_count: None };
        if let Err(reason) = check(state, &ctx) {
            return Err(fail(reason));
        }
        self.reserve(slot, demand);
        Ok(())
    }

    /// Gives back what a copy of `demand` placed on `arn` reserved (the task stopped, or its
    /// creation failed). Resources never grow past what the instance registered.
    pub fn release(&mut self, arn: &str, demand: &Demand) {
        let Some(slot) = self.lookup(arn) else { return };
        let salt = self.next_salt();
        let s = self.slots[slot].as_mut().expect("indexed slot is occupied");
        let old = s.keys();
        let st = &mut s.state;
        st.remaining.cpu = (st.remaining.cpu + demand.cpu).min(st.registered.cpu.max(st.remaining.cpu));
        st.remaining.memory = (st.remaining.memory + demand.memory).min(st.registered.memory.max(st.remaining.memory));
        for p in &demand.ports_tcp {
            if !st.registered.ports_tcp.contains(p) {
                st.remaining.ports_tcp.remove(p);
            }
        }
        for p in &demand.ports_udp {
            if !st.registered.ports_udp.contains(p) {
                st.remaining.ports_udp.remove(p);
            }
        }
        let had = match st.task_groups.get_mut(&demand.group) {
            Some(n) if *n > 0 => {
                *n -= 1;
                if *n == 0 {
                    st.task_groups.remove(&demand.group);
                }
                true
            }
            _ => false,
        };
        st.running_tasks = st.running_tasks.saturating_sub(1);
        s.salt = salt;
        let new = s.keys();
        self.after_change(slot, old, new, &demand.group, if had { -1 } else { 0 });
    }

    fn reserve(&mut self, slot: usize, demand: &Demand) {
        let salt = self.next_salt();
        let s = self.slots[slot].as_mut().expect("indexed slot is occupied");
        let old = s.keys();
        let st = &mut s.state;
        st.remaining.cpu -= demand.cpu;
        st.remaining.memory -= demand.memory;
        st.remaining.ports_tcp.extend(demand.ports_tcp.iter().filter(|&&p| p != 0));
        st.remaining.ports_udp.extend(demand.ports_udp.iter().filter(|&&p| p != 0));
        match st.task_groups.get_mut(&demand.group) {
            Some(n) => *n += 1,
            None => {
                st.task_groups.insert(demand.group.clone(), 1);
            }
        }
        st.running_tasks += 1;
        s.salt = salt;
        let new = s.keys();
        self.after_change(slot, old, new, &demand.group, 1);
    }

    /// Re-keys `slot` in every set it is in and moves its group count by `delta`.
    fn after_change(&mut self, slot: usize, old: Keys, new: Keys, group: &str, delta: i64) {
        let s = self.slots[slot].as_ref().expect("indexed slot is occupied");
        let placeable = s.state.placeable();
        if placeable {
            self.all.rekey(slot, old, new);
        }
        for (name, index) in &mut self.attrs {
            let Some(bucket) = index.bucket_mut(s.state.attributes.get(name).map(String::as_str)) else { continue };
            if placeable {
                bucket.set.rekey(slot, old, new);
            }
            match delta.cmp(&0) {
                Ordering::Greater => bucket.add_group(group, delta.unsigned_abs()),
                Ordering::Less => bucket.sub_group(group, delta.unsigned_abs()),
                Ordering::Equal => {}
            }
        }
    }

    /// Adds `slot` to every index.
    fn link(&mut self, slot: usize) {
        let s = self.slots[slot].as_ref().expect("indexed slot is occupied");
        if s.state.placeable() {
            self.all.insert(slot, s.keys());
        }
        for (name, index) in &mut self.attrs {
            link_attribute(index, name, slot, s);
        }
    }

    /// Removes `slot` from every index.
    fn unlink(&mut self, slot: usize) {
        let s = self.slots[slot].as_ref().expect("indexed slot is occupied");
        let keys = s.keys();
        if s.state.placeable() {
            self.all.remove(slot, keys);
        }
        for (name, index) in &mut self.attrs {
            let value = s.state.attributes.get(name).map(String::as_str);
            let Some(bucket) = index.bucket_mut(value) else { continue };
            if s.state.placeable() {
                bucket.set.remove(slot, keys);
            }
            for (g, n) in &s.state.task_groups {
                bucket.sub_group(g, u64::from(*n));
            }
            bucket.instances = bucket.instances.saturating_sub(1);
            if let Some(v) = value {
                if bucket.instances == 0 {
                    index.values.remove(v);
                }
            }
        }
    }

    fn ensure_attribute_index(&mut self, name: &str) {
        if self.attrs.contains_key(name) {
            return;
        }
        let mut index = AttrIndex::default();
        for (slot, s) in self.slots.iter().enumerate() {
            if let Some(s) = s {
                link_attribute(&mut index, name, slot, s);
            }
        }
        self.attrs.insert(name.to_string(), index);
    }

    /// The best eligible instance in `domain` by `chain`, or none.
    fn choose(&self, chain: &[Strategy], domain: &Ordered, ctx: &Ctx<'_>, rng: &mut impl Rng) -> Option<usize> {
        match chain.split_first() {
            None | Some((Strategy::Random, _)) => self.random_in(domain, ctx, rng),
            Some((Strategy::Binpack(field), rest)) => self.binpack_in(*field, rest, domain, ctx, rng),
            Some((Strategy::Spread(SpreadField::Attribute(name)), rest))
                if std::ptr::eq(domain, &self.all) && self.attrs.contains_key(name) =>
            {
                self.spread_attribute(name, rest, ctx, rng)
            }
            Some((Strategy::Spread(SpreadField::Instance), rest)) if ctx.group_count.is_none() => {
                // The fewest tasks of the group is zero whenever some eligible instance has none.
                let class0 = Ctx { group_count: Some(0), ..*ctx };
                self.choose(rest, domain, &class0, rng).or_else(|| self.scan(chain, domain, ctx, rng))
            }
            _ => self.scan(chain, domain, ctx, rng),
        }
    }

    fn binpack_in(
        &self,
        field: BinpackField,
        rest: &[Strategy],
        domain: &Ordered,
        ctx: &Ctx<'_>,
        rng: &mut impl Rng,
    ) -> Option<usize> {
        let need = match field {
            BinpackField::Cpu => ctx.demand.cpu,
            BinpackField::Memory => ctx.demand.memory,
        };
        let set = domain.ordered(field);
        let mut from = need;
        // Tier by tier (instances with equal remaining), lowest first. Within a tier the walk starts
        // at a random salt and wraps around: instances a constraint rules out do not pile up in
        // front of the ones it keeps, as they would if the tier were always walked from its start.
        loop {
            let &(value, _, _) = set.range((from, 0, 0)..).next()?;
            let start: u64 = rng.random();
            let upper = set.range((value, start, 0)..=(value, u64::MAX, usize::MAX));
            let lower = set.range((value, 0, 0)..(value, start, 0));
            if let Some(&(_, _, first)) = upper.chain(lower).find(|k| self.eligible(k.2, ctx)) {
                if rest.is_empty() || rest[0] == Strategy::Random {
                    return Some(first);
                }
                let tier = set.range((value, 0, 0)..=(value, u64::MAX, usize::MAX));
                let ties = tier.filter(|k| self.eligible(k.2, ctx)).map(|k| k.2);
                return self.pick_best(rest, ties, &ctx.demand.group, rng);
            }
            from = value.checked_add(1)?;
        }
    }

    fn spread_attribute(&self, name: &str, rest: &[Strategy], ctx: &Ctx<'_>, rng: &mut impl Rng) -> Option<usize> {
        let group = ctx.demand.group.as_str();
        let index = &self.attrs[name];
        let mut values: Vec<(u64, &Ordered)> = index
            .buckets()
            .filter(|b| !b.set.members.is_empty())
            .map(|b| (b.groups.get(group).copied().unwrap_or(0), &b.set))
            .collect();
        values.sort_by_key(|v| v.0);
        for class in values.chunk_by(|a, b| a.0 == b.0) {
            let winners: Vec<usize> = class.iter().filter_map(|(_, set)| self.choose(rest, set, ctx, rng)).collect();
            if !winners.is_empty() {
                return self.pick_best(rest, winners.into_iter(), group, rng);
            }
        }
        None
    }

    fn random_in(&self, domain: &Ordered, ctx: &Ctx<'_>, rng: &mut impl Rng) -> Option<usize> {
        let members = &domain.members;
        if members.is_empty() {
            return None;
        }
        for _ in 0..RANDOM_PROBES {
            let slot = members[rng.random_range(0..members.len())];
            if self.eligible(slot, ctx) {
                return Some(slot);
            }
        }
        self.pick_best(&[], members.iter().copied().filter(|&s| self.eligible(s, ctx)), "", rng)
    }

    /// The fallback: every eligible member of `domain`, compared by the whole chain.
    fn scan(&self, chain: &[Strategy], domain: &Ordered, ctx: &Ctx<'_>, rng: &mut impl Rng) -> Option<usize> {
        let eligible = domain.members.iter().copied().filter(|&s| self.eligible(s, ctx));
        self.pick_best(chain, eligible, &ctx.demand.group, rng)
    }

    /// The least of `candidates` by `chain`, ties broken uniformly at random.
    fn pick_best(
        &self,
        chain: &[Strategy],
        candidates: impl Iterator<Item = usize>,
        group: &str,
        rng: &mut impl Rng,
    ) -> Option<usize> {
        let mut best = None;
        let mut ties = 0u32;
        for c in candidates {
            let ord = match best {
                None => Ordering::Less,
                Some(b) => self.compare(chain, c, b, group),
            };
            match ord {
                Ordering::Less => {
                    best = Some(c);
                    ties = 1;
                }
                Ordering::Equal => {
                    ties += 1;
                    if rng.random_range(0..ties) == 0 {
                        best = Some(c);
                    }
                }
                Ordering::Greater => {}
            }
        }
        best
    }

    fn compare(&self, chain: &[Strategy], a: usize, b: usize, group: &str) -> Ordering {
        for s in chain {
            if *s == Strategy::Random {
                return Ordering::Equal;
            }
            let ord = self.key(s, a, group).cmp(&self.key(s, b, group));
            if ord != Ordering::Equal {
                return ord;
            }
        }
        Ordering::Equal
    }

    /// Where `slot` stands under one strategy: lower is preferred.
    fn key(&self, s: &Strategy, slot: usize, group: &str) -> i64 {
        let st = &self.slot(slot).state;
        match s {
            Strategy::Binpack(BinpackField::Cpu) => st.remaining.cpu,
            Strategy::Binpack(BinpackField::Memory) => st.remaining.memory,
            Strategy::Spread(SpreadField::Instance) => i64::from(st.group_count(group)),
            Strategy::Spread(SpreadField::Attribute(name)) => self
                .attrs
                .get(name)
                .and_then(|index| index.bucket(st.attributes.get(name).map(String::as_str)))
                .and_then(|b| b.groups.get(group))
                .map_or(0, |&n| i64::try_from(n).unwrap_or(i64::MAX)),
            Strategy::Random => 0,
        }
    }

    fn eligible(&self, slot: usize, ctx: &Ctx<'_>) -> bool {
        let st = &self.slot(slot).state;
        if let Some(n) = ctx.group_count {
            if st.group_count(&ctx.demand.group) != n {
                return false;
            }
        }
        check(st, ctx).is_ok()
    }

    /// One failure per ACTIVE instance, in ARN order, with the first check it fails.
    fn explain(&self, ctx: &Ctx<'_>) -> Vec<PlacementFailure> {
        let mut failures: Vec<PlacementFailure> = self
            .instances()
            .filter(|st| st.active)
            .filter_map(|st| check(st, ctx).err().map(|reason| PlacementFailure { arn: Some(st.arn.clone()), reason }))
            .collect();
        failures.sort_by(|a, b| a.arn.cmp(&b.arn));
        failures
    }
}

/// What a bucket should hold: its placeable members' keys, its group counts, its instance count.
#[cfg(test)]
type ExpectedBucket = (BTreeMap<usize, Keys>, HashMap<String, u64>, usize);

#[cfg(test)]
impl Placement {
    /// Panics unless every index agrees with the instances' states (for tests).
    pub(super) fn assert_consistent(&self) {
        fn expect_set(set: &Ordered, want: &BTreeMap<usize, Keys>, what: &str) {
            assert_eq!(set.members.len(), want.len(), "{what}: members");
            for (i, m) in set.members.iter().enumerate() {
                assert_eq!(set.at.get(m), Some(&i), "{what}: position of {m}");
            }
            let cpu: BTreeSet<Key> = want.iter().map(|(&s, &(c, _, salt))| (c, salt, s)).collect();
            let memory: BTreeSet<Key> = want.iter().map(|(&s, &(_, m, salt))| (m, salt, s)).collect();
            assert_eq!(set.by_cpu, cpu, "{what}: cpu order");
            assert_eq!(set.by_memory, memory, "{what}: memory order");
        }
        let live = |slot: &&Slot| slot.state.placeable();
        let want: BTreeMap<usize, Keys> =
            self.slots.iter().enumerate().filter_map(|(i, s)| s.as_ref().filter(live).map(|s| (i, s.keys()))).collect();
        expect_set(&self.all, &want, "all");
        for (name, index) in &self.attrs {
            let mut values: BTreeMap<Option<&str>, ExpectedBucket> = BTreeMap::new();
            for (i, s) in self.slots.iter().enumerate() {
                let Some(s) = s else { continue };
                let e = values.entry(s.state.attributes.get(name).map(String::as_str)).or_default();
                if s.state.placeable() {
                    e.0.insert(i, s.keys());
                }
                for (g, n) in &s.state.task_groups {
                    if *n > 0 {
                        *e.1.entry(g.clone()).or_default() += u64::from(*n);
                    }
                }
                e.2 += 1;
            }
            let present: BTreeSet<Option<&str>> =
                index.values.keys().map(|k| Some(k.as_str())).chain(std::iter::once(None)).collect();
            for v in values.keys() {
                assert!(present.contains(v), "{name}: no bucket for {v:?}");
            }
            for v in present {
                let bucket = index.bucket(v).expect("listed bucket");
                let (set, groups, instances) = values.remove(&v).unwrap_or_default();
                expect_set(&bucket.set, &set, &format!("{name}={v:?}"));
                assert_eq!(bucket.groups, groups, "{name}={v:?}: groups");
                assert_eq!(bucket.instances, instances, "{name}={v:?}: instances");
            }
        }
    }
}

fn link_attribute(index: &mut AttrIndex, name: &str, slot: usize, s: &Slot) {
    let bucket = match s.state.attributes.get(name) {
        Some(v) => index.values.entry(v.clone()).or_default(),
        None => &mut index.missing,
    };
    if s.state.placeable() {
        bucket.set.insert(slot, s.keys());
    }
    for (g, n) in &s.state.task_groups {
        if *n > 0 {
            bucket.add_group(g, u64::from(*n));
        }
    }
    bucket.instances += 1;
}

/// Whether `st` can take a copy of the demand, or the first reason it cannot, in the order ECS
/// checks: agent, attributes, resources, then constraints.
fn check(st: &InstanceState, ctx: &Ctx<'_>) -> Result<(), FailureReason> {
    let d = ctx.demand;
    if !st.agent_connected {
        return Err(FailureReason::Agent);
    }
    let has_attribute = |r: &super::RequiredAttribute| match (st.attributes.get(&r.name), &r.value) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(v), Some(want)) => v == want,
    };
    if !d.requires.iter().all(has_attribute) {
        return Err(FailureReason::Attribute);
    }
    if st.remaining.cpu < d.cpu {
        return Err(FailureReason::Resource(ResourceName::Cpu));
    }
    if st.remaining.memory < d.memory {
        return Err(FailureReason::Resource(ResourceName::Memory));
    }
    if d.ports_tcp.iter().any(|p| *p != 0 && st.remaining.ports_tcp.contains(p)) {
        return Err(FailureReason::Resource(ResourceName::Ports));
    }
    if d.ports_udp.iter().any(|p| *p != 0 && st.remaining.ports_udp.contains(p)) {
        return Err(FailureReason::Resource(ResourceName::PortsUdp));
    }
    for c in ctx.constraints {
        match c {
            Constraint::DistinctInstance if st.group_count(&d.group) > 0 => {
                return Err(FailureReason::DistinctInstance)
            }
            Constraint::MemberOf(expr) if !expr.matches(st) => return Err(FailureReason::MemberOf),
            _ => {}
        }
    }
    Ok(())
}
