//! Sliding-window rate limiter with an injectable clock.
//!
//! # Model
//!
//! One [`RateLimiter`] serves one operation (say "resume"), in the shape of
//! governor's limiters: its quotas are fixed when it is built. It holds
//!
//! * a *keyed* limiter: one window per key (a session id), each allowing
//!   [`Quota::limit`] attempts per [`Quota::window`];
//! * optionally a *direct* limiter: one window shared by every key, so that
//!   many fresh keys cannot together exceed a total rate.
//!
//! Each window is an exact *sliding-window log*: the instants of the most
//! recent counted attempts. An attempt made at `t` counts while
//! `now − t < window`; at `now = t + window` exactly it has expired. With a
//! limit of 3 per 30 s and attempts at t = 0, 10 and 20, the next attempt is
//! refused until t = 30, when *one* slot frees — not all three, as a fixed
//! window would do.
//!
//! Every call is one [`RateLimiter::step`]: a [`Mode`] (check, check and
//! record, record) over a [`Scope`] (the key's window, the key's and the
//! global one together, or the global one alone). A check-and-record is
//! atomic: N concurrent callers on one key (or one global window) let exactly
//! `limit` through. A refusal carries the wait until a slot frees
//! ([`Decision::Denied`]) and is recorded in no window.
//!
//! Time comes from a [`Clock`], so tests use a [`ManualClock`] and advance it
//! instead of sleeping; production uses [`MonotonicClock`]. There is no
//! global or static state.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use jido_core::rate_limit::{Decision, ManualClock, Mode, Quota, RateLimiter, Scope};
//!
//! let clock = Arc::new(ManualClock::new());
//! let per_key = Quota::per_window(2, 30_000).ok_or("zero quota")?;
//! let resume = RateLimiter::new(Arc::clone(&clock), per_key, None);
//! let attempt = |key: &[u8]| resume.step(Mode::CheckAndRecord, Scope::Key(key));
//!
//! assert_eq!(attempt(b"id-1"), Decision::Allowed { remaining: 1 });
//! clock.advance(Duration::from_secs(10));
//! assert_eq!(attempt(b"id-1"), Decision::Allowed { remaining: 0 });
//! // Full: the first attempt (t = 0) frees its slot at t = 30 s.
//! assert_eq!(attempt(b"id-1"), Decision::Denied { retry_after: Duration::from_secs(20) });
//! // Another key has its own window.
//! assert!(attempt(b"id-2").is_allowed());
//! clock.advance(Duration::from_secs(20));
//! assert!(attempt(b"id-1").is_allowed());
//! # Ok::<(), &str>(())
//! ```
//!
//! # Concurrency and lock order
//!
//! Keys are spread over 32 independent mutexes (shards), each a plain
//! `HashMap` from the key's bytes to its window, so callers on different keys
//! rarely contend. The global window has a mutex of its own, so calls that
//! involve it serialize on it (briefly: a few dozen nanoseconds of work). A
//! call takes at most two locks, always in the order **key shard, then
//! global**; [`sweep`](RateLimiter::sweep), [`len`](RateLimiter::len) and
//! [`approx_memory_bytes`](RateLimiter::approx_memory_bytes) take one lock at
//! a time. The clock is read before any lock is taken, and no lock is held
//! when a method returns.
//!
//! # Memory bound
//!
//! A window keeps at most `limit` timestamps (8 bytes each): older ones cannot
//! change any decision. A key whose newest attempt has left the window carries
//! no information and is dropped by [`RateLimiter::sweep`], which the owner
//! calls periodically. Between sweeps, memory is therefore proportional to
//! the number of distinct keys seen in the last `window + sweep interval`,
//! each costing `limit × 8` bytes of timestamps plus the key's bytes plus a
//! fixed overhead of roughly 100–150 bytes (table slot, two heap
//! allocations); see [`RateLimiter::approx_memory_bytes`]. The global window
//! likewise holds at most its own `limit × 8` bytes.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::hash::BuildHasher;
use std::num::NonZeroU32;
use std::panic::RefUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::Error;

// ---- keys ------------------------------------------------------------------

