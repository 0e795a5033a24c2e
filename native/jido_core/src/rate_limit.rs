//! Sliding-window rate limiter with an injectable clock.
//!
//! # Model
//!
//! A [`RateLimiter`] keeps an exact *sliding-window log*: for every
//! `(operation, key)` pair it remembers the instants of the most recent
//! attempts that were let through (or [recorded](RateLimiter::record)). An
//! attempt made at instant `t` counts against a [`Quota`] of `limit` attempts
//! per `window` while `now − t < window`; at `now = t + window` exactly it has
//! expired. So with a limit of 3 per 30 s and attempts at t = 0, 10 and 20, the
//! next attempt is refused until t = 30, when *one* slot frees — not all three,
//! as a fixed window would do.
//!
//! Besides the per-key window, a call may pass a *global* quota for the
//! operation: one more window per operation, shared by every key, so that
//! many fresh keys cannot together exceed a total rate.
//!
//! [`RateLimiter::check_and_record`] is one atomic step: N concurrent callers
//! on one key let exactly `limit` through. A refusal carries the wait until a
//! slot frees ([`Decision::Denied`]); a refused attempt is not recorded (call
//! [`RateLimiter::record`] for attempts that must count regardless).
//!
//! Time comes from a [`Clock`], so tests use a [`ManualClock`] and advance it
//! instead of sleeping; production uses [`MonotonicClock`]. Each limiter is
//! independent: there is no global or static state.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use jido_core::rate_limit::{Decision, ManualClock, Quota, RateLimiter};
//!
//! let clock = Arc::new(ManualClock::new());
//! let limiter = RateLimiter::new(Arc::clone(&clock));
//! let quota = Quota::per_window(2, 30_000).ok_or("zero quota")?;
//!
//! assert_eq!(limiter.check_and_record("resume", b"id-1", quota, None),
//!            Decision::Allowed { remaining: 1 });
//! clock.advance(Duration::from_secs(10));
//! assert_eq!(limiter.check_and_record("resume", b"id-1", quota, None),
//!            Decision::Allowed { remaining: 0 });
//! // Full: the first attempt (t = 0) frees its slot at t = 30 s.
//! assert_eq!(limiter.check_and_record("resume", b"id-1", quota, None),
//!            Decision::Denied { retry_after: Duration::from_secs(20) });
//! // Another key has its own window.
//! assert!(limiter.check_and_record("resume", b"id-2", quota, None).is_allowed());
//! clock.advance(Duration::from_secs(20));
//! assert!(limiter.check_and_record("resume", b"id-1", quota, None).is_allowed());
//! # Ok::<(), &str>(())
//! ```
//!
//! # Concurrency and lock order
//!
//! Keys are spread over 32 independent mutexes (shards) by a keyed hash of
//! `(operation, key)`, so callers on different keys rarely contend. Global
//! windows live behind one more mutex, so calls that pass a global quota for
//! the same operation serialize on it (briefly: a few dozen nanoseconds of
//! work). A call takes at most two locks, always
//! in the order **key shard, then global**;
//! [`sweep`](RateLimiter::sweep), [`len`](RateLimiter::len) and
//! [`approx_memory_bytes`](RateLimiter::approx_memory_bytes) take one lock at a
//! time. The clock is read before any lock is taken, and no lock is held when
//! a method returns.
//!
//! # Memory bound
//!
//! A window keeps at most `limit` timestamps (8 bytes each): older ones cannot
//! change any decision. A key whose newest attempt has left its window carries
//! no information and is dropped by [`RateLimiter::sweep`], which the owner
//! calls periodically. Between sweeps, memory is therefore proportional to
//! the number of distinct keys seen in the last `window + sweep interval`,
//! each costing `limit × 8` bytes of timestamps plus the operation and key
//! bytes plus a fixed overhead of roughly 100–150 bytes (table slot, two heap
//! allocations). Measured estimate: about 210 bytes per session-id key (36
//! bytes) with a limit of 5; see [`RateLimiter::approx_memory_bytes`]. A
//! global window likewise holds at most its own `limit × 8` bytes.

use std::borrow::Borrow;
use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};
use std::num::NonZeroU32;
use std::panic::RefUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::Error;

// ---- keys ------------------------------------------------------------------

