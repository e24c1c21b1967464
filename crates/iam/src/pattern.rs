//! IAM's wildcard match: `*` is any run of characters (also none), `?` exactly one.

/// Whether `value` matches `pattern`; `ignore_case` for actions, which IAM compares
/// case-insensitively.
///
/// Greedy with one backtrack point per `*`, so the cost is O(pattern x value) at worst
/// and no input can make it exponential. ARNs and actions are ASCII, and are matched as
/// bytes without allocating; anything else is matched by characters.
pub fn matches(pattern: &str, value: &str, ignore_case: bool) -> bool {
    if pattern.is_ascii() && value.is_ascii() {
        let eq = |a: &u8, b: &u8| if ignore_case { a.eq_ignore_ascii_case(b) } else { a == b };
        return glob(pattern.as_bytes(), value.as_bytes(), b'*', b'?', eq);
    }
    let p: Vec<char> = pattern.chars().collect();
    let v: Vec<char> = value.chars().collect();
    let eq = |a: &char, b: &char| if ignore_case { a.to_lowercase().eq(b.to_lowercase()) } else { a == b };
    glob(&p, &v, '*', '?', eq)
}

fn glob<T: PartialEq>(p: &[T], v: &[T], star_sym: T, one: T, eq: impl Fn(&T, &T) -> bool) -> bool {
    let (mut pi, mut vi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while vi < v.len() {
        if pi < p.len() && p[pi] == star_sym {
            star = Some((pi, vi));
            pi += 1;
        } else if pi < p.len() && (p[pi] == one || eq(&p[pi], &v[vi])) {
            pi += 1;
            vi += 1;
        } else if let Some((sp, sv)) = star {
            pi = sp + 1;
            vi = sv + 1;
            star = Some((sp, sv + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == star_sym)
}
