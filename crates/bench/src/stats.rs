//! Latency statistics: nearest-rank percentiles over recorded samples.

use std::time::Duration;

/// The `p`-th percentile (0 < p <= 100) of ascending `sorted` samples, by nearest rank:
/// the smallest sample that at least `p` percent of the samples are less than or equal to.
/// `None` when there are no samples.
pub fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let p = p.clamp(0.0, 100.0);
    // The rank is 1-based; the float product is rounded first so that 99% of 100 is 99, not 100.
    let exact = p / 100.0 * sorted.len() as f64;
    let rank = ((exact * 1e9).round() / 1e9).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// A latency distribution reduced to what the report prints.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Summary {
    /// Number of samples.
    pub count: usize,
    /// Median.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Largest sample.
    pub max: Duration,
}

impl Summary {
    /// Summarises `samples` (in any order).
    pub fn of(mut samples: Vec<Duration>) -> Self {
        samples.sort_unstable();
        Self {
            count: samples.len(),
            p50: percentile(&samples, 50.0).unwrap_or_default(),
            p99: percentile(&samples, 99.0).unwrap_or_default(),
            max: samples.last().copied().unwrap_or_default(),
        }
    }
}

/// A duration in milliseconds, as the report prints it.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    fn micros(v: impl IntoIterator<Item = u64>) -> Vec<Duration> {
        v.into_iter().map(Duration::from_micros).collect()
    }

    #[test]
    fn empty_has_no_percentile() {
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(Summary::of(Vec::new()), Summary::default());
    }

    #[test]
    fn single_sample_is_every_percentile() {
        let s = micros([7]);
        for p in [0.0, 1.0, 50.0, 99.0, 100.0] {
            assert_eq!(percentile(&s, p), Some(Duration::from_micros(7)));
        }
    }

    #[test]
    fn one_to_hundred() {
        let s = micros(1..=100);
        assert_eq!(percentile(&s, 50.0), Some(Duration::from_micros(50)));
        assert_eq!(percentile(&s, 99.0), Some(Duration::from_micros(99)));
        assert_eq!(percentile(&s, 99.5), Some(Duration::from_micros(100)));
        assert_eq!(percentile(&s, 100.0), Some(Duration::from_micros(100)));
        assert_eq!(percentile(&s, 1.0), Some(Duration::from_micros(1)));
        assert_eq!(percentile(&s, 0.0), Some(Duration::from_micros(1)));
    }

    #[test]
    fn nearest_rank_rounds_up() {
        // 10 samples: p50 is rank 5, p99 is rank ceil(9.9) = 10, p91 is rank ceil(9.1) = 10.
        let s = micros((1..=10).map(|i| i * 10));
        assert_eq!(percentile(&s, 50.0), Some(Duration::from_micros(50)));
        assert_eq!(percentile(&s, 51.0), Some(Duration::from_micros(60)));
        assert_eq!(percentile(&s, 90.0), Some(Duration::from_micros(90)));
        assert_eq!(percentile(&s, 91.0), Some(Duration::from_micros(100)));
        assert_eq!(percentile(&s, 99.0), Some(Duration::from_micros(100)));
    }

    #[test]
    fn p99_of_many_ignores_the_top_percent() {
        // 10,000 samples: 9,900 fast and 100 slow; p99 is the last fast one.
        let mut s = micros(std::iter::repeat_n(100, 9_900));
        s.extend(micros(std::iter::repeat_n(50_000, 100)));
        let sum = Summary::of(s);
        assert_eq!(sum.count, 10_000);
        assert_eq!(sum.p50, Duration::from_micros(100));
        assert_eq!(sum.p99, Duration::from_micros(100));
        assert_eq!(sum.max, Duration::from_micros(50_000));
    }

    #[test]
    fn summary_sorts_its_input() {
        let sum = Summary::of(micros([5, 1, 4, 2, 3]));
        assert_eq!(sum.p50, Duration::from_micros(3));
        assert_eq!(sum.max, Duration::from_micros(5));
    }

    #[test]
    fn ms_converts() {
        assert_eq!(ms(Duration::from_micros(1_500)), 1.5);
    }
}
