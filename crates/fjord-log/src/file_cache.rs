//! `FileCache`: the node's bound on open segment files.
//!
//! A segment keeps its metadata (size, offsets, indexes) in memory and opens
//! its `.log` file only when it is read, appended to, synced or cut; the
//! handle then stays in the cache until the cache evicts it. One cache
//! serves every log of a node (it travels in [`crate::LogConfig`]), so a
//! node with 30,000 partitions needs at most `max_open` descriptors for its
//! logs, whatever the number of segments.
//!
//! # Why a second-chance queue, not a strict LRU
//! A strict LRU moves an entry on every hit, which needs one lock shared by
//! every produce and fetch of the node. Here a hit only locks the segment's
//! own slot and sets its `referenced` bit; the shared queue is locked only
//! when a file is opened (a miss) and evictions happen. The queue is the
//! CLOCK approximation of LRU: the oldest opened handle is evicted unless it
//! was used since it was last looked at, in which case it gets a second
//! chance at the back of the queue.
//!
//! # Invariants
//! - At most `max_open` handles are held by the cache (0: no bound). A reader
//!   that got an `Arc<File>` keeps its descriptor valid after an eviction:
//!   the descriptor closes when the last `Arc` goes, so at any moment the
//!   node holds `max_open` plus the handles in flight in reads.
//! - A slot holds the only handle the cache keeps for its file; `open`
//!   counts slots holding one.
//! - Lock order: the queue, then a slot. A miss releases its slot before it
//!   takes the queue.
//!
//! Only the `.log` files are cached: the offset and time indexes live in
//! memory (`Vec`s, written to their files with `fs::write`), the
//! transaction index and checkpoints are opened for one write and closed.
//! An fsync after an eviction goes through a fresh descriptor: Linux flushes
//! the file's dirty pages whichever descriptor asks, but a writeback error
//! raised while no descriptor was open is reported only to descriptors open
//! at the time (a risk Kafka does not have, since it never closes files).

use std::collections::VecDeque;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

/// A node-wide bound on open segment files; cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct FileCache {
    inner: Arc<Inner>,
}

struct Inner {
    /// 0: no bound (every file stays open once opened, as in Kafka).
    max_open: usize,
    /// Slots holding a handle.
    open: AtomicUsize,
    /// Slots that were given a handle, oldest first; dead or already
    /// closed entries are skipped (and swept) lazily.
    queue: Mutex<VecDeque<Weak<Slot>>>,
    opens: AtomicU64,
    evictions: AtomicU64,
}

struct Slot {
    file: Mutex<Option<Arc<File>>>,
    /// Used since the evictor last looked at it.
    referenced: AtomicBool,
}

/// Counters of a cache, for metrics and benches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileCacheStats {
    pub max_open: usize,
    pub open: usize,
    /// Files opened since the cache was made (misses).
    pub opens: u64,
    pub evictions: u64,
}

impl FileCache {
    /// A cache holding at most `max_open` files (0: no bound).
    pub fn new(max_open: usize) -> Self {
        FileCache {
            inner: Arc::new(Inner {
                max_open,
                open: AtomicUsize::new(0),
                queue: Mutex::new(VecDeque::new()),
                opens: AtomicU64::new(0),
                evictions: AtomicU64::new(0),
            }),
        }
    }

    /// No bound: what a log opened outside a broker (tests, tools) gets.
    pub fn unbounded() -> Self {
        Self::new(0)
    }

    pub fn stats(&self) -> FileCacheStats {
        FileCacheStats {
            max_open: self.inner.max_open,
            open: self.inner.open.load(Ordering::Relaxed),
            opens: self.inner.opens.load(Ordering::Relaxed),
            evictions: self.inner.evictions.load(Ordering::Relaxed),
        }
    }

    /// A closed entry for the file at `path`, opened on first use.
    pub(crate) fn lazy(&self, path: PathBuf) -> CachedFile {
        CachedFile {
            path,
            slot: Arc::new(Slot {
                file: Mutex::new(None),
                referenced: AtomicBool::new(false),
            }),
            cache: self.clone(),
        }
    }

    /// An entry for `file`, just opened (or created) at `path`.
    pub(crate) fn insert(&self, path: PathBuf, file: File) -> CachedFile {
        let entry = self.lazy(path);
        let file = Arc::new(file);
        *lock(&entry.slot.file) = Some(file);
        self.admit(&entry.slot);
        entry
    }

    /// Count a slot that was just given a handle, and evict down to the bound.
    fn admit(&self, slot: &Arc<Slot>) {
        let inner = &*self.inner;
        inner.opens.fetch_add(1, Ordering::Relaxed);
        let open = inner.open.fetch_add(1, Ordering::SeqCst) + 1;
        if inner.max_open == 0 {
            return;
        }
        // Not marked referenced: a new entry is protected by its place at
        // the back of the queue; marking it would let a burst of misses
        // clear every bit in one pass and evict the hottest file.
        let mut queue = lock(&inner.queue);
        queue.push_back(Arc::downgrade(slot));
        if open > inner.max_open {
            self.evict(&mut queue);
        }
        // Entries of dropped or closed slots pile up when nothing is
        // evicted (segments deleted while under the bound).
        if queue.len() > 2 * inner.max_open + 64 {
            queue.retain(|w| w.strong_count() > 0);
        }
    }