/// Largest operation name or key, in bytes, a caller may pass.
///
/// A check hashes the key, and a new key is copied into the table, so the
/// size of the key is the work and the memory of a call. The limiter runs on
/// normal schedulers, where every call must stay short whatever the caller
/// passes: a bound on the key is what makes it so (a 400 MB key took
/// 185–770 ms and stayed in memory). Session ids are 36 bytes; a caller with
/// long keys hashes them first (`JidoCode.RateLimit` does).
pub const MAX_KEY_LEN: usize = 256;

/// Refuses an operation name or key longer than [`MAX_KEY_LEN`], before any
/// work proportional to its size.
///
/// ```
/// use jido_core::rate_limit::{check_key, MAX_KEY_LEN};
/// assert!(check_key(b"resume", b"a-session-id").is_ok());
/// assert!(check_key(b"resume", &vec![0; MAX_KEY_LEN + 1]).is_err());
/// ```
///
/// # Errors
/// [`Error::KeyTooLarge`] with the size of the longer of the two.
pub fn check_key(operation: &[u8], key: &[u8]) -> crate::Result<()> {
    let size = operation.len().max(key.len());
    if size > MAX_KEY_LEN {
        return Err(Error::KeyTooLarge {
            size,
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

// ---- one window ------------------------------------------------------------

/// One sliding window: the instants (nanoseconds on the limiter's clock) of
/// the most recent counted attempts, oldest first, at most `limit` of them.
#[derive(Debug)]
struct Log {
    stamps: VecDeque<u64>,
    /// The window of the last call that touched this log; `sweep` uses it to
    /// decide whether the log is idle.
    window: u64,
}

/// What one window says about an attempt made now.
#[derive(Debug, Clone, Copy)]
enum Status {
    /// Open; `remaining` further attempts after this one.
    Open { remaining: u32 },
    /// Full; a slot frees in `wait` nanoseconds (≥ 1).
    Full { wait: u64 },
}

impl Status {
    /// The status of a window with no live attempts.
    fn empty(quota: Quota) -> Self {
        Self::Open {
            remaining: quota.limit.get() - 1,
        }
    }

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

impl Log {
    /// Capacity reserved up front: exact for small limits, so a typical
    /// per-session window (5 per minute) never reallocates; large (global)
    /// limits grow on demand instead of reserving `limit` slots.
    const INITIAL_CAPACITY: usize = 8;

    fn new(quota: Quota) -> Self {
        let limit = usize::try_from(quota.limit.get()).unwrap_or(usize::MAX);
        Self {
            stamps: VecDeque::with_capacity(limit.min(Self::INITIAL_CAPACITY)),
            window: quota.window_nanos(),
        }
    }

    /// Drops expired attempts (age ≥ window) and adopts `quota`'s window.
    fn prune(&mut self, now: u64, quota: Quota) {
        let window = quota.window_nanos();
        self.window = window;
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

    /// The window's verdict on an attempt now; call after [`Log::prune`].
    fn status(&self, now: u64, quota: Quota) -> Status {
        let limit = usize::try_from(quota.limit.get()).unwrap_or(usize::MAX);
        let len = self.stamps.len();
        if len < limit {
            // len < limit ≤ u32::MAX, so the difference fits.
            let remaining = u32::try_from(limit - len - 1).unwrap_or(u32::MAX);
            return Status::Open { remaining };
        }
        // One more attempt fits once all but `limit - 1` of the live ones have
        // expired, i.e. when the one at index `len - limit` expires. (`len`
        // exceeds `limit` only if the quota shrank since the log was filled.)
        let stamp = self.stamps.get(len - limit).copied().unwrap_or(now);
        let window = quota.window_nanos();
        Status::Full {
            wait: window.saturating_sub(age(now, stamp)).max(1),
        }
    }

    /// Counts an attempt now, keeping only the newest `limit` stamps: older
    /// ones can no longer change a decision.
    fn push(&mut self, now: u64, quota: Quota) {
        let limit = usize::try_from(quota.limit.get()).unwrap_or(usize::MAX);
        while self.stamps.len() >= limit {
            self.stamps.pop_front();
        }
        self.stamps.push_back(now);
    }

    /// No attempt of this log is live any more (judged by its last window).
    fn is_idle(&self, now: u64) -> bool {
        self.stamps
            .back()
            .is_none_or(|&newest| age(now, newest) >= self.window)
    }

    /// Heap bytes owned by this log (see [`RateLimiter::approx_memory_bytes`]).
    fn heap_bytes(&self) -> usize {
        match self.stamps.capacity() {
            0 => 0,
            cap => cap * size_of::<u64>() + ALLOC_OVERHEAD,
        }
    }
}

// ---- keys ------------------------------------------------------------------

/// A tracked `(operation, key)` pair: both in one allocation, with the
/// limiter's keyed hash of the pair stored alongside.
///
/// The hash is computed once per call (SipHash with a per-limiter random key,
/// so nobody can force collisions) and serves both to pick the shard and as
/// the table hash ([`PassThrough`]), instead of hashing the key three times.
struct OwnedKey {
    hash: u64,
    /// `op` bytes followed by `key` bytes.
    bytes: Box<[u8]>,
    op_len: usize,
}

/// A pair as it arrives in a call; looks up an [`OwnedKey`] without
/// allocating.
struct BorrowedKey<'a> {
    hash: u64,
    op: &'a [u8],
    key: &'a [u8],
}

/// The common view of owned and borrowed pairs that the tables hash and
/// compare — the usual way to look up a composite owned key by borrowed parts
/// with std's `HashMap` (`Borrow<dyn KeyView>`).
trait KeyView {
    fn hash64(&self) -> u64;
    fn parts(&self) -> (&[u8], &[u8]);
}

impl KeyView for OwnedKey {
    fn hash64(&self) -> u64 {
        self.hash
    }
    fn parts(&self) -> (&[u8], &[u8]) {
        // `op_len <= bytes.len()` by construction; `min` keeps this panic-free.
        self.bytes.split_at(self.op_len.min(self.bytes.len()))
    }
}

impl KeyView for BorrowedKey<'_> {
    fn hash64(&self) -> u64 {
        self.hash
    }
    fn parts(&self) -> (&[u8], &[u8]) {
        (self.op, self.key)
    }
}

impl Hash for dyn KeyView + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash64());
    }
}

impl PartialEq for dyn KeyView + '_ {
    fn eq(&self, other: &Self) -> bool {
        // Comparing the parts separately keeps ("ab", "c") ≠ ("a", "bc").
        self.hash64() == other.hash64() && self.parts() == other.parts()
    }
}

