//! Test support shared by the unit tests, `tests/` and the benchmarks: one [`Cache`]
//! wrapper that records every call (operation and key), counts them, and fails the ones a
//! test chooses, in front of any real cache. Not used by the binaries.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::adapters::MemoryCache;
use crate::error::{CacheError, CacheErrorKind};
use crate::ports::Cache;

/// A [`Cache`] operation, as recorded by [`TestCache`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOp {
    ReadOrLease,
    Fill,
    Set,
    Delete,
    Read,
    FillKeepingCopy,
}

/// Which calls a [`TestCache`] fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Failing {
    #[default]
    Never,
    /// Every call, like a Redis that is down.
    Always,
    /// Every call, like a Redis answering that the key holds another type (a hash).
    WrongType,
    /// Only the `n`-th call (1-based) of this operation.
    Nth(CacheOp, usize),
}

#[derive(Debug, Default)]
struct Journal {
    calls: Vec<(CacheOp, String)>,
    failing: Failing,
}

/// Records, counts and (when asked) fails the calls it forwards to `inner`. Clones
/// share one journal.
#[derive(Clone)]
pub struct TestCache<C = MemoryCache> {
    inner: C,
    journal: Arc<Mutex<Journal>>,
}

impl Default for TestCache {
    /// In front of a fresh in-process cache.
    fn default() -> Self {
        Self::new(MemoryCache::default())
    }
}

impl<C: Cache> TestCache<C> {
    pub fn new(inner: C) -> Self {
        Self {
            inner,
            journal: Arc::default(),
        }
    }

    /// Fails every call from now on, without reaching `inner`.
    pub fn fail_always(&self) {
        self.lock().failing = Failing::Always;
    }

    /// Fails every call from now on with a per-key "wrong type" error, without reaching
    /// `inner`.
    pub fn fail_wrong_type(&self) {
        self.lock().failing = Failing::WrongType;
    }

    /// Fails only the `n`-th call (1-based, counted from the first call ever made) of
    /// `op`.
    pub fn fail_nth(&self, op: CacheOp, n: usize) {
        self.lock().failing = Failing::Nth(op, n);
    }

    pub fn inner(&self) -> &C {
        &self.inner
    }

    /// How many calls were made, failed ones included.
    pub fn calls(&self) -> usize {
        self.lock().calls.len()
    }

    /// Every operation called, in call order.
    pub fn ops(&self) -> Vec<CacheOp> {
        self.lock().calls.iter().map(|(op, _)| *op).collect()
    }

    /// Every key asked about, in call order.
    pub fn keys(&self) -> Vec<String> {
        self.lock()
            .calls
            .iter()
            .map(|(_, key)| key.clone())
            .collect()
    }

    /// Records the call; `Err` when it is one to fail.
    fn enter(&self, op: CacheOp, key: &str) -> Result<(), CacheError> {
        let mut journal = self.lock();
        journal.calls.push((op, key.to_owned()));
        let nth = journal.calls.iter().filter(|(seen, _)| *seen == op).count();
        match journal.failing {
            Failing::Always => Err(CacheError::new("test", "connection refused")),
            Failing::WrongType => Err(CacheError::with_kind(
                "test",
                CacheErrorKind::WrongType {
                    key: key.to_owned(),
                },
                "WRONGTYPE",
            )),
            Failing::Nth(failing, n) if failing == op && n == nth => {
                Err(CacheError::new("test", "timed out"))
            }
            _ => Ok(()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Journal> {
        self.journal.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Records each call (failing it when asked), then sends it to the inner cache.
macro_rules! through_journal {
    ($this:ident, $op:ident, $key:ident, $cache:ident => $call:expr) => {{
        $this.enter(CacheOp::$op, $key)?;
        let $cache = &$this.inner;
        $call
    }};
}
/// Sends a call that is not journalled to the inner cache.
macro_rules! to_inner {
    ($this:ident, $cache:ident => $call:expr) => {{
        let $cache = &$this.inner;
        $call
    }};
}
crate::ports::forward_cache!(impl[C: Cache] for TestCache<C>, through_journal, to_inner);
