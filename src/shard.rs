//! [`Shard`]: one collector's share of the configured sensors (`run --shard I/N`), so that N
//! collectors started with the same configuration read every sensor exactly once.
//!
//! A sensor belongs to shard `I` of `N` when `fnv1a64(id) mod N = I - 1`, as Prometheus'
//! `hashmod` relabelling spreads targets: the hash is FNV-1a over the id's UTF-8 bytes, 64 bits
//! (offset basis 0xcbf29ce484222325, prime 0x100000001b3), fixed by this crate and the same on
//! every machine and version (never std's randomly seeded hasher). A sensor's shard depends on
//! its id and N only: adding or removing other sensors never moves it.

use crate::config::Config;

/// One collector's share: shard `index` (1-based) of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    index: u32,
    count: u32,
}

/// FNV-1a, 64 bits, of `bytes`.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

impl Shard {
    /// Shard `index` of `count`: `None` unless `1 <= index <= count`.
    pub fn new(index: u32, count: u32) -> Option<Shard> {
        (index >= 1 && index <= count).then_some(Shard { index, count })
    }

    /// `I/N` (`2/4`), with `1 <= I <= N`; the error is the expectation, for `--shard: ...`.
    pub fn parse(text: &str) -> Result<Shard, String> {
        let expected = || format!("expected I/N with 1 <= I <= N, got \"{text}\"");
        let (i, n) = text.trim().split_once('/').ok_or_else(expected)?;
        let parse = |t: &str| {
            let t = t.trim();
            (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
                .then(|| t.parse::<u32>().ok())
                .flatten()
        };
        match (parse(i), parse(n)) {
            (Some(i), Some(n)) => Shard::new(i, n).ok_or_else(expected),
            _ => Err(expected()),
        }
    }

    /// The 1-based index.
    pub fn index(self) -> u32 {
        self.index
    }

    /// How many shards there are.
    pub fn count(self) -> u32 {
        self.count
    }

    /// Whether sensor `id` is in this shard.
    pub fn contains(self, id: &str) -> bool {
        fnv1a64(id.as_bytes()) % u64::from(self.count) == u64::from(self.index - 1)
    }

    /// Keeps only this shard's sensors of `config` (in their order); returns how many it had.
    pub fn apply(self, config: &mut Config) -> usize {
        let before = config.sensors.len();
        config.sensors.retain(|s| self.contains(&s.id));
        before
    }

    /// `-I-of-N`: what makes a client id of this shard differ from the other shards' (the
    /// MQTT output and driver append it to their client ids).
    pub fn suffix(self) -> String {
        format!("-{}-of-{}", self.index, self.count)
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// FNV-1a's published test vectors: the hash is the documented one.
    #[test]
    fn fnv1a_matches_the_reference_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn parsing_takes_only_i_of_n() {
        assert_eq!(Shard::parse("2/4"), Ok(Shard { index: 2, count: 4 }));
        assert_eq!(Shard::parse("1/1").unwrap().to_string(), "1/1");
        for bad in [
            "0/4",
            "5/4",
            "2",
            "a/b",
            "-1/4",
            "1/0",
            "",
            "1/4/2",
            "+1/4",
            "1/99999999999",
        ] {
            assert_eq!(
                Shard::parse(bad),
                Err(format!("expected I/N with 1 <= I <= N, got \"{bad}\"")),
                "{bad}"
            );
        }
    }

    /// Every id is in exactly one of the N shards, for several N.
    #[test]
    fn shares_are_disjoint_and_cover_everything() {
        for n in 1..=7u32 {
            let shards: Vec<Shard> = (1..=n).map(|i| Shard::new(i, n).unwrap()).collect();
            let mut sizes = vec![0usize; n as usize];
            for k in 0..10_000 {
                let id = format!("temperature-{k:05}");
                let owners: Vec<usize> = (0..n as usize).filter(|&i| shards[i].contains(&id)).collect();
                assert_eq!(owners.len(), 1, "{id} in shards {owners:?} of {n}");
                sizes[owners[0]] += 1;
            }
            // And the hash spreads them: no shard is off by more than 10% of a fair share.
            let fair = 10_000 / n as usize;
            assert!(sizes.iter().all(|&s| s.abs_diff(fair) <= fair / 10 + 10), "{sizes:?}");
        }
    }
}
