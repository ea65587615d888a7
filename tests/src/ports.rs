//! Loopback ports for test nodes that no other process can take first.
//!
//! A port from `bind(127.0.0.1:0)` that is released and handed to a child process can be taken
//! by anyone else's `bind(0)` in between (it happened in CI: a Raft vote went to another test
//! node's HTTP server). So ports that must be known before a node starts (controller voters,
//! a port kept across restarts) come from [`RUST_RANGE`], below Linux's ephemeral range
//! (32768-60999), which `bind(0)` never hands out. Concurrent harnesses agree through a lock
//! file per port (`flock`, held as long as the [`PortLease`] lives); each language's harness
//! has its own sub-range (Python 25000-25999, Java 26000-26999, Go 27000-27499, Node
//! 27500-27999, the Apache Kafka reference 28000-28999), so they never compete.

use std::fs::{File, OpenOptions};
use std::net::TcpListener;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

/// The Rust e2e harness's ports.
pub const RUST_RANGE: Range<u16> = 21_000..25_000;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A port (or a run of consecutive ports) reserved for this process until dropped.
#[derive(Debug)]
pub struct PortLease {
    first: u16,
    len: u16,
    /// The `flock`ed lock files; closing them releases the ports.
    _locks: Vec<File>,
}

impl PortLease {
    /// The first port of the run.
    pub fn port(&self) -> u16 {
        self.first
    }

    /// The `i`-th port of the run.
    pub fn nth(&self, i: u16) -> u16 {
        assert!(i < self.len, "port {i} of a run of {}", self.len);
        self.first + i
    }
}

fn lock_dir() -> PathBuf {
    let dir = std::env::temp_dir().join("fjord-test-ports");
    std::fs::create_dir_all(&dir).expect("create the port lock dir");
    dir
}

/// Takes the lock of `port`, if no other harness holds it and nothing listens there now.
fn try_take(port: u16) -> Option<File> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(lock_dir().join(format!("{port}.lock")))
        .ok()?;
    file.try_lock().ok()?;
    // A process outside the lease protocol (or a node left over from a killed run) may hold it.
    TcpListener::bind(("127.0.0.1", port)).ok()?;
    Some(file)
}

/// Reserves `len` consecutive free ports of [`RUST_RANGE`].
pub fn reserve_ports(len: u16) -> PortLease {
    let span = u32::from(RUST_RANGE.end - RUST_RANGE.start - len);
    // Spread concurrent test processes over the range so they rarely probe the same ports.
    let seed =
        std::process::id().wrapping_mul(7919) + NEXT.fetch_add(len.into(), Ordering::Relaxed);
    for attempt in 0..span {
        let offset = (seed + attempt * 31) % span;
        let first = RUST_RANGE.start + u16::try_from(offset).unwrap_or(0);
        let locks: Vec<File> = (0..len).map_while(|i| try_take(first + i)).collect();
        if locks.len() == usize::from(len) {
            return PortLease {
                first,
                len,
                _locks: locks,
            };
        }
    }
    panic!("no run of {len} free ports in {RUST_RANGE:?}");
}

/// Reserves one free port of [`RUST_RANGE`].
pub fn reserve_port() -> PortLease {
    reserve_ports(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_are_exclusive_until_dropped() {
        let a = reserve_ports(3);
        assert!(RUST_RANGE.contains(&a.port()) && RUST_RANGE.contains(&a.nth(2)));
        // While held, nobody else gets them: not through the lock, whatever the probe order.
        for i in 0..3 {
            assert!(
                try_take(a.nth(i)).is_none(),
                "port {} taken twice",
                a.nth(i)
            );
        }
        let port = a.port();
        drop(a);
        assert!(try_take(port).is_some(), "port {port} not released");
    }
}
