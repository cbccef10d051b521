//! CI shards: `--shard K/N` runs the K-th of N disjoint parts of a suite (`helix-e2e run`) or of
//! the detection matrix (`helix-e2e matrix`), so N machines share one long run, and
//! `helix-e2e merge` joins their artifact directories again.
//!
//! The split is round-robin over the items in a canonical order: item `p` of the sorted list
//! goes to shard `p mod N + 1`. Sorted, so the split does not depend on the order the
//! arguments were given in (`run a b` and `run b a` split alike: every shard of a CI matrix
//! builds its command line itself, and one of them must not differ by an edit of argument
//! order). Round-robin rather than a hash of the name, because with few items (a suite of five
//! scenarios, one matrix row with ten runs) a hash leaves shards empty or doubled while
//! round-robin's differ by at most one item; and for the matrix, consecutive runs of one row go
//! to different shards, so one expensive row (the soak) is spread over all of them. What a
//! hash would give — an item keeping its shard when others are added — does not matter here:
//! a merge only joins shards of one specification.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The K-th (1-based, as the user writes it) of N shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Shard {
    /// 1..=count.
    pub index: usize,
    pub count: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    #[error("--shard {0:?} is not K/N (e.g. 1/4)")]
    Syntax(String),
    #[error("--shard {index}/{count}: K must be between 1 and N")]
    OutOfRange { index: usize, count: usize },
}

impl std::str::FromStr for Shard {
    type Err = ShardError;

    fn from_str(s: &str) -> Result<Self, ShardError> {
        let syntax = || ShardError::Syntax(s.to_string());
        let (k, n) = s.split_once('/').ok_or_else(syntax)?;
        let number = |t: &str| t.trim().parse::<usize>().map_err(|_| syntax());
        let (index, count) = (number(k)?, number(n)?);
        if index == 0 || count == 0 || index > count {
            return Err(ShardError::OutOfRange { index, count });
        }
        Ok(Shard { index, count })
    }
}

impl TryFrom<String> for Shard {
    type Error = ShardError;
    fn try_from(s: String) -> Result<Self, ShardError> {
        s.parse()
    }
}

impl From<Shard> for String {
    fn from(s: Shard) -> String {
        s.to_string()
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// The positions (into `keys`, ascending) of the items this shard runs: round-robin over
    /// the keys' sorted order. Equal keys are the same item given twice; they are told apart
    /// by their order among themselves, which is the only order they have.
    pub fn take<K: Ord>(&self, keys: &[K]) -> Vec<usize> {
        let mut order: Vec<usize> = (0..keys.len()).collect();
        order.sort_by(|&a, &b| keys[a].cmp(&keys[b]));
        let mut mine: Vec<usize> = order.into_iter().enumerate().filter(|(p, _)| p % self.count == self.index - 1).map(|(_, i)| i).collect();
        mine.sort_unstable();
        mine
    }
}

/// Why a set of shards is not one whole run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Incomplete {
    #[error("no shards")]
    Nothing,
    #[error("shards of different splits: {0} and {1}")]
    Counts(Shard, Shard),
    #[error("shard {0} is there twice")]
    Twice(Shard),
    #[error("shard{} {} of {count} missing", if missing.len() > 1 { "s" } else { "" }, missing.iter().map(|k| k.to_string()).collect::<Vec<_>>().join(", "))]
    Missing { missing: Vec<usize>, count: usize },
}

/// Whether `shards` are every shard of one split, each once.
pub fn complete(shards: &[Shard]) -> Result<(), Incomplete> {
    let Some(first) = shards.first() else {
        return Err(Incomplete::Nothing);
    };
    if let Some(other) = shards.iter().find(|s| s.count != first.count) {
        return Err(Incomplete::Counts(*first, *other));
    }
    let mut seen = vec![false; first.count];
    for s in shards {
        if std::mem::replace(&mut seen[s.index - 1], true) {
            return Err(Incomplete::Twice(*s));
        }
    }
    let missing: Vec<usize> = seen.iter().enumerate().filter(|(_, s)| !**s).map(|(i, _)| i + 1).collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Incomplete::Missing { missing, count: first.count })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(s: &str) -> Shard {
        s.parse().unwrap()
    }

    #[test]
    fn k_of_n_parses_and_nonsense_is_refused() {
        assert_eq!(shard("2/3"), Shard { index: 2, count: 3 });
        assert_eq!(shard("2/3").to_string(), "2/3");
        for bad in ["", "1", "a/2", "1/2/3", "-1/2", "1/"] {
            assert!(matches!(bad.parse::<Shard>(), Err(ShardError::Syntax(_))), "{bad}");
        }
        for bad in ["0/2", "3/2", "0/0", "1/0"] {
            assert!(matches!(bad.parse::<Shard>(), Err(ShardError::OutOfRange { .. })), "{bad}");
        }
        assert_eq!(serde_json::to_string(&shard("1/4")).unwrap(), "\"1/4\"");
        assert!(serde_json::from_str::<Shard>("\"5/4\"").is_err());
    }

    #[test]
    fn every_item_lands_in_exactly_one_shard_and_shards_differ_by_at_most_one() {
        let keys: Vec<String> = (0..23).map(|i| format!("item-{i:02}")).collect();
        for count in 1..=7 {
            let parts: Vec<Vec<usize>> = (1..=count).map(|index| Shard { index, count }.take(&keys)).collect();
            let mut all: Vec<usize> = parts.concat();
            all.sort_unstable();
            assert_eq!(all, (0..keys.len()).collect::<Vec<_>>(), "{count} shards");
            let sizes: Vec<usize> = parts.iter().map(Vec::len).collect();
            assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1, "{sizes:?}");
        }
    }

    #[test]
    fn the_split_is_the_same_in_any_argument_order_and_on_every_call() {
        let a = ["soak", "random-walk", "multi-tab-same-lobby", "rapid-cycles", "second-connection"];
        let mut b = a;
        b.reverse();
        for index in 1..=2 {
            let s = Shard { index, count: 2 };
            let names = |keys: &[&'static str]| {
                let mut n: Vec<&str> = s.take(keys).into_iter().map(|i| keys[i]).collect();
                n.sort_unstable();
                n
            };
            assert_eq!(names(&a), names(&b));
            assert_eq!(s.take(&a), s.take(&a));
        }
        // Sorted: multi-tab-same-lobby, random-walk, rapid-cycles, second-connection, soak;
        // shard 1 of 2 takes the 1st, 3rd and 5th: soak, multi-tab-same-lobby, rapid-cycles.
        assert_eq!(shard("1/2").take(&a), vec![0, 2, 3]);
        // A name given twice is two items.
        assert_eq!(shard("1/2").take(&["x", "x"]).len() + shard("2/2").take(&["x", "x"]).len(), 2);
    }

    #[test]
    fn a_merge_needs_every_shard_once() {
        assert_eq!(complete(&[shard("2/2"), shard("1/2")]), Ok(()));
        assert_eq!(complete(&[shard("1/3"), shard("3/3")]), Err(Incomplete::Missing { missing: vec![2], count: 3 }));
        assert_eq!(complete(&[shard("1/2"), shard("1/2"), shard("2/2")]), Err(Incomplete::Twice(shard("1/2"))));
        assert_eq!(complete(&[shard("1/2"), shard("2/3")]), Err(Incomplete::Counts(shard("1/2"), shard("2/3"))));
        assert_eq!(Incomplete::Missing { missing: vec![2, 3], count: 3 }.to_string(), "shards 2, 3 of 3 missing");
    }
}
