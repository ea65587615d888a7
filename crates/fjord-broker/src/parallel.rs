//! `map_parallel`: a few scoped threads over a slice, for the broker's
//! blocking passes over every log (opening, closing). Those are mostly
//! waiting for fsyncs, which the filesystem's journal commits together when
//! they come concurrently: on tens of thousands of partitions a few threads
//! finish several times sooner than one, even on one core.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Threads for a pass over many logs.
pub(crate) const LOG_PASS_THREADS: usize = 8;

/// `items.iter().map(f).collect()`, on up to `threads` threads; results in
/// the order of `items`. A panic in `f` is propagated.
pub(crate) fn map_parallel<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let threads = threads.min(items.len());
    if threads < 2 {
        return items.iter().map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let done: Vec<Vec<(usize, R)>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else {
                            return mine;
                        };
                        mine.push((i, f(item)));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    // Each index was taken by exactly one worker: sorted, they line up.
    let mut done: Vec<(usize, R)> = done.into_iter().flatten().collect();
    done.sort_unstable_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_keep_the_order_of_the_items() {
        let items: Vec<u64> = (0..1000).collect();
        let squares = map_parallel(&items, 8, |i| i * i);
        assert_eq!(squares, items.iter().map(|i| i * i).collect::<Vec<_>>());
        assert_eq!(map_parallel(&items[..1], 8, |i| i + 1), vec![1]);
        assert!(map_parallel(&items[..0], 8, |i| i + 1).is_empty());
    }
}
