//! A small mutation fuzzer that the test command runs for a bounded time
//! (issue 17, item 7: hostile input).
//!
//! Why not cargo-fuzz: it needs a nightly compiler and runs outside the
//! test command; proptest runs a fixed number of cases, not a time budget,
//! and generates from strategies rather than mutating real messages. What
//! finds bugs in decoders is valid input slightly broken — a length that
//! lies, a count of 2^31, a truncated tail — so this fuzzer starts from
//! valid seeds (encoded requests, record batches, SASL messages) that each
//! target supplies and mutates them with Kafka-shaped damage.
//!
//! Every case runs under a panic hook and an allocation limit: a panic
//! fails the test with the input (hex) and the seed that reproduces the run;
//! an allocation past the limit aborts the process with "memory allocation
//! of N bytes failed", and the seed printed at the start reproduces it.
//! Linking this crate installs its allocator (a counting wrapper around the
//! system's, `cap`): only test binaries of the crates that use it do.
//!
//! Environment: `FJORD_FUZZ_SECS` (time per target, default 5),
//! `FJORD_FUZZ_SEED` (default: from the clock; printed), `FJORD_FUZZ_TRACE`
//! (print each input first, to find the one an abort happened in).

pub mod kafka;

use std::alloc::System;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use cap::Cap;

#[global_allocator]
static ALLOCATOR: Cap<System> = Cap::new(System, usize::MAX);

/// Where the last panic in a case happened (the silent hook's one record).
static PANIC_LOCATION: std::sync::Mutex<String> = std::sync::Mutex::new(String::new());

/// splitmix64: small, fast, and the same sequence for the same seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }
}

/// Big-endian integers that break length and count fields.
const INTERESTING_I32: [i32; 10] = [0, 1, -1, -2, 127, 128, 0x7fff, 0xffff, i32::MAX, i32::MIN];
const INTERESTING_I16: [i16; 7] = [0, 1, -1, -2, 0x7f, 0x7fff, i16::MIN];
/// Zigzag varints (record lengths, key lengths, header counts): huge,
/// negative, and just past a boundary.
const INTERESTING_VARINT: [i64; 7] = [-1, -2, 0, 1, i32::MAX as i64, i64::MAX, 1 << 40];

