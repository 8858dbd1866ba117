//! `#[oasis::main]`.
#![forbid(unsafe_code)]
