//! Load-and-verify and sign-and-write of session files (stub).
