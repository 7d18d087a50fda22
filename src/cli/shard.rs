//! Seed shards: `sweep --seeds A..B --shard I/N` runs shard I of N, so N machines (the pods
//! of a Kubernetes Indexed Job, the jobs of a CI matrix) share one sweep.
//!
//! The split is round-robin: seed `s` belongs to shard `(s - A) mod N`. Every seed is in
//! exactly one shard whatever N, shard sizes differ by at most one, and each shard draws an
//! even sample of the whole range: if the cost of a seed drifts along the range, every shard
//! sees the same drift (contiguous blocks would give one shard all the slow seeds), and a
//! shard stopped early (`--until-fail`, a deadline) has still covered the range end to end.
//!
//! Without `--shard`, the shard comes from the environment when it is set: the index from
//! `JOB_COMPLETION_INDEX` (which Kubernetes sets in every pod of an Indexed Job) and the
//! count from `WEKASIM_SHARD_COUNT` (set it to the Job's `completions`), so the same
//! container command serves every pod. `--shard` wins over the environment.

use std::fmt;
use std::ops::Range;

/// The variable Kubernetes sets to a pod's completion index in an Indexed Job.
pub const INDEX_VAR: &str = "JOB_COMPLETION_INDEX";
/// The number of shards, beside `JOB_COMPLETION_INDEX` (Kubernetes sets no such variable).
pub const COUNT_VAR: &str = "WEKASIM_SHARD_COUNT";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// 0-based, below `count`.
    pub index: u64,
    /// At least 1.
    pub count: u64,
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// The whole range: one shard of one.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// Checks an index and a count, naming where they came from in the error.
    pub fn new(index: u64, count: u64, what: &str) -> Result<Shard, String> {
        if count == 0 {
            return Err(format!("{what}: the shard count must be at least 1"));
        }
        if index >= count {
            return Err(format!(
                "{what}: shard index {index} is out of range for {count} shard{} (0 to {})",
                if count == 1 { "" } else { "s" },
                count - 1
            ));
        }
        Ok(Shard { index, count })
    }

    /// `I/N`: shard I (from 0) of N.
    pub fn parse(text: &str) -> Result<Shard, String> {
        let Some((i, n)) = text.split_once('/') else {
            return Err(format!(
                "{text:?} is not a shard: write I/N, shard I (from 0) of N, e.g. 0/8"
            ));
        };
        let index = number(i, "shard index")?;
        let count = number(n, "shard count")?;
        Shard::new(index, count, &format!("shard {text}"))
    }

    /// The shard the environment names (`JOB_COMPLETION_INDEX`, `WEKASIM_SHARD_COUNT`), if
    /// any, from a lookup of a variable (`std::env::var` but testable).
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Option<Shard>, String> {
        match (var(INDEX_VAR), var(COUNT_VAR)) {
            (None, None) => Ok(None),
            (Some(i), None) => Err(format!(
                "{INDEX_VAR}={i:?} is set but {COUNT_VAR} is not: set {COUNT_VAR} to the number \
                 of shards (the Job's completions), or give --shard I/N"
            )),
            (None, Some(n)) => Err(format!(
                "{COUNT_VAR}={n:?} is set but {INDEX_VAR} is not: set {INDEX_VAR} to this \
                 shard's index, or give --shard I/N"
            )),
            (Some(i), Some(n)) => {
                let index = number(&i, INDEX_VAR)?;
                let count = number(&n, COUNT_VAR)?;
                Shard::new(index, count, &format!("{INDEX_VAR}={i}, {COUNT_VAR}={n}")).map(Some)
            }
        }
    }

    /// Whether `seed` of `range` is in this shard.
    pub fn owns(&self, range: &Range<u64>, seed: u64) -> bool {
        range.contains(&seed) && (seed - range.start) % self.count == self.index
    }

    /// The seeds of `range` in this shard, in order.
    pub fn seeds(&self, range: &Range<u64>) -> impl Iterator<Item = u64> {
        let first = range.start.checked_add(self.index);
        let (start, end, step) = (first.unwrap_or(range.end), range.end, self.count);
        std::iter::successors(Some(start), move |s| s.checked_add(step))
            .take_while(move |s| *s < end)
    }

    /// How many seeds of `range` are in this shard.
    pub fn len(&self, range: &Range<u64>) -> u64 {
        let total = range.end - range.start;
        total / self.count + u64::from(total % self.count > self.index)
    }
}