impl Eq for dyn KeyView + '_ {}

impl<'a> Borrow<dyn KeyView + 'a> for OwnedKey {
    fn borrow(&self) -> &(dyn KeyView + 'a) {
        self
    }
}

// `Hash`/`Eq` of the owned key must agree with those of `dyn KeyView`.
impl Hash for OwnedKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (self as &dyn KeyView).hash(state);
    }
}

impl PartialEq for OwnedKey {
    fn eq(&self, other: &Self) -> bool {
        (self as &dyn KeyView) == (other as &dyn KeyView)
    }
}

impl Eq for OwnedKey {}

impl BorrowedKey<'_> {
    fn to_owned_key(&self) -> OwnedKey {
        let mut bytes = Vec::with_capacity(self.op.len() + self.key.len());
        bytes.extend_from_slice(self.op);
        bytes.extend_from_slice(self.key);
        OwnedKey {
            hash: self.hash,
            bytes: bytes.into_boxed_slice(),
            op_len: self.op.len(),
        }
    }
}

/// Table hasher for keys that carry their own (already keyed) hash: passes
/// the `u64` written by [`KeyView`]'s `Hash` through unchanged.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used by our keys; fold anything else (FNV-1a)
        // so the hasher is still a hasher.
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

// ---- the limiter -----------------------------------------------------------

/// One shard's table of per-key windows.
type KeyMap = HashMap<OwnedKey, Log, BuildHasherDefault<PassThrough>>;

/// Number of key shards: a power of two comfortably above the number of
/// scheduler threads that may call at once.
const SHARDS: usize = 32;

/// The shard index is taken from hash bits 52..57: std's table (hashbrown)
/// uses the low bits for the bucket and the top 7 for its tag byte, so keys
/// of one shard still spread over their table.
const SHARD_SHIFT: u32 = 52;

/// Assumed malloc bookkeeping per heap allocation, for the memory estimate.
const ALLOC_OVERHEAD: usize = 16;

/// One shard, on its own cache lines so that neighbouring locks do not
/// false-share.
#[repr(align(128))]
#[derive(Default)]
struct Shard(Mutex<KeyMap>);

