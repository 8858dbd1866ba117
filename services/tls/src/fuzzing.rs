//! Fuzz-target bodies (`fuzz/`, and `tests/fuzz_replay.rs` on stable): every input
//! must give an error or a value, never a panic or a hang.

use alloc::vec::Vec;
use core::future::Future;
use core::pin::pin;
use core::task::{Context, Poll, Waker};

use crate::{Identity, TlsConfig};

/// A test-only certificate and key (`testdata/`): public, never to be served.
pub const TEST_CERT: &[u8] = include_bytes!("../testdata/TEST-ONLY-localhost.pem");
/// The test-only certificate's private key.
pub const TEST_KEY: &[u8] = include_bytes!("../testdata/TEST-ONLY-localhost-key.pem");

/// Certificate and key parsing: the validity walk, and `Identity::load` with the
/// input as the certificate (PEM or DER), as the key, and split between both.
pub fn certificate(data: &[u8]) {
    let _ = crate::validity(data);
    let _ = Identity::load(data, TEST_KEY, Some(1_800_000_000));
    let _ = Identity::load(TEST_CERT, data, Some(1_800_000_000));
    let mid = data.len() / 2;
    let (a, b) = data.split_at(mid);
    let _ = Identity::load(a, b, None);
}

/// A stream that yields `input` in chunks of `chunk` bytes, then end of file, and
/// swallows what is written.
struct Script<'a> {
    input: &'a [u8],
    chunk: usize,
    written: usize,
}

impl embedded_io::ErrorType for Script<'_> {
    type Error = embedded_io::ErrorKind;
}

impl embedded_io_async::Read for Script<'_> {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        let n = self.input.len().min(buf.len()).min(self.chunk.max(1));
        let (now, rest) = self.input.split_at(n);
        buf.get_mut(..n).unwrap_or_default().copy_from_slice(now);
        self.input = rest;
        Ok(n)
    }
}

impl embedded_io_async::Write for Script<'_> {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        self.written += buf.len();
        Ok(buf.len())
    }

    async fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// Polls a future whose I/O never waits to completion.
fn run<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

fn config() -> Option<TlsConfig> {
    let id = Identity::load(TEST_CERT, TEST_KEY, None).ok()?;
    TlsConfig::new(alloc::vec![id], || Some(1_800_000_000)).ok()
}

/// A client's bytes to the server: the first byte picks the read size (so records
/// arrive split at every boundary), the rest is what the client sends. The
/// handshake must fail or succeed; after success, reads drain the input. Returns
/// how many bytes the server sent (a ServerHello flight for a real ClientHello).
pub fn client_bytes(data: &[u8]) -> usize {
    let Some(config) = config() else { return 0 };
    let Some((&chunk, input)) = data.split_first() else {
        return 0;
    };
    let mut io = Script {
        input,
        chunk: usize::from(chunk),
        written: 0,
    };
    run(async {
        use embedded_io_async::{Read, Write};
        match crate::accept(&mut io, &config).await {
            Err(_) => {}
            Ok(mut tls) => {
                let mut buf: Vec<u8> = alloc::vec![0; 512];
                while let Ok(n) = tls.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    let _ = tls.write(&buf[..n]).await;
                }
                let _ = tls.close_notify().await;
            }
        }
    });
    io.written
}