/// Largest key, in bytes, a caller may pass.
///
/// A call hashes the key, and a new key is copied into the table, so the size
/// of the key is the work and the memory of a call. The limiter runs on
/// normal schedulers, where every call must stay short whatever the caller
/// passes: a bound on the key is what makes it so (a 400 MB key took
/// 185–770 ms and stayed in memory). Session ids are 36 bytes; a caller with
/// long keys hashes them first (`JidoCode.RateLimit` does).
pub const MAX_KEY_LEN: usize = 256;

/// Refuses a key longer than [`MAX_KEY_LEN`], before any work proportional to
/// its size.
///
/// ```
/// use jido_core::rate_limit::{check_key, MAX_KEY_LEN};
/// assert!(check_key(b"a-session-id").is_ok());
/// assert!(check_key(&vec![0; MAX_KEY_LEN + 1]).is_err());
/// ```
///
/// # Errors
/// [`Error::KeyTooLarge`] with the key's size.
pub fn check_key(key: &[u8]) -> crate::Result<()> {
    if key.len() > MAX_KEY_LEN {
        return Err(Error::KeyTooLarge {
            size: key.len(),
            limit: MAX_KEY_LEN,
        });
    }
    Ok(())
}
// ---- clocks ----------------------------------------------------------------

/// A monotonic source of time for the limiter.
///
/// `now` is the time elapsed since an arbitrary origin fixed for the clock's
/// lifetime. It must never go backwards: the limiter does not panic if it
/// does, but attempts "from the future" then count until the clock catches up.
pub trait Clock: Send + Sync + 'static {
    /// Time elapsed since this clock's origin.
    fn now(&self) -> Duration;
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> Duration {
        (**self).now()
    }
}

impl<C: Clock + ?Sized> Clock for Box<C> {
    fn now(&self) -> Duration {
        (**self).now()
    }
}

/// The production clock: [`Instant`]-based, with its origin at construction.
///
/// Immune to wall-clock changes (NTP steps, the user setting the date).
#[derive(Debug, Clone, Copy)]
pub struct MonotonicClock {
    origin: Instant,
}

impl MonotonicClock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        Self {
            origin: Instant::now(),
        }
    }
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for MonotonicClock {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }
}

/// A clock that only moves when told to — for tests (governor's
/// `FakeRelativeClock`).
///
/// Share it with the limiter through an `Arc<ManualClock>` (which is itself a
/// [`Clock`]) and keep a handle to advance it. Nanosecond resolution; the
/// value saturates at `u64::MAX` nanoseconds (about 584 years).
#[derive(Debug, Default)]
pub struct ManualClock {
    nanos: AtomicU64,
}

impl ManualClock {
    /// A clock standing at its origin (`now() == 0`).
    pub fn new() -> Self {
        Self::default()
    }

    /// A clock standing at `at`.
    pub fn starting_at(at: Duration) -> Self {
        Self {
            nanos: AtomicU64::new(saturating_nanos(at)),
        }
    }

    /// Moves the clock forward by `by` (saturating).
    pub fn advance(&self, by: Duration) {
        let by = saturating_nanos(by);
        // `fetch_update` with a closure that always returns `Some` cannot fail.
        let _ = self
            .nanos
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                Some(n.saturating_add(by))
            });
    }

    /// Sets the clock to `to`. Going backwards is allowed but breaks the
    /// [`Clock`] contract for limiters already using it.
    pub fn set(&self, to: Duration) {
        self.nanos.store(saturating_nanos(to), Ordering::Release);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::Acquire))
    }
}

/// Nanoseconds in `d`, saturating at `u64::MAX` (about 584 years).
fn saturating_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

// ---- quota and decision ----------------------------------------------------

/// At most `limit` attempts in any sliding `window`.
///
/// Windows longer than `u64::MAX` nanoseconds (about 584 years) are treated as
/// that long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quota {
    limit: NonZeroU32,
    window: Duration,
}

impl Quota {
    /// `limit` attempts per `window`; `None` if `window` is zero (a zero
    /// window would never count anything).
    pub fn new(limit: NonZeroU32, window: Duration) -> Option<Self> {
        if window.is_zero() {
            None
        } else {
            Some(Self { limit, window })
        }
    }