fn zigzag_varint(value: i64) -> Vec<u8> {
    let mut raw = ((value << 1) ^ (value >> 63)) as u64;
    let mut out = Vec::new();
    loop {
        let byte = (raw & 0x7f) as u8;
        raw >>= 7;
        if raw == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// One random damage to `input` (`others`: other seeds, for splicing).
pub fn mutate(rng: &mut Rng, input: &mut Vec<u8>, others: &[Vec<u8>]) {
    let len = input.len();
    let at = |rng: &mut Rng| if len == 0 { 0 } else { rng.below(len) };
    match rng.below(10) {
        0 if len > 0 => {
            let i = at(rng);
            input[i] ^= 1 << rng.below(8);
        }
        1 if len > 0 => {
            let i = at(rng);
            input[i] = [0x00, 0xff, 0x7f, 0x80, 0x01][rng.below(5)];
        }
        2 if len >= 4 => {
            let i = rng.below(len - 3);
            let v = INTERESTING_I32[rng.below(INTERESTING_I32.len())];
            input[i..i + 4].copy_from_slice(&v.to_be_bytes());
        }
        3 if len >= 2 => {
            let i = rng.below(len - 1);
            let v = INTERESTING_I16[rng.below(INTERESTING_I16.len())];
            input[i..i + 2].copy_from_slice(&v.to_be_bytes());
        }
        4 => {
            let i = at(rng);
            let v = zigzag_varint(INTERESTING_VARINT[rng.below(INTERESTING_VARINT.len())]);
            let end = (i + 1).min(len);
            input.splice(i..end, v);
        }
        5 if len > 0 => input.truncate(at(rng)),
        6 if len > 0 => {
            let (a, b) = (at(rng), at(rng));
            let start = a.min(b);
            let end = a.max(b).min(start.saturating_add(256));
            let chunk = input[start..end].to_vec();
            let i = at(rng);
            input.splice(i..i, chunk);
        }
        7 => {
            let i = at(rng);
            let n = 1 + rng.below(16);
            let noise = rng.bytes(n);
            input.splice(i..i, noise);
        }
        8 if !others.is_empty() => {
            let other = &others[rng.below(others.len())];
            let cut = at(rng);
            let from = if other.is_empty() {
                0
            } else {
                rng.below(other.len())
            };
            input.truncate(cut);
            input.extend_from_slice(&other[from..]);
        }
        _ => {
            let n = rng.below(64);
            *input = rng.bytes(n);
        }
    }
}

/// What a run did, for the test's output.
#[derive(Debug)]
pub struct Report {
    pub cases: u64,
    pub seed: u64,
}

/// A fuzz run: `budget` of wall time from `seed`, each case allowed
/// `max_alloc_bytes` of heap above what was allocated before it.
pub struct Fuzz {
    name: &'static str,
    seed: u64,
    budget: Duration,
    max_alloc_bytes: usize,
    /// Print every input before running it (`FJORD_FUZZ_TRACE=1`): the
    /// last one printed is the one an abort happened in.
    trace: bool,
}

impl Fuzz {
    /// Settings from the environment (see the crate docs).
    pub fn from_env(name: &'static str) -> Fuzz {
        let secs = std::env::var("FJORD_FUZZ_SECS")
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(5.0);
        let seed = std::env::var("FJORD_FUZZ_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64)
            });
        Fuzz {
            name,
            seed,
            budget: Duration::from_secs_f64(secs),
            max_alloc_bytes: 256 << 20,
            trace: std::env::var_os("FJORD_FUZZ_TRACE").is_some(),
        }
    }

    /// Heap one case may hold at once (default 256 MiB).
    pub fn max_alloc_bytes(mut self, bytes: usize) -> Fuzz {
        self.max_alloc_bytes = bytes;
        self
    }

    /// Feed the seeds, then mutations of them, to `target` until the budget
    /// is spent. Panics (failing the test) with the input that made
    /// `target` panic.
    pub fn run(self, seeds: &[Vec<u8>], mut target: impl FnMut(&[u8])) -> Report {
        assert!(!seeds.is_empty(), "{}: no seeds", self.name);
        eprintln!(
            "fuzz {}: seed {} (FJORD_FUZZ_SEED to repeat), {:?}, {} seeds",
            self.name,
            self.seed,
            self.budget,
            seeds.len()
        );
        let mut rng = Rng::new(self.seed);
        // The default hook prints (and with RUST_BACKTRACE symbolises a
        // backtrace, megabytes of allocation) inside the case's limit; the
        // run reports a panic itself, with its input.
        let default_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|info| {
            if let Some(at) = info.location() {
                *PANIC_LOCATION.lock().unwrap_or_else(|e| e.into_inner()) = at.to_string();
            }
        }));
        let start = Instant::now();
        let mut cases = 0u64;
        let mut input = Vec::new();
        while cases < seeds.len() as u64 || start.elapsed() < self.budget {
            input.clear();
            match seeds.get(cases as usize) {
                Some(seed) => input.extend_from_slice(seed),
                None => {
                    input.extend_from_slice(&seeds[rng.below(seeds.len())]);
                    for _ in 0..1 + rng.below(4) {
                        mutate(&mut rng, &mut input, seeds);
                    }
                }
            }
            if self.trace {
                eprintln!("fuzz {} case {cases}: {}", self.name, hex(&input));
            }
            let limit = ALLOCATOR.allocated().saturating_add(self.max_alloc_bytes);
            let _ = ALLOCATOR.set_limit(limit);
            let outcome = catch_unwind(AssertUnwindSafe(|| target(&input)));
            let _ = ALLOCATOR.set_limit(usize::MAX);
            if let Err(panic) = outcome {
                std::panic::set_hook(default_hook);
                let message = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("?");
                let at = PANIC_LOCATION
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone();
                panic!(
                    "fuzz {}: case {cases} (seed {}) panicked at {at}: {message}\ninput ({} bytes): {}",
                    self.name,
                    self.seed,
                    input.len(),
                    hex(&input)
                );
            }
            cases += 1;
        }
        std::panic::set_hook(default_hook);
        eprintln!(
            "fuzz {}: {cases} cases in {:.1} s, no panic, no allocation past {} MiB",
            self.name,
            start.elapsed().as_secs_f64(),
            self.max_alloc_bytes >> 20
        );
        Report {
            cases,
            seed: self.seed,
        }
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_mutates_the_same_way() {
        let seeds = vec![b"hello, kafka".to_vec(), vec![0; 32]];
        let run = |seed| {
            let mut rng = Rng::new(seed);
            let mut input = seeds[0].clone();
            for _ in 0..50 {
                mutate(&mut rng, &mut input, &seeds);
            }
            input
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn a_panicking_target_fails_the_run_with_its_input() {
        let result = std::panic::catch_unwind(|| {
            Fuzz {
                name: "t",
                seed: 1,
                budget: Duration::from_millis(50),
                max_alloc_bytes: 1 << 20,
                trace: false,
            }
            .run(&[vec![1, 2, 3]], |input| assert_ne!(input, [1, 2, 3]))
        });
        let message = *result.unwrap_err().downcast::<String>().unwrap();
        assert!(message.contains("input (3 bytes): 010203"), "{message}");
    }

    #[test]
    fn varints_are_kafka_zigzag() {
        assert_eq!(zigzag_varint(-1), [0x01]);
        assert_eq!(zigzag_varint(1), [0x02]);
        assert_eq!(zigzag_varint(64), [0x80, 0x01]);
    }
}