/// Whether a step records the attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Decide only.
    Check,
    /// Decide, and record if allowed.
    CheckAndRecord,
    /// Record whatever the decision.
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

/// An exact sliding-window rate limiter over `(operation, key)` pairs, with
/// optional global windows per operation. See the [module docs](self).
pub struct RateLimiter<C: Clock = MonotonicClock> {
    clock: C,
    /// Keyed hash of `(operation, key)`; random per limiter so that nobody can
    /// aim many keys at one shard or one bucket.
    hasher: RandomState,
    shards: Box<[Shard]>,
    global: Mutex<HashMap<Box<str>, Log>>,
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
            .field("shards", &self.shards.len())
            .finish_non_exhaustive()
    }
}

impl Default for RateLimiter<MonotonicClock> {
    fn default() -> Self {
        Self::new(MonotonicClock::new())
    }
}

impl<C: Clock> RateLimiter<C> {
    /// An empty limiter reading time from `clock`.
    pub fn new(clock: C) -> Self {
        Self {
            clock,
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
            global: Mutex::new(HashMap::new()),
        }
    }

    /// The limiter's clock.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// Whether an attempt on `key` for `op` would be allowed now, without
    /// recording it. `global`, if given, is the operation's window across all
    /// keys. Expired attempts are pruned as a side effect.
    pub fn check(&self, op: &str, key: &[u8], quota: Quota, global: Option<Quota>) -> Decision {
        self.step(Mode::Check, op, key, quota, global)
    }

    /// Records an attempt now in the key's window (and the global one, if
    /// given) whatever the windows say — for attempts that must count even
    /// though they were not gated. Only the newest `limit` attempts are kept.
    pub fn record(&self, op: &str, key: &[u8], quota: Quota, global: Option<Quota>) {
        self.step(Mode::Record, op, key, quota, global);
    }

    /// Checks and, if allowed, records the attempt — atomically: concurrent
    /// callers on one key (or one global window) let exactly `limit` through.
    ///
    /// The attempt is refused if the key's window or the global one is full;
    /// the refusal is not recorded in either, and its `retry_after` is the
    /// longer of the two waits.
    pub fn check_and_record(
        &self,
        op: &str,
        key: &[u8],
        quota: Quota,
        global: Option<Quota>,
    ) -> Decision {
        self.step(Mode::CheckAndRecord, op, key, quota, global)
    }

    /// Forgets every attempt on `key` for `op`; `true` if there were any.
    pub fn reset(&self, op: &str, key: &[u8]) -> bool {
        let (shard, pair) = self.locate(op, key);
        shard.0.lock().remove(&pair as &dyn KeyView).is_some()
    }

    /// Forgets the global window of `op`; `true` if it existed.
    pub fn reset_global(&self, op: &str) -> bool {
        self.global.lock().remove(op).is_some()
    }

    /// Drops every window (per key and global) whose newest attempt has left
    /// the window it was last used with, and returns how many were dropped.
    /// Call periodically: this is what keeps memory bounded.
    ///
    /// Locks one shard at a time, so a concurrent caller waits for at most one
    /// shard's scan (1/32 of the keys).
    pub fn sweep(&self) -> usize {
        let now = self.now();
        let mut removed = 0;
        for shard in self.shards.iter() {
            let mut keys = shard.0.lock();
            removed += sweep_table(&mut keys, now);
        }
        removed + sweep_table(&mut self.global.lock(), now)
    }

    /// The number of windows tracked: keys of every operation plus global
    /// windows.
    pub fn len(&self) -> usize {
        let keys: usize = self.shards.iter().map(|shard| shard.0.lock().len()).sum();
        keys + self.global.lock().len()
    }

    /// Whether no window is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// An **estimate** of the memory the limiter holds, in bytes, for
    /// monitoring the effect of [`sweep`](Self::sweep).
    ///
    /// Counts the limiter itself; each hash table's capacity × (entry size +
    /// one control byte); each key's and operation name's bytes; each log's
    /// timestamp capacity × 8; and a nominal 16 bytes of allocator bookkeeping
    /// per heap allocation. Allocator rounding, fragmentation and the table's
    /// spare buckets beyond its usable capacity are not visible from here, so
    /// the real figure is somewhat higher.
    pub fn approx_memory_bytes(&self) -> usize {
        let mut total = size_of::<Self>() + self.shards.len() * size_of::<Shard>();
        for shard in self.shards.iter() {
            let keys = shard.0.lock();
            total += table_bytes(&keys);
            total += keys
                .iter()
                .map(|(key, log)| heap_bytes(key.bytes.len()) + log.heap_bytes())
                .sum::<usize>();
        }
        let global = self.global.lock();
        total += table_bytes(&global);
        total += global
            .iter()
            .map(|(op, log)| heap_bytes(op.len()) + log.heap_bytes())
            .sum::<usize>();
        total
    }