    /// `limit` attempts per `window_ms` milliseconds — the shape configuration
    /// arrives in. `None` if either is zero.
    pub fn per_window(limit: u32, window_ms: u64) -> Option<Self> {
        Self::new(NonZeroU32::new(limit)?, Duration::from_millis(window_ms))
    }

    /// The number of attempts allowed per window.
    pub fn limit(&self) -> NonZeroU32 {
        self.limit
    }

    /// The length of the sliding window.
    pub fn window(&self) -> Duration {
        self.window
    }

    fn window_nanos(&self) -> u64 {
        saturating_nanos(self.window)
    }
}

/// The outcome of a rate-limit check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    /// The attempt is (or would be) allowed.
    Allowed {
        /// How many further attempts would still be allowed after this one if
        /// made right now — the minimum over the key and global windows.
        remaining: u32,
    },
    /// The attempt is refused.
    Denied {
        /// Time until a slot frees in every full window (the maximum of the
        /// key and global waits). Never zero.
        retry_after: Duration,
    },
}

impl Decision {
    /// Whether the attempt is allowed.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Self::Allowed { .. })
    }

    /// For a denial, the wait in whole seconds, rounded up and at least 1 —
    /// the `retry_after_seconds` the Elixir API reports. `None` when allowed.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match *self {
            Self::Allowed { .. } => None,
            Self::Denied { retry_after } => {
                let up = u64::from(retry_after.subsec_nanos() > 0);
                Some(retry_after.as_secs().saturating_add(up).max(1))
            }
        }
    }
}

// ---- a call ------------------------------------------------------------------

/// What a [`RateLimiter::step`] does with the attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Decide only; nothing is recorded.
    Check,
    /// Decide, and record the attempt if it is allowed — atomically.
    CheckAndRecord,
    /// Record the attempt whatever the decision, for attempts that must
    /// count even though they were not gated. Only the newest `limit`
    /// attempts of a window are kept.
    Record,
}

impl Mode {
    fn records(self, status: Status) -> bool {
        match self {
            Self::Check => false,
            Self::CheckAndRecord => matches!(status, Status::Open { .. }),
            Self::Record => true,
        }
    }
}

