//! Rate-limiter NIFs: one limiter per operation, its quotas fixed when it is
//! built (no global state, so tests can run isolated limiters side by side).
//! A call is one O(1) step under a sharded lock on the normal scheduler; keys
//! over [`rate_limit::MAX_KEY_LEN`] bytes are refused with
//! `{:error, {:key_too_large, size}}` before anything proportional to their
//! size is done, so no argument can make a call long.

use crate::atoms;
use crate::error::{Done, NifError};
use jido_core::rate_limit::{self, Decision, Mode, MonotonicClock, Quota, RateLimiter, Scope};
use rustler::{
    Atom, Binary, Decoder, Encoder, Env, Error as RustlerError, NifResult, ResourceArc, Term,
};
use std::collections::HashMap;

/// A rate limiter held by the VM.
pub struct LimiterResource(RateLimiter);

#[rustler::resource_impl]
impl rustler::Resource for LimiterResource {}

/// `:check | :check_and_record | :record`
struct ModeArg(Mode);

impl<'a> Decoder<'a> for ModeArg {
    fn decode(term: Term<'a>) -> NifResult<Self> {
        // Decoded by hand: rustler's derived enums raise `:invalid_variant`,
        // and every wrong argument here is an `ArgumentError` (badarg).
        let atom = Atom::from_term(term)?;
        let mode = if atom == atoms::check() {
            Mode::Check
        } else if atom == atoms::check_and_record() {
            Mode::CheckAndRecord
        } else if atom == atoms::record() {
            Mode::Record
        } else {
            return Err(RustlerError::BadArg);
        };
        Ok(Self(mode))
    }
}

/// `{:key, key} | {:key_and_global, key} | :global`, the key not yet checked.
enum ScopeArg<'a> {
    Key(Binary<'a>),
    KeyAndGlobal(Binary<'a>),
    Global,
}

impl<'a> Decoder<'a> for ScopeArg<'a> {
    fn decode(term: Term<'a>) -> NifResult<Self> {
        if term.is_atom() {
            return if Atom::from_term(term)? == atoms::global() {
                Ok(Self::Global)
            } else {
                Err(RustlerError::BadArg)
            };
        }
        let (tag, key): (Atom, Binary<'a>) = term.decode()?;
        if tag == atoms::key() {
            Ok(Self::Key(key))
        } else if tag == atoms::key_and_global() {
            Ok(Self::KeyAndGlobal(key))
        } else {
            Err(RustlerError::BadArg)
        }
    }
}

impl ScopeArg<'_> {
    /// The core scope, once the core's key rule allows the key.
    fn checked(&self) -> Result<Scope<'_>, NifError> {
        Ok(match self {
            Self::Key(key) => Scope::Key(checked_key(key)?),
            Self::KeyAndGlobal(key) => Scope::KeyAndGlobal(checked_key(key)?),
            Self::Global => Scope::Global,
        })
    }
}

fn checked_key<'k>(key: &'k Binary) -> Result<&'k [u8], NifError> {
    rate_limit::check_key(key.as_slice())?;
    Ok(key.as_slice())
}

/// A step's result: `{:ok, remaining}`,
/// `{:error, {:rate_limit_exceeded, retry_after_seconds}}` or the refusal of
/// an oversized key.
pub struct Outcome(Result<Decision, NifError>);

impl Encoder for Outcome {
    fn encode<'a>(&self, env: Env<'a>) -> Term<'a> {
        match &self.0 {
            Ok(Decision::Allowed { remaining }) => (atoms::ok(), remaining).encode(env),
            // The one rounding of a wait (up, at least 1 s) is the core's.
            Ok(denied @ Decision::Denied { .. }) => {
                let seconds = denied.retry_after_secs().unwrap_or(1);
                (atoms::error(), (atoms::rate_limit_exceeded(), seconds)).encode(env)
            }
            Err(e) => (atoms::error(), e).encode(env),
        }
    }
}

/// `{limit, window_ms}` with both positive; anything else is a programmer
/// error (badarg).
fn quota((limit, window_ms): (u32, u64)) -> NifResult<Quota> {
    Quota::per_window(limit, window_ms).ok_or(RustlerError::BadArg)
}

/// `limiter_new({limit, window_ms}, {limit, window_ms} | nil) :: limiter` —
/// the per-key quota and the optional global one, fixed for the limiter's
/// life.
#[rustler::nif]
fn limiter_new(
    per_key: (u32, u64),
    global: Option<(u32, u64)>,
) -> NifResult<ResourceArc<LimiterResource>> {
    let limiter = RateLimiter::new(
        MonotonicClock::new(),
        quota(per_key)?,
        global.map(quota).transpose()?,
    );
    Ok(ResourceArc::new(LimiterResource(limiter)))
}

/// `limiter_step(limiter, mode, scope) :: {:ok, remaining} | {:error, reason}`
/// — one check, check-and-record or record over the scope's windows.
#[rustler::nif]
fn limiter_step(limiter: ResourceArc<LimiterResource>, mode: ModeArg, scope: ScopeArg) -> Outcome {
    Outcome(scope.checked().map(|scope| limiter.0.step(mode.0, scope)))
}

/// `limiter_reset(limiter, scope) :: :ok | {:error, {:key_too_large, size}}`
/// — forgets the attempts in the scope's windows.
#[rustler::nif]
fn limiter_reset(limiter: ResourceArc<LimiterResource>, scope: ScopeArg) -> Done {
    // Whether there was anything to forget does not matter to callers.
    Done(scope.checked().map(|scope| {
        let _had_any = limiter.0.reset(scope);
    }))
}

/// `limiter_sweep(limiter) :: {:ok, removed}` — drops idle windows.
/// `DirtyCpu`: with 100k keys this walks every shard.
#[rustler::nif(schedule = "DirtyCpu")]
fn limiter_sweep(limiter: ResourceArc<LimiterResource>) -> (rustler::Atom, usize) {
    (atoms::ok(), limiter.0.sweep())
}

/// `limiter_info(limiter) :: %{keys: n, memory_bytes: n}`
#[rustler::nif]
fn limiter_info(limiter: ResourceArc<LimiterResource>) -> HashMap<rustler::Atom, usize> {
    HashMap::from([
        (atoms::keys(), limiter.0.len()),
        (atoms::memory_bytes(), limiter.0.approx_memory_bytes()),
    ])
}
