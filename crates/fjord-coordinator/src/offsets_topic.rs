//! `__consumer_offsets`: its name and which partition holds a group.

/// Kafka's internal topic of group metadata and committed offsets.
pub const CONSUMER_OFFSETS: &str = "__consumer_offsets";

/// Java's `String.hashCode` over UTF-16 code units.
fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    })
}

/// The `__consumer_offsets` partition holding `group_id` (Kafka's
/// `partitionFor`, so Kafka tooling agrees on the coordinator).
pub fn partition_for(group_id: &str, partitions: i32) -> i32 {
    // Kafka's Utils.abs: i32::MIN maps to 0 rather than overflowing.
    let hash = java_string_hash(group_id);
    let positive = if hash == i32::MIN { 0 } else { hash.abs() };
    positive % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_for_matches_kafka() {
        // Java's String.hashCode by definition, and values computed with an
        // independent implementation (UTF-16 code units, 32-bit wrap).
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("ab"), 97 * 31 + 98);
        assert_eq!(java_string_hash("my-group"), -1_906_497_762);
        assert_eq!(partition_for("my-group", 50), 12);
        assert_eq!(java_string_hash("ünïcode"), -609_351_766);
        assert_eq!(partition_for("ünïcode", 50), 16);
        assert_eq!(partition_for("x", 1), 0);
    }
}