    fn evict(&self, queue: &mut VecDeque<Weak<Slot>>) {
        let inner = &*self.inner;
        // Each pass over the queue clears every `referenced` bit, so two
        // passes find a victim if there is one.
        let mut budget = 2 * queue.len() + 1;
        while inner.open.load(Ordering::SeqCst) > inner.max_open && budget > 0 {
            budget -= 1;
            let Some(weak) = queue.pop_front() else {
                return;
            };
            let Some(slot) = weak.upgrade() else {
                continue;
            };
            if slot.referenced.swap(false, Ordering::Relaxed) {
                queue.push_back(weak);
                continue;
            }
            if lock(&slot.file).take().is_some() {
                inner.open.fetch_sub(1, Ordering::SeqCst);
                inner.evictions.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

impl Default for FileCache {
    fn default() -> Self {
        Self::unbounded()
    }
}

impl fmt::Debug for FileCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileCache")
            .field("stats", &self.stats())
            .finish()
    }
}

/// Always equal: the cache rides in [`crate::LogConfig`] but is not one of
/// its values (two configs with the same settings are the same config,
/// whichever cache their logs open files through).
impl PartialEq for FileCache {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

impl Eq for FileCache {}

/// One file under a [`FileCache`]: opened read + append on demand, closed
/// when evicted or dropped.
pub(crate) struct CachedFile {
    path: PathBuf,
    slot: Arc<Slot>,
    cache: FileCache,
}

impl CachedFile {
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The open handle, opening the file if the cache closed it. The handle
    /// stays valid as long as the caller keeps it, evicted or not.
    pub(crate) fn get(&self) -> io::Result<Arc<File>> {
        let mut guard = lock(&self.slot.file);
        if let Some(file) = &*guard {
            self.slot.referenced.store(true, Ordering::Relaxed);
            return Ok(Arc::clone(file));
        }
        let file = Arc::new(
            OpenOptions::new()
                .read(true)
                .append(true)
                .open(&self.path)?,
        );
        *guard = Some(Arc::clone(&file));
        drop(guard);
        self.cache.admit(&self.slot);
        Ok(file)
    }

    /// Close the cache's handle now (before the file is deleted, so no
    /// descriptor keeps a deleted file's blocks).
    pub(crate) fn close(&self) {
        if lock(&self.slot.file).take().is_some() {
            self.cache.inner.open.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Drop for CachedFile {
    fn drop(&mut self) {
        self.close();
    }
}

/// A poisoned slot or queue still holds consistent data (every critical
/// section is a single take, store or queue operation).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &Path, n: usize) -> Vec<PathBuf> {
        (0..n)
            .map(|i| {
                let p = dir.join(format!("{i}.log"));
                std::fs::write(&p, format!("file {i}")).expect("write");
                p
            })
            .collect()
    }

    fn read_all(f: &File) -> String {
        use std::os::unix::fs::FileExt;
        let mut buf = vec![0u8; 16];
        let n = f.read_at(&mut buf, 0).expect("read");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn bound_holds_and_every_file_stays_readable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = FileCache::new(4);
        let entries: Vec<_> = files(dir.path(), 20)
            .into_iter()
            .map(|p| cache.lazy(p))
            .collect();
        for round in 0..3 {
            for (i, e) in entries.iter().enumerate() {
                assert_eq!(read_all(&e.get().expect("get")), format!("file {i}"));
                assert!(
                    cache.stats().open <= 4,
                    "round {round}: {:?}",
                    cache.stats()
                );
            }
        }
        let stats = cache.stats();
        assert_eq!(
            stats.opens, 60,
            "cycling 20 files through 4 slots misses every time"
        );
        assert_eq!(stats.evictions, 56);
    }

    #[test]
    fn a_handle_survives_its_eviction() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = FileCache::new(1);
        let paths = files(dir.path(), 2);
        let a = cache.lazy(paths[0].clone());
        let b = cache.lazy(paths[1].clone());
        let held = a.get().expect("a");
        b.get().expect("b");
        assert_eq!(cache.stats().open, 1);
        assert_eq!(read_all(&held), "file 0");
    }

    #[test]
    fn a_used_file_gets_a_second_chance() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = FileCache::new(4);
        let mut paths = files(dir.path(), 21);
        let hot = cache.lazy(paths.remove(0));
        let cold: Vec<_> = paths.into_iter().map(|p| cache.lazy(p)).collect();
        for c in &cold {
            hot.get().expect("hot");
            c.get().expect("cold");
        }
        // The hot file was opened once; each cold file once.
        assert_eq!(cache.stats().opens, 21, "{:?}", cache.stats());
    }

    #[test]
    fn dropped_and_closed_files_give_their_slot_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = FileCache::new(8);
        let paths = files(dir.path(), 3);
        let a = cache.lazy(paths[0].clone());
        let b = cache.insert(paths[1].clone(), File::open(&paths[1]).expect("open"));
        a.get().expect("a");
        assert_eq!(cache.stats().open, 2);
        a.close();
        drop(b);
        assert_eq!(cache.stats().open, 0);
        let unbounded = FileCache::unbounded();
        let c = unbounded.lazy(paths[2].clone());
        c.get().expect("c");
        assert_eq!(unbounded.stats().open, 1);
    }
}
