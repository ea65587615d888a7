//! The timers of every loaded shard (for groups: session and rebalance
//! timeouts, the initial rebalance delay, offset expiry; for transactions:
//! timeouts and id expiry): one task walks the shards and
//! runs the due ones' ticks concurrently, so a tick stalled in an append
//! delays only its own shard.

use std::collections::HashSet;
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};

use super::CoordinatorRuntime;
use super::coordinator_shard::CoordinatorShard;
use super::shard::ShardCell;

/// The longest the timer sleeps without looking again.
const MAX_TICK: Duration = Duration::from_secs(1);

impl<S: CoordinatorShard> CoordinatorRuntime<S> {
    /// Run the shards' timers until the future is dropped, which only the
    /// node's shutdown does: a tick dropped mid-append leaves its shard ahead
    /// of the log, and nothing serves from it afterwards.
    pub async fn run_timer(&self) {
        let mut ticking = FuturesUnordered::new();
        let mut busy: HashSet<i32> = HashSet::new();
        loop {
            let now = self.now_ms();
            let mut next = now + MAX_TICK.as_millis() as i64;
            for (partition, cell) in self.loaded_cells() {
                if busy.contains(&partition) {
                    continue;
                }
                // A shard in use is skipped: its call wakes the timer when done.
                let deadline = match cell.try_lock() {
                    Some(shard) => shard.coordinator.next_deadline(),
                    None => continue,
                };
                match deadline {
                    Some(at) if at <= now => {
                        busy.insert(partition);
                        ticking.push(async move {
                            self.tick(&cell).await;
                            partition
                        });
                    }
                    Some(at) => next = next.min(at),
                    None => {}
                }
            }
            let wait = Duration::from_millis((next - now).clamp(0, i64::MAX) as u64);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.inner.timer.notified() => {}
                Some(partition) = ticking.next(), if !ticking.is_empty() => {
                    busy.remove(&partition);
                }
            }
        }
    }

    /// Run the due ticks of every loaded shard once, in turn (for tests that
    /// drive the clock themselves).
    pub async fn tick_due(&self) {
        let now = self.now_ms();
        for (_, cell) in self.loaded_cells() {
            let due = cell
                .try_lock()
                .and_then(|shard| shard.coordinator.next_deadline())
                .is_some_and(|at| at <= now);
            if due {
                self.tick(&cell).await;
            }
        }
    }

    async fn tick(&self, cell: &ShardCell<S>) {
        let Ok(mut shard) = cell.lock(self).await else {
            return;
        };
        // A failed tick is reverted like any write; the next tick retries it.
        let _ = self
            .write(&mut shard, |coordinator, now| coordinator.on_tick(now))
            .await;
    }
}
