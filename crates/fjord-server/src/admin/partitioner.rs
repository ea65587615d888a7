//! Partition choice for produced records, matching the Java client's
//! default partitioner (and librdkafka's `murmur2_random`) for keyed
//! records so that keys land where other Kafka clients would put them.

/// Chooses a partition per record.
///
/// - explicit partition: always that one;
/// - keyed record: `toPositive(murmur2(key)) % partitions`, as in Java's
///   `BuiltInPartitioner.partitionForKey`;
/// - no key: one partition per batch, advancing round-robin between
///   batches (the spirit of the Java client's sticky partitioner, without
///   its load-based weighting).
#[derive(Debug, Clone)]
pub(crate) struct Partitioner {
    explicit: Option<i32>,
    next_sticky: i32,
}

impl Partitioner {
    pub(crate) fn new(explicit: Option<i32>) -> Self {
        Partitioner {
            explicit,
            next_sticky: 0,
        }
    }

    /// Partition for keyless records of the next batch; advances the
    /// round robin. `partitions` must be positive.
    pub(crate) fn next_batch_partition(&mut self, partitions: i32) -> i32 {
        if let Some(p) = self.explicit {
            return p;
        }
        let p = self.next_sticky.rem_euclid(partitions.max(1));
        self.next_sticky = p.wrapping_add(1);
        p
    }

    /// Partition for one record: the explicit partition, the key's hash, or
    /// `sticky` (from [`Partitioner::next_batch_partition`]).
    pub(crate) fn partition(&self, key: Option<&[u8]>, partitions: i32, sticky: i32) -> i32 {
        match (self.explicit, key) {
            (Some(p), _) => p,
            (None, Some(key)) => partition_for_key(key, partitions),
            (None, None) => sticky,
        }
    }
}

/// Java's `Utils.toPositive(Utils.murmur2(key)) % numPartitions`.
pub(crate) fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    (murmur2(key) & 0x7fff_ffff) % partitions.max(1)
}

/// Kafka's murmur2 (`org.apache.kafka.common.utils.Utils.murmur2`): 32-bit
/// MurmurHash2 with seed `0x9747b28c`, little-endian words, Java `int`
/// wrapping arithmetic and logical shifts.
pub(crate) fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;

    // Java hashes the length as an int; keys beyond 2 GiB cannot occur.
    let mut h: u32 = SEED ^ (data.len() as u32);
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        // Java's fall-through switch on `length % 4`.
        if tail.len() >= 3 {
            h ^= u32::from(tail[2]) << 16;
        }
        if tail.len() >= 2 {
            h ^= u32::from(tail[1]) << 8;
        }
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Apache Kafka's `UtilsTest.testMurmur2` vectors.
    #[test]
    fn murmur2_matches_the_java_client() {
        let cases: [(&[u8], i32); 6] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (key, expected) in cases {
            assert_eq!(murmur2(key), expected, "{}", String::from_utf8_lossy(key));
        }
    }

    #[test]
    fn key_partition_is_positive_modulo() {
        // toPositive(-790332482) = 1357151166; 1357151166 % 50 = 16.
        assert_eq!(partition_for_key(b"foobar", 50), 16);
        for key in [&b""[..], b"a", b"ab", b"abc", b"abcd", b"abcde"] {
            for partitions in 1..8 {
                let p = partition_for_key(key, partitions);
                assert!((0..partitions).contains(&p));
            }
        }
    }

    #[test]
    fn keyless_batches_round_robin_and_explicit_wins() {
        let mut partitioner = Partitioner::new(None);
        let picks: Vec<i32> = (0..5)
            .map(|_| partitioner.next_batch_partition(3))
            .collect();
        assert_eq!(picks, vec![0, 1, 2, 0, 1]);
        assert_eq!(partitioner.partition(None, 3, 2), 2);
        assert_eq!(
            partitioner.partition(Some(b"foobar"), 50, 2),
            partition_for_key(b"foobar", 50)
        );
        // A partition count that shrank under us still yields a valid pick.
        assert_eq!(partitioner.next_batch_partition(1), 0);

        let mut pinned = Partitioner::new(Some(4));
        assert_eq!(pinned.next_batch_partition(8), 4);
        assert_eq!(pinned.partition(Some(b"foobar"), 8, 0), 4);
    }
}
