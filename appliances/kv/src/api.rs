//! The HTTP side: requests to [`Op`]s, [`Reply`]s to responses, and the deferring
//! [`KvHandler`].
//!
//! `GET /healthz` answers `200 ok` without reaching the store: the handler only
//! runs once the store is mounted (`kv` mounts it before it listens), so answering
//! at all means the store is there.

use alloc::string::String;
use alloc::vec::Vec;

use oasis::http::{Handler, Method, Request, ResponseWriter, StatusCode};
use oasis::storage::{KvError, MAX_KEY_LEN, MAX_VALUE_LEN};

/// Path prefix of the key space.
pub const KV_PREFIX: &str = "/kv/";
/// The path that stops the service (only with `--allow-shutdown`).
pub const SHUTDOWN_PATH: &str = "/shutdown";
/// The health check (`GET`/`HEAD`: `200 ok`).
pub const HEALTH_PATH: &str = "/healthz";

const CREATED: StatusCode = StatusCode::Other(201, "Created");
const INSUFFICIENT_STORAGE: StatusCode = StatusCode::Other(507, "Insufficient Storage");
const UNAVAILABLE: StatusCode = StatusCode::Other(503, "Service Unavailable");

/// A store operation, owned, to send to the store task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Read a value.
    Get {
        /// The key.
        key: String,
    },
    /// Set a value.
    Put {
        /// The key.
        key: String,
        /// The value.
        value: Vec<u8>,
    },
    /// Remove a key.
    Delete {
        /// The key.
        key: String,
    },
    /// List keys with a prefix.
    List {
        /// The prefix (empty: all keys).
        prefix: String,
    },
    /// Stop the service after answering.
    Shutdown,
}

impl Op {
    /// Whether the operation changes the store.
    pub fn is_write(&self) -> bool {
        matches!(self, Op::Put { .. } | Op::Delete { .. })
    }
}

/// The store task's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// A value.
    Value(Vec<u8>),
    /// A new key was stored (durably).
    Created,
    /// A key was replaced or removed (durably).
    Done,
    /// No such key.
    NotFound,
    /// Keys, in byte order.
    Keys(Vec<String>),
    /// The service stops after this answer.
    Stopping,
    /// A request the handler answers (the health check) or refuses before reaching
    /// the store.
    Refused(StatusCode, &'static str),
    /// The store failed.
    Failed(KvError),
}

/// Decodes `%XX` escapes; `None` for a bad escape or a result that is not UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            let hex = b.get(i + 1..i + 3)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            let hex = core::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(c);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn refused(status: StatusCode, why: &'static str) -> Reply {
    Reply::Refused(status, why)
}

