//! The code path the `requests` fuzz target and the stable replay test drive: bytes
//! from a client through an `oasis-http` connection and [`KvHandler`], with deferred
//! operations answered by a stand-in store. Checks the handler protocol's invariants.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use oasis::http::{Action, Connection, Limits};

use crate::MAX_VALUE_LEN;
use crate::api::{KvHandler, Op, Reply};

/// Feeds `data` in pieces of a size taken from its first byte; answers every
/// deferred operation; panics if the protocol is broken (a defer without an
/// operation, an endless loop, output that is not HTTP/1.1).
pub fn requests(data: &[u8]) {
    let (piece, input) = match data.split_first() {
        Some((p, rest)) => (usize::from(*p % 64) + 1, rest),
        None => (1, data),
    };
    let mut conn = Connection::new(Limits {
        body: MAX_VALUE_LEN,
        ..Limits::default()
    });
    let mut h = KvHandler::new(data.len().is_multiple_of(2));
    let mut rest = input;
    let mut first = Vec::new();
    let mut ended = false;
    for _ in 0..1_000_000 {
        match conn.poll(&mut h, Some(1_700_000_000)) {
            Action::Write => {
                let out = conn.output();
                assert!(!out.is_empty(), "Write with nothing to write");
                if first.len() < 9 {
                    first.extend(out.head.iter().take(9 - first.len()));
                }
                let n = out.len().min(piece * 3);
                conn.advance(n);
            }
            Action::Read => {
                if rest.is_empty() {
                    assert!(!ended, "Read after eof");
                    ended = true;
                    conn.eof();
                    continue;
                }
                let n = conn.feed(rest.get(..piece.min(rest.len())).unwrap_or_default());
                rest = rest.get(n..).unwrap_or_default();
            }
            Action::Defer => {
                let op = h.take_op().expect("Defer without an operation");
                h.set_reply(answer(op));
            }
            Action::Close => {
                assert!(first.is_empty() || first.starts_with(b"HTTP/1.1 "));
                return;
            }
        }
    }
    panic!("connection did not finish");
}

fn answer(op: Op) -> Reply {
    match op {
        Op::Get { key } => Reply::Value(key.into_bytes()),
        Op::Put { key, value } => {
            assert!(!key.is_empty() && key.len() <= crate::MAX_KEY_LEN);
            assert!(value.len() <= MAX_VALUE_LEN);
            Reply::Created
        }
        Op::Delete { .. } => Reply::NotFound,
        Op::List { prefix } => Reply::Keys(vec![prefix, String::from("k")]),
        Op::Shutdown => Reply::Stopping,
    }
}