/// Which windows a [`RateLimiter::step`] (or [`RateLimiter::reset`]) reads
/// and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope<'a> {
    /// The key's window alone; the global one is neither read nor written.
    Key(&'a [u8]),
    /// The key's window and the global one, in one atomic step: the attempt
    /// is refused if either is full, and then recorded in neither.
    KeyAndGlobal(&'a [u8]),
    /// The global window alone. A limiter without a global quota allows
    /// every such attempt (`remaining: u32::MAX`).
    Global,
}

// ---- one window ------------------------------------------------------------

/// What one window says about an attempt made now.
#[derive(Debug, Clone, Copy)]
enum Status {
    /// Open; `remaining` further attempts after this one.
    Open { remaining: u32 },
    /// Full; a slot frees in `wait` nanoseconds (≥ 1).
    Full { wait: u64 },
}

impl Status {
    /// The status of no window at all: the identity of [`Status::and`].
    const UNLIMITED: Self = Self::Open {
        remaining: u32::MAX,
    };

    /// Both windows must be open; the wait is the longer one.
    fn and(self, other: Self) -> Self {
        match (self, other) {
            (Self::Open { remaining: a }, Self::Open { remaining: b }) => Self::Open {
                remaining: a.min(b),
            },
            (Self::Full { wait: a }, Self::Full { wait: b }) => Self::Full { wait: a.max(b) },
            (full @ Self::Full { .. }, Self::Open { .. })
            | (Self::Open { .. }, full @ Self::Full { .. }) => full,
        }
    }

    fn decision(self) -> Decision {
        match self {
            Self::Open { remaining } => Decision::Allowed { remaining },
            Self::Full { wait } => Decision::Denied {
                retry_after: Duration::from_nanos(wait),
            },
        }
    }
}

/// Age of an attempt at `stamp`; a stamp "from the future" (a clock that went
/// backwards) is treated as brand new.
fn age(now: u64, stamp: u64) -> u64 {
    now.saturating_sub(stamp)
}

/// `limit` as a length.
fn limit_len(quota: Quota) -> usize {
    usize::try_from(quota.limit.get()).unwrap_or(usize::MAX)
}

/// One sliding window: the instants (nanoseconds on the limiter's clock) of
/// the most recent counted attempts, oldest first, at most `limit` of them.
/// Its quota is its owner's, fixed for the owner's life.
#[derive(Debug, Default)]
struct Window {
    stamps: VecDeque<u64>,
}

impl Window {
    /// Capacity reserved at the first attempt: exact for small limits, so a
    /// typical per-session window (5 per minute) never reallocates; large
    /// (global) limits grow on demand instead of reserving `limit` slots.
    const INITIAL_CAPACITY: usize = 8;

    /// Decides on an attempt now and records it if `mode` says so. `combine`
    /// turns this window's verdict into the call's (by consulting the other
    /// windows of the call, and recording there), so the attempt is recorded
    /// here only if the call as a whole records it.
    fn step(
        &mut self,
        now: u64,
        quota: Quota,
        mode: Mode,
        combine: impl FnOnce(Status) -> Status,
    ) -> Status {
        self.prune(now, quota);
        let status = combine(self.status(now, quota));
        if mode.records(status) {
            self.push(now, quota);
        }
        status
    }

    /// Drops expired attempts (age ≥ window).
    fn prune(&mut self, now: u64, quota: Quota) {
        let window = quota.window_nanos();
        while self
            .stamps
            .front()
            .is_some_and(|&stamp| age(now, stamp) >= window)
        {
            self.stamps.pop_front();
        }
        // Give back memory after a burst on a large (global) window.
        let cap = self.stamps.capacity();
        if cap > 64 && self.stamps.len() < cap / 4 {
            self.stamps.shrink_to(self.stamps.len() * 2);
        }
    }

    /// The window's verdict on an attempt now; call after [`Window::prune`].
    fn status(&self, now: u64, quota: Quota) -> Status {
        let limit = limit_len(quota);
        let len = self.stamps.len();
        if len < limit {
            // len < limit ≤ u32::MAX, so the difference fits.
            let remaining = u32::try_from(limit - len - 1).unwrap_or(u32::MAX);
            return Status::Open { remaining };
        }
        // One more attempt fits once the oldest live one expires (a window
        // never holds more than `limit`).
        let oldest = self.stamps.front().copied().unwrap_or(now);
        Status::Full {
            wait: quota.window_nanos().saturating_sub(age(now, oldest)).max(1),
        }
    }

    /// Counts an attempt now, keeping only the newest `limit` stamps: older
    /// ones can no longer change a decision.
    fn push(&mut self, now: u64, quota: Quota) {
        if self.stamps.capacity() == 0 {
            self.stamps
                .reserve_exact(limit_len(quota).min(Self::INITIAL_CAPACITY));
        }
        while self.stamps.len() >= limit_len(quota) {
            self.stamps.pop_front();
        }
        self.stamps.push_back(now);
    }

    /// No attempt of this window is live any more.
    fn is_idle(&self, now: u64, quota: Quota) -> bool {
        self.stamps
            .back()
            .is_none_or(|&newest| age(now, newest) >= quota.window_nanos())
    }

    /// Heap bytes owned by this window (see
    /// [`RateLimiter::approx_memory_bytes`]).
    fn heap_bytes(&self) -> usize {
        match self.stamps.capacity() {
            0 => 0,
            cap => cap * size_of::<u64>() + ALLOC_OVERHEAD,
        }
    }
}

// ---- the keyed limiter -------------------------------------------------------

/// Number of key shards: a power of two comfortably above the number of
/// scheduler threads that may call at once.
const SHARDS: usize = 32;

/// Assumed malloc bookkeeping per heap allocation, for the memory estimate.
const ALLOC_OVERHEAD: usize = 16;

/// One shard, on its own cache lines so that neighbouring locks do not
/// false-share.
#[repr(align(128))]
#[derive(Default)]
struct Shard(Mutex<HashMap<Box<[u8]>, Window>>);

/// One window per key, all with the same quota, spread over [`SHARDS`]
/// mutexes.
struct Keyed {
    quota: Quota,
    /// Picks the shard; random per limiter, so that nobody can aim many keys
    /// at one shard. (Each shard's table has its own random hasher.)
    shard_hasher: RandomState,
    shards: Box<[Shard]>,
}

impl Keyed {
    fn new(quota: Quota) -> Self {
        Self {
            quota,
            shard_hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
        }
    }

    fn shard(&self, key: &[u8]) -> &Shard {
        // Truncation is intended: the low bits pick the shard.
        let index = self.shard_hasher.hash_one(key) as usize & (SHARDS - 1);
        &self.shards[index]
    }

    /// The key's step, combined with `global` (locked inside the key's shard
    /// lock: the one lock order).
    fn step(&self, now: u64, mode: Mode, key: &[u8], global: Option<&Direct>) -> Status {
        let mut windows = self.shard(key).0.lock();
        let with_global = |key_status: Status| match global {
            Some(global) => global.step(now, mode, key_status),
            None => key_status,
        };
        if let Some(window) = windows.get_mut(key) {
            return window.step(now, self.quota, mode, with_global);
        }
        // A new key is stored only if the attempt is recorded.
        let mut window = Window::default();
        let status = window.step(now, self.quota, mode, with_global);
        if !window.stamps.is_empty() {
            windows.insert(Box::from(key), window);
        }
        status
    }
}

// ---- the direct (global) limiter ---------------------------------------------

/// One window shared by every key.
struct Direct {
    quota: Quota,
    window: Mutex<Window>,
}

impl Direct {
    fn new(quota: Quota) -> Self {
        Self {
            quota,
            window: Mutex::default(),
        }
    }

    fn step(&self, now: u64, mode: Mode, others: Status) -> Status {
        let quota = self.quota;
        self.window
            .lock()
            .step(now, quota, mode, |mine| others.and(mine))
    }
}

// ---- the limiter -----------------------------------------------------------

/// An exact sliding-window rate limiter for one operation: a window per key
/// and, optionally, a global window, with quotas fixed at construction. See
/// the [module docs](self).
pub struct RateLimiter<C: Clock = MonotonicClock> {
    clock: C,
    keyed: Keyed,
    global: Option<Direct>,
}

// A limiter is shared by reference across `catch_unwind` (rustler wraps every
// NIF in one), which needs `RefUnwindSafe`; parking_lot's mutexes do not
// poison, so it is not derived. It holds: every mutation under a lock is one
// `VecDeque`/`HashMap` operation that leaves a window valid, and the only
// split update — global window pushed, then the key's — can at worst count an
// attempt globally and not for its key, the conservative direction. (Nothing
// here panics by design; allocation failure aborts.)
impl<C: Clock + RefUnwindSafe> RefUnwindSafe for RateLimiter<C> {}

impl<C: Clock> fmt::Debug for RateLimiter<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter")
            .field("quota", &self.keyed.quota)
            .field("global_quota", &self.global_quota())
            .finish_non_exhaustive()
    }
}

