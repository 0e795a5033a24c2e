//! Rate-limiter NIFs. Each limiter is its own resource (no global state, so
//! tests can run isolated limiters side by side). Checks are O(1) under a
//! sharded lock and run on the normal scheduler; operation names and keys
//! over [`rate_limit::MAX_KEY_LEN`] bytes are refused with
//! `{:error, {:key_too_large, size}}` before anything proportional to their
//! size is done, so no argument can make a call long.

use crate::atoms;
use crate::error::{Done, NifError};
use jido_core::rate_limit::{self, Decision, Quota, RateLimiter};
use rustler::{Binary, Encoder, Env, Error as RustlerError, ResourceArc, Term};
use std::collections::HashMap;

/// A rate limiter held by the VM.
pub struct LimiterResource(pub RateLimiter);

#[rustler::resource_impl]
impl rustler::Resource for LimiterResource {}

/// A limiter decision: `{:ok, remaining}` or
/// `{:error, {:rate_limit_exceeded, retry_after_ms}}`.
pub struct DecisionTerm(Decision);

impl Encoder for DecisionTerm {
    fn encode<'a>(&self, env: Env<'a>) -> Term<'a> {
        match self.0 {
            Decision::Allowed { remaining } => (atoms::ok(), remaining).encode(env),
            Decision::Denied { retry_after } => {
                // Round up: "retry in 0 ms" would invite an immediate retry
                // that is still refused.
                let ms = retry_after.as_nanos().div_ceil(1_000_000).max(1);
                let ms = u64::try_from(ms).unwrap_or(u64::MAX);
                (atoms::error(), (atoms::rate_limit_exceeded(), ms)).encode(env)
            }
        }
    }
}

/// A decision, or the refusal of an oversized key.
pub struct Outcome(Result<Decision, NifError>);

impl Encoder for Outcome {
    fn encode<'a>(&self, env: Env<'a>) -> Term<'a> {
        match &self.0 {
            Ok(decision) => DecisionTerm(*decision).encode(env),
            Err(e) => (atoms::error(), e).encode(env),
        }
    }
}

/// The operation name and key of a call, once the key rule of the core
/// allows them: `Ok(Err(_))` for an oversized one (an error tuple), `Err`
/// (badarg) for an operation name that is not UTF-8.
#[allow(clippy::type_complexity)]
fn checked<'b>(
    op: &'b [u8],
    key: &'b [u8],
) -> Result<Result<(&'b str, &'b [u8]), NifError>, RustlerError> {
    if let Err(e) = rate_limit::check_key(op, key) {
        return Ok(Err(e.into()));
    }
    let op = std::str::from_utf8(op).map_err(|_| RustlerError::BadArg)?;
    Ok(Ok((op, key)))
}

/// `{limit, window_ms}` with both positive; anything else is a programmer
/// error (badarg).
fn quota((limit, window_ms): (u32, u64)) -> Result<Quota, RustlerError> {
    Quota::per_window(limit, window_ms).ok_or(RustlerError::BadArg)
}

/// The per-key quota and the optional global one of a limiter call.
fn quotas(
    per_key: (u32, u64),
    global: Option<(u32, u64)>,
) -> Result<(Quota, Option<Quota>), RustlerError> {
    Ok((quota(per_key)?, global.map(quota).transpose()?))
}

/// `limiter_new() :: limiter`
#[rustler::nif]
fn limiter_new() -> ResourceArc<LimiterResource> {
    ResourceArc::new(LimiterResource(RateLimiter::default()))
}

/// `limiter_check_and_record(limiter, op, key, {limit, window_ms}, {limit, window_ms} | nil)`
/// — one atomic step over the key's and the operation's global window.
#[rustler::nif]
fn limiter_check_and_record(
    limiter: ResourceArc<LimiterResource>,
    op: Binary,
    key: Binary,
    per_key: (u32, u64),
    global: Option<(u32, u64)>,
) -> Result<Outcome, RustlerError> {
    let (q, g) = quotas(per_key, global)?;
    Ok(Outcome(checked(op.as_slice(), key.as_slice())?.map(
        |(op, key)| limiter.0.check_and_record(op, key, q, g),
    )))
}

/// `limiter_check(limiter, op, key, quota, global | nil)` — like
/// check-and-record without recording.
#[rustler::nif]
fn limiter_check(
    limiter: ResourceArc<LimiterResource>,
    op: Binary,
    key: Binary,
    per_key: (u32, u64),
    global: Option<(u32, u64)>,
) -> Result<Outcome, RustlerError> {
    let (q, g) = quotas(per_key, global)?;
    Ok(Outcome(
        checked(op.as_slice(), key.as_slice())?.map(|(op, key)| limiter.0.check(op, key, q, g)),
    ))
}

/// `limiter_record(limiter, op, key, quota, global | nil) :: :ok | {:error, {:key_too_large, size}}`
/// — counts an attempt unconditionally.
#[rustler::nif]
fn limiter_record(
    limiter: ResourceArc<LimiterResource>,
    op: Binary,
    key: Binary,
    per_key: (u32, u64),
    global: Option<(u32, u64)>,
) -> Result<Done, RustlerError> {
    let (q, g) = quotas(per_key, global)?;
    Ok(Done(
        checked(op.as_slice(), key.as_slice())?.map(|(op, key)| limiter.0.record(op, key, q, g)),
    ))
}

/// `limiter_reset(limiter, op, key | nil) :: :ok | {:error, {:key_too_large, size}}`
/// — `nil` resets the operation's global window.
#[rustler::nif]
fn limiter_reset(
    limiter: ResourceArc<LimiterResource>,
    op: Binary,
    key: Option<Binary>,
) -> Result<Done, RustlerError> {
    let key_bytes = key.as_ref().map_or(&[][..], |k| k.as_slice());
    let (op, key_bytes) = match checked(op.as_slice(), key_bytes)? {
        Ok(pair) => pair,
        Err(e) => return Ok(Done(Err(e))),
    };
    // Whether there was anything to forget does not matter to callers.
    let _had_entry = match key {
        Some(_) => limiter.0.reset(op, key_bytes),
        None => limiter.0.reset_global(op),
    };
    Ok(Done(Ok(())))
}

/// `limiter_sweep(limiter) :: {:ok, removed}` — drops idle keys. `DirtyCpu`:
/// with 100k keys this walks every shard.
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