fn number(text: &str, what: &str) -> Result<u64, String> {
    text.trim()
        .parse::<u64>()
        .map_err(|_| format!("{text:?} is not a {what} (a whole number from 0)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn every_seed_is_in_exactly_one_shard_whatever_n() {
        for range in [0..1, 0..10, 7..100, 1000..1037, u64::MAX - 5..u64::MAX] {
            let total = range.end - range.start;
            for count in 1..=40 {
                let mut owner: BTreeMap<u64, u64> = BTreeMap::new();
                for index in 0..count {
                    let shard = Shard { index, count };
                    let seeds: Vec<u64> = shard.seeds(&range).collect();
                    assert_eq!(
                        seeds.len() as u64,
                        shard.len(&range),
                        "{shard} of {range:?}"
                    );
                    assert!(seeds.windows(2).all(|w| w[0] < w[1]), "in order");
                    for s in seeds {
                        assert!(shard.owns(&range, s), "{shard} owns {s}");
                        assert_eq!(owner.insert(s, index), None, "seed {s} in two shards");
                    }
                }
                let all: Vec<u64> = owner.keys().copied().collect();
                assert_eq!(all, range.clone().collect::<Vec<_>>(), "N={count}");
                // Sizes differ by at most one.
                let sizes: Vec<u64> = (0..count)
                    .map(|i| Shard { index: i, count }.len(&range))
                    .collect();
                let (lo, hi) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
                assert!(hi - lo <= 1, "N={count}, {total} seeds: {sizes:?}");
            }
        }
    }

    #[test]
    fn the_split_is_round_robin_from_the_range_start() {
        let shard = Shard::parse("1/3").unwrap();
        assert_eq!(shard.seeds(&(10..20)).collect::<Vec<_>>(), vec![11, 14, 17]);
        assert!(!shard.owns(&(10..20), 20));
    }

    #[test]
    fn bad_shards_are_refused_with_what_is_wrong() {
        assert_eq!(Shard::parse("2/8"), Ok(Shard { index: 2, count: 8 }));
        assert_eq!(Shard::parse("0/1"), Ok(Shard::WHOLE));
        let err = |t: &str| Shard::parse(t).unwrap_err();
        assert!(
            err("3/2").contains("out of range for 2 shards"),
            "{}",
            err("3/2")
        );
        assert!(err("2/2").contains("0 to 1"), "{}", err("2/2"));
        assert!(err("0/0").contains("at least 1"), "{}", err("0/0"));
        assert!(
            err("x/4").contains("\"x\" is not a shard index"),
            "{}",
            err("x/4")
        );
        assert!(
            err("1/y").contains("\"y\" is not a shard count"),
            "{}",
            err("1/y")
        );
        assert!(err("3").contains("I/N"), "{}", err("3"));
        assert!(
            err("-1/4").contains("is not a shard index"),
            "{}",
            err("-1/4")
        );
    }

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn the_environment_names_a_shard_as_kubernetes_sets_it() {
        assert_eq!(Shard::from_env(env(&[])), Ok(None));
        assert_eq!(
            Shard::from_env(env(&[(INDEX_VAR, "3"), (COUNT_VAR, "8")])),
            Ok(Some(Shard { index: 3, count: 8 }))
        );
        let index_only = Shard::from_env(env(&[(INDEX_VAR, "3")])).unwrap_err();
        assert!(index_only.contains(COUNT_VAR), "{index_only}");
        let count_only = Shard::from_env(env(&[(COUNT_VAR, "3")])).unwrap_err();
        assert!(count_only.contains(INDEX_VAR), "{count_only}");
        let past = Shard::from_env(env(&[(INDEX_VAR, "8"), (COUNT_VAR, "8")])).unwrap_err();
        assert!(past.contains("out of range"), "{past}");
        let junk = Shard::from_env(env(&[(INDEX_VAR, "x"), (COUNT_VAR, "8")])).unwrap_err();
        assert!(junk.contains(INDEX_VAR), "{junk}");
    }
}