/// Turns a request into a store operation, or the answer that refuses it.
pub fn parse(req: &Request<'_>, allow_shutdown: bool) -> Result<Op, Reply> {
    let path = req.path();
    if path == HEALTH_PATH {
        return Err(match req.method() {
            Method::Get | Method::Head => refused(StatusCode::Ok, "ok\n"),
            _ => refused(StatusCode::MethodNotAllowed, "GET or HEAD\n"),
        });
    }
    if allow_shutdown && path == SHUTDOWN_PATH {
        return match req.method() {
            Method::Post => Ok(Op::Shutdown),
            _ => Err(refused(StatusCode::MethodNotAllowed, "POST only\n")),
        };
    }
    let Some(raw_key) = path.strip_prefix(KV_PREFIX) else {
        return Err(refused(
            StatusCode::NotFound,
            "not found: keys live under /kv/\n",
        ));
    };
    if raw_key.is_empty() {
        if !matches!(req.method(), Method::Get | Method::Head) {
            return Err(refused(
                StatusCode::MethodNotAllowed,
                "GET /kv/?prefix=P lists keys\n",
            ));
        }
        let mut prefix = String::new();
        for pair in req.query().unwrap_or("").split('&') {
            if let Some(v) = pair.strip_prefix("prefix=") {
                prefix = percent_decode(v)
                    .ok_or_else(|| refused(StatusCode::BadRequest, "bad escape in prefix\n"))?;
            }
        }
        return Ok(Op::List { prefix });
    }
    let key = percent_decode(raw_key)
        .ok_or_else(|| refused(StatusCode::BadRequest, "bad escape or non-UTF-8 key\n"))?;
    if key.len() > MAX_KEY_LEN {
        return Err(refused(
            StatusCode::BadRequest,
            "key longer than 255 bytes\n",
        ));
    }
    match req.method() {
        Method::Get | Method::Head => Ok(Op::Get { key }),
        Method::Put => {
            let body = req.body();
            if body.len() > MAX_VALUE_LEN {
                return Err(refused(
                    StatusCode::ContentTooLarge,
                    "value larger than 1 MiB\n",
                ));
            }
            // Fallible: under memory pressure the copy is refused, never an abort.
            let mut value = Vec::new();
            value.try_reserve_exact(body.len()).map_err(|_| {
                refused(
                    StatusCode::ServiceUnavailable,
                    "out of memory: try again later\n",
                )
            })?;
            value.extend_from_slice(body);
            Ok(Op::Put { key, value })
        }
        Method::Delete => Ok(Op::Delete { key }),
        _ => Err(refused(
            StatusCode::MethodNotAllowed,
            "GET, HEAD, PUT or DELETE\n",
        )),
    }
}

/// Writes `reply` as the response.
pub fn render(reply: &Reply, resp: &mut ResponseWriter) {
    let text = |resp: &mut ResponseWriter, status, body: &str| {
        resp.set_status(status);
        resp.header("Content-Type", b"text/plain");
        resp.body_bytes(body.as_bytes());
    };
    match reply {
        Reply::Value(v) => {
            resp.set_status(StatusCode::Ok);
            resp.header("Content-Type", b"application/octet-stream");
            resp.body_bytes(v);
        }
        Reply::Created => resp.set_status(CREATED),
        Reply::Done => resp.set_status(StatusCode::NoContent),
        Reply::NotFound => text(resp, StatusCode::NotFound, "no such key\n"),
        Reply::Keys(keys) => {
            resp.set_status(StatusCode::Ok);
            resp.header("Content-Type", b"text/plain");
            let body = resp.body_mut();
            for k in keys {
                body.extend_from_slice(k.as_bytes());
                body.push(b'\n');
            }
        }
        Reply::Stopping => {
            text(resp, StatusCode::Ok, "stopping\n");
            resp.close();
        }
        Reply::Refused(status, why) => text(resp, *status, why),
        Reply::Failed(e) => {
            let status = match e {
                KvError::Full { .. } => INSUFFICIENT_STORAGE,
                KvError::ValueTooLarge { .. } | KvError::BatchTooLarge { .. } => {
                    StatusCode::ContentTooLarge
                }
                KvError::EmptyKey | KvError::KeyTooLong { .. } => StatusCode::BadRequest,
                KvError::NotFound { .. } => StatusCode::NotFound,
                _ => UNAVAILABLE,
            };
            resp.set_status(status);
            resp.header("Content-Type", b"text/plain");
            let body = resp.body_mut();
            let _ = core::fmt::write(&mut BodyWriter(body), format_args!("{e}\n"));
        }
    }
}

struct BodyWriter<'a>(&'a mut Vec<u8>);

impl core::fmt::Write for BodyWriter<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// The per-connection handler: refuses what it can at once, defers store operations.
///
/// Protocol with the connection task: on [`Action::Defer`](oasis::http::Action::Defer)
/// take the operation with [`take_op`](KvHandler::take_op), have the store run it,
/// give the answer to [`set_reply`](KvHandler::set_reply) and poll again.
#[derive(Debug, Default)]
pub struct KvHandler {
    allow_shutdown: bool,
    op: Option<Op>,
    reply: Option<Reply>,
    stopping: bool,
}

