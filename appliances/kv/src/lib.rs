//! `kv`: an HTTP key-value service on the crash-safe [`LogStore`](oasis::storage::LogStore).
//!
//! # API
//!
//! | request | answer |
//! |---|---|
//! | `PUT /kv/KEY` with the value as body | `201 Created` (new key) or `204 No Content` (replaced), after the write is durable |
//! | `GET /kv/KEY` (or `HEAD`) | `200` with the value (`application/octet-stream`), `404` if absent |
//! | `DELETE /kv/KEY` | `204` after the removal is durable, `404` if absent |
//! | `GET /kv/?prefix=P` (or `GET /kv/`) | `200`, `text/plain`, the matching keys one per line, in byte order |
//!
//! `KEY` is the rest of the path, percent-decoded (so it may contain `/` or `?` when
//! escaped), 1..=[`MAX_KEY_LEN`] bytes of UTF-8; otherwise `400`. Values over
//! [`MAX_VALUE_LEN`] get `413` (the connection refuses the body before reading it
//! when `Content-Length` says so). A full store answers `507`; after a device error
//! the store refuses writes until the service restarts (`503`), as
//! [`LogStore`](oasis::storage::LogStore) requires. Other paths → `404`, other methods
//! → `405`.
//!
//! # Durability
//!
//! A `2xx` to `PUT`/`DELETE` is sent only after the store's commit returned, which
//! is after the device flushed the record. Writes that arrive together are committed
//! as one batch with one flush (group commit); each still gets its own answer.
//!
//! # Structure
//!
//! The store lives in one task ([`service::Store::run`]); connection tasks parse
//! requests with [`api::KvHandler`] (an `oasis-http` handler that
//! [defers](oasis::http::ResponseWriter::defer) every store operation), send the
//! [`Op`] over a [`service::Client`], await the [`Reply`] and let the handler render
//! it. The store is single-task because its futures (device requests) are not
//! `Send`; the messages are.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod api;
// Fuzz-target bodies: compiled only for tests and the fuzz targets (feature
// `fuzzing`, which the crate's own tests and `fuzz/Cargo.toml` turn on).
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
pub mod service;

pub use api::{HEALTH_PATH, KvHandler, Op, Reply};
pub use oasis::storage::{MAX_KEY_LEN, MAX_VALUE_LEN};
pub use service::{Client, Store, channel};
