//! Sliding-window rate limiter (stub).