impl KvHandler {
    /// A handler; `allow_shutdown` enables `POST /shutdown`.
    pub fn new(allow_shutdown: bool) -> Self {
        KvHandler {
            allow_shutdown,
            ..Self::default()
        }
    }

    /// The operation of the deferred request.
    pub fn take_op(&mut self) -> Option<Op> {
        self.op.take()
    }

    /// The store's answer to the deferred request.
    pub fn set_reply(&mut self, reply: Reply) {
        self.reply = Some(reply);
    }

    /// Whether a shutdown was answered (the caller exits after writing it).
    pub fn stopping(&self) -> bool {
        self.stopping
    }
}

impl Handler for KvHandler {
    fn handle(&mut self, req: &Request<'_>, resp: &mut ResponseWriter) {
        if let Some(reply) = self.reply.take() {
            self.stopping |= reply == Reply::Stopping;
            return render(&reply, resp);
        }
        match parse(req, self.allow_shutdown) {
            Ok(op) => {
                self.op = Some(op);
                resp.defer();
            }
            Err(reply) => render(&reply, resp),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oasis::http::{Action, Connection, Limits};

    /// Feeds `input`, answering deferred operations with `answer`; returns the output.
    fn exchange(
        h: &mut KvHandler,
        input: &[u8],
        answer: impl Fn(Op) -> Reply,
    ) -> (String, Vec<Op>) {
        let mut conn = Connection::new(Limits {
            body: MAX_VALUE_LEN,
            ..Limits::default()
        });
        let mut rest = input;
        let mut out = Vec::new();
        let mut ops = Vec::new();
        loop {
            match conn.poll(h, Some(1_700_000_000)) {
                Action::Write => {
                    let o = conn.output();
                    out.extend_from_slice(o.head);
                    out.extend_from_slice(o.body);
                    let n = o.len();
                    conn.advance(n);
                }
                Action::Read if !rest.is_empty() => {
                    let n = conn.feed(rest);
                    rest = &rest[n..];
                }
                Action::Read | Action::Close => break,
                Action::Defer => {
                    let op = h.take_op().expect("deferred without an op");
                    ops.push(op.clone());
                    h.set_reply(answer(op));
                }
            }
        }
        (String::from_utf8_lossy(&out).into_owned(), ops)
    }

    #[test]
    fn requests_become_operations() {
        let mut h = KvHandler::new(false);
        let input = b"PUT /kv/a%2Fb HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nxyz\
                      GET /kv/k HTTP/1.1\r\nHost: x\r\n\r\n\
                      DELETE /kv/k HTTP/1.1\r\nHost: x\r\n\r\n\
                      GET /kv/?prefix=us%65r HTTP/1.1\r\nHost: x\r\n\r\n";
        let (out, ops) = exchange(&mut h, input, |op| match op {
            Op::Put { .. } => Reply::Created,
            Op::Get { .. } => Reply::Value(b"val".to_vec()),
            Op::Delete { .. } => Reply::Done,
            Op::List { .. } => Reply::Keys(vec!["user1".into(), "user2".into()]),
            Op::Shutdown => Reply::Stopping,
        });
        assert_eq!(
            ops,
            [
                Op::Put {
                    key: "a/b".into(),
                    value: b"xyz".to_vec()
                },
                Op::Get { key: "k".into() },
                Op::Delete { key: "k".into() },
                Op::List {
                    prefix: "user".into()
                },
            ]
        );
        let statuses: Vec<&str> = out
            .match_indices("HTTP/1.1 ")
            .map(|(i, _)| &out[i + 9..i + 12])
            .collect();
        assert_eq!(statuses, ["201", "200", "204", "200"]);
        assert!(out.contains("application/octet-stream"));
        assert!(out.contains("\r\n\r\nval"));
        assert!(out.ends_with("user1\nuser2\n"), "{out}");
    }

    #[test]
    fn bad_requests_never_reach_the_store() {
        let cases: [(&[u8], &str); 7] = [
            (b"GET /other HTTP/1.1\r\nHost: x\r\n\r\n", "404"),
            (
                b"POST /kv/k HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
                "405",
            ),
            (
                b"PUT /kv/ HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
                "405",
            ),
            (b"GET /kv/%zz HTTP/1.1\r\nHost: x\r\n\r\n", "400"),
            (b"GET /kv/%ff HTTP/1.1\r\nHost: x\r\n\r\n", "400"),
            (
                b"PUT /kv/k HTTP/1.1\r\nHost: x\r\nContent-Length: 1048577\r\n\r\n",
                "413",
            ),
            (
                b"POST /shutdown HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
                "404",
            ),
        ];
        for (input, status) in cases {
            let mut h = KvHandler::new(false);
            let (out, ops) = exchange(&mut h, input, |_| panic!("reached the store"));
            assert!(ops.is_empty());
            assert_eq!(&out[9..12], status, "{}", String::from_utf8_lossy(input));
        }
        let long = alloc::format!("GET /kv/{} HTTP/1.1\r\nHost: x\r\n\r\n", "k".repeat(256));
        let (out, _) = exchange(&mut KvHandler::new(false), long.as_bytes(), |_| panic!());
        assert_eq!(&out[9..12], "400");
    }

    #[test]
    fn health_check_answers_without_the_store() {
        let mut h = KvHandler::new(false);
        let input = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n\
                      HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n\
                      PUT /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n\
                      GET /healthz/x HTTP/1.1\r\nHost: x\r\n\r\n";
        let (out, ops) = exchange(&mut h, input, |_| panic!("reached the store"));
        assert!(ops.is_empty());
        let statuses: Vec<&str> = out
            .match_indices("HTTP/1.1 ")
            .map(|(i, _)| &out[i + 9..i + 12])
            .collect();
        assert_eq!(statuses, ["200", "200", "405", "404"]);
        let first = out.split("HTTP/1.1 ").nth(1).unwrap();
        assert!(first.contains("text/plain"), "{first}");
        assert!(first.ends_with("\r\n\r\nok\n"), "{first}");
        // HEAD: the same head, no body.
        let second = out.split("HTTP/1.1 ").nth(2).unwrap();
        assert!(second.ends_with("\r\n\r\n"), "{second}");
    }

    #[test]
    fn store_errors_map_to_statuses() {
        let mut h = KvHandler::new(true);
        let input = b"PUT /kv/a HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n1\
                      PUT /kv/b HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n2\
                      GET /kv/c HTTP/1.1\r\nHost: x\r\n\r\n\
                      POST /shutdown HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n\
                      GET /kv/never HTTP/1.1\r\nHost: x\r\n\r\n";
        let (out, ops) = exchange(&mut h, input, |op| match op {
            Op::Put { key, .. } if key == "a" => Reply::Failed(KvError::Full {
                needed: 9,
                available: 8,
            }),
            Op::Put { .. } => Reply::Failed(KvError::Poisoned),
            Op::Get { .. } => Reply::NotFound,
            _ => Reply::Stopping,
        });
        assert_eq!(ops.len(), 4, "the request after shutdown is not served");
        let statuses: Vec<&str> = out
            .match_indices("HTTP/1.1 ")
            .map(|(i, _)| &out[i + 9..i + 12])
            .collect();
        assert_eq!(statuses, ["507", "503", "404", "200"]);
        assert!(h.stopping());
        assert!(out.contains("store full: 9 sectors needed, 8 available"));
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b%2f").as_deref(), Some("a b/"));
        assert_eq!(percent_decode("%e2%82%ac").as_deref(), Some("€"));
        assert_eq!(percent_decode("%"), None);
        assert_eq!(percent_decode("%4"), None);
        assert_eq!(percent_decode("%+1"), None);
        assert_eq!(percent_decode("%c3"), None);
        assert_eq!(percent_decode("").as_deref(), Some(""));
    }
}