    // ---- internals ---------------------------------------------------------

    fn now(&self) -> u64 {
        saturating_nanos(self.clock.now())
    }

    /// The pair's shard and lookup key.
    fn locate<'a>(&self, op: &'a str, key: &'a [u8]) -> (&Shard, BorrowedKey<'a>) {
        // Hashing the two slices as a tuple length-prefixes them, so
        // ("ab", "c") and ("a", "bc") hash apart.
        let hash = self.hasher.hash_one((op, key));
        // Truncation is intended: five bits picked from the 64.
        let index = (hash >> SHARD_SHIFT) as usize & (SHARDS - 1);
        let pair = BorrowedKey {
            hash,
            op: op.as_bytes(),
            key,
        };
        (&self.shards[index], pair)
    }

    /// The one body behind `check`, `record` and `check_and_record`.
    ///
    /// Lock order: key shard, then global. The clock is read before either.
    fn step(
        &self,
        mode: Mode,
        op: &str,
        key: &[u8],
        quota: Quota,
        global: Option<Quota>,
    ) -> Decision {
        let now = self.now();
        let (shard, pair) = self.locate(op, key);
        let mut keys = shard.0.lock();

        // Existing key: decide and record in place, no allocation.
        if let Some(log) = keys.get_mut(&pair as &dyn KeyView) {
            log.prune(now, quota);
            let status = self.with_global(mode, now, op, log.status(now, quota), global);
            if mode.records(status) {
                log.push(now, quota);
            }
            return status.decision();
        }

        // New key: its own window is empty, so only the global one can refuse;
        // the key is stored only if the attempt is recorded.
        let status = self.with_global(mode, now, op, Status::empty(quota), global);
        if mode.records(status) {
            let mut log = Log::new(quota);
            log.push(now, quota);
            keys.insert(pair.to_owned_key(), log);
        }
        status.decision()
    }

    /// Combines the key's `status` with the global window of `op` (if a global
    /// quota is given), recording in the global window when `mode` says so.
    /// Called with the key's shard locked.
    fn with_global(
        &self,
        mode: Mode,
        now: u64,
        op: &str,
        key_status: Status,
        global: Option<Quota>,
    ) -> Status {
        let Some(quota) = global else {
            return key_status;
        };
        let mut logs = self.global.lock();
        if let Some(log) = logs.get_mut(op) {
            log.prune(now, quota);
            let status = key_status.and(log.status(now, quota));
            if mode.records(status) {
                log.push(now, quota);
            }
            return status;
        }
        let status = key_status.and(Status::empty(quota));
        if mode.records(status) {
            let mut log = Log::new(quota);
            log.push(now, quota);
            logs.insert(Box::from(op), log);
        }
        status
    }
}

/// Removes the idle logs of one table, gives memory back if most entries
/// went, and returns how many were removed.
fn sweep_table<K: Eq + Hash, S: BuildHasher>(table: &mut HashMap<K, Log, S>, now: u64) -> usize {
    let before = table.len();
    table.retain(|_, log| !log.is_idle(now));
    if table.capacity() > 16 && table.len() < table.capacity() / 4 {
        table.shrink_to_fit();
    }
    before - table.len()
}

/// Estimated bytes of a std `HashMap`'s table: capacity × (entry + 1 control
/// byte), plus one allocation's bookkeeping.
fn table_bytes<K, V, S>(map: &HashMap<K, V, S>) -> usize {
    match map.capacity() {
        0 => 0,
        cap => cap * (size_of::<(K, V)>() + 1) + ALLOC_OVERHEAD,
    }
}

/// Estimated bytes of a boxed string or byte slice's heap part.
fn heap_bytes(len: usize) -> usize {
    match len {
        0 => 0,
        len => len + ALLOC_OVERHEAD,
    }
}