impl<C: Clock> RateLimiter<C> {
    /// An empty limiter allowing `per_key` attempts per key and, if given,
    /// `global` attempts across all keys, reading time from `clock`.
    pub fn new(clock: C, per_key: Quota, global: Option<Quota>) -> Self {
        Self {
            clock,
            keyed: Keyed::new(per_key),
            global: global.map(Direct::new),
        }
    }

    /// The per-key quota.
    pub fn quota(&self) -> Quota {
        self.keyed.quota
    }

    /// The global quota, if any.
    pub fn global_quota(&self) -> Option<Quota> {
        self.global.as_ref().map(|global| global.quota)
    }

    /// The limiter's clock.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// Decides on an attempt now over the windows of `scope`, recording it
    /// as `mode` says. Expired attempts are pruned as a side effect.
    ///
    /// A denial's `retry_after` is the longer wait of the full windows;
    /// an allowance's `remaining` is the smaller of the windows' remainders.
    pub fn step(&self, mode: Mode, scope: Scope<'_>) -> Decision {
        let now = self.now();
        let status = match scope {
            Scope::Key(key) => self.keyed.step(now, mode, key, None),
            Scope::KeyAndGlobal(key) => self.keyed.step(now, mode, key, self.global.as_ref()),
            Scope::Global => match &self.global {
                Some(global) => global.step(now, mode, Status::UNLIMITED),
                None => Status::UNLIMITED,
            },
        };
        status.decision()
    }

    /// Forgets every attempt in the windows of `scope`; `true` if there was
    /// any.
    pub fn reset(&self, scope: Scope<'_>) -> bool {
        let forget_key = |key: &[u8]| self.keyed.shard(key).0.lock().remove(key).is_some();
        let forget_global = || {
            self.global.as_ref().is_some_and(|global| {
                let mut window = global.window.lock();
                let had_any = !window.stamps.is_empty();
                *window = Window::default();
                had_any
            })
        };
        match scope {
            Scope::Key(key) => forget_key(key),
            Scope::KeyAndGlobal(key) => forget_key(key) | forget_global(),
            Scope::Global => forget_global(),
        }
    }

    /// Drops every key whose newest attempt has left the window, empties the
    /// global window if it is idle, and returns how many windows were
    /// dropped or emptied. Call periodically: this is what keeps memory
    /// bounded.
    ///
    /// Locks one shard at a time, so a concurrent caller waits for at most one
    /// shard's scan (1/32 of the keys).
    pub fn sweep(&self) -> usize {
        let now = self.now();
        let quota = self.keyed.quota;
        let mut removed = 0;
        for shard in self.keyed.shards.iter() {
            let mut windows = shard.0.lock();
            let before = windows.len();
            windows.retain(|_, window| !window.is_idle(now, quota));
            if windows.capacity() > 16 && windows.len() < windows.capacity() / 4 {
                windows.shrink_to_fit();
            }
            removed += before - windows.len();
        }
        if let Some(global) = &self.global {
            let mut window = global.window.lock();
            if !window.stamps.is_empty() && window.is_idle(now, global.quota) {
                *window = Window::default();
                removed += 1;
            }
        }
        removed
    }

    /// The number of windows holding attempts: every key tracked, plus the
    /// global window when it holds any.
    pub fn len(&self) -> usize {
        let keys: usize = self
            .keyed
            .shards
            .iter()
            .map(|shard| shard.0.lock().len())
            .sum();
        let global = self
            .global
            .as_ref()
            .is_some_and(|global| !global.window.lock().stamps.is_empty());
        keys + usize::from(global)
    }

    /// Whether no window holds an attempt.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// An **estimate** of the memory the limiter holds, in bytes, for
    /// monitoring the effect of [`sweep`](Self::sweep).
    ///
    /// Counts the limiter itself; each shard table's capacity × (entry size +
    /// one control byte); each key's bytes; each window's timestamp capacity
    /// × 8; and a nominal 16 bytes of allocator bookkeeping per heap
    /// allocation. Allocator rounding, fragmentation and the table's spare
    /// buckets beyond its usable capacity are not visible from here, so the
    /// real figure is somewhat higher.
    pub fn approx_memory_bytes(&self) -> usize {
        let mut total = size_of::<Self>() + self.keyed.shards.len() * size_of::<Shard>();
        for shard in self.keyed.shards.iter() {
            let windows = shard.0.lock();
            total += match windows.capacity() {
                0 => 0,
                cap => cap * (size_of::<(Box<[u8]>, Window)>() + 1) + ALLOC_OVERHEAD,
            };
            total += windows
                .iter()
                .map(|(key, window)| key.len() + ALLOC_OVERHEAD + window.heap_bytes())
                .sum::<usize>();
        }
        if let Some(global) = &self.global {
            total += size_of::<Direct>() + global.window.lock().heap_bytes();
        }
        total
    }

    fn now(&self) -> u64 {
        saturating_nanos(self.clock.now())
    }
}
