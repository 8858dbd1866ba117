//! picoserve's runtime traits over Oasis (a `Socket` for `oasis::net::TcpStream`, a
//! `Timer` over `oasis::time`) and an accept loop for its `!Send` connections.

use core::future::{Future, poll_fn};
use core::pin::pin;
use core::task::Poll;

use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
use oasis::net::{NetError, ReadHalf, TcpListener, TcpStream, WriteHalf};
use picoserve::io::{BaseWrite, ErrorType};
use picoserve::mem::{BorrowedBuffer, BorrowedCursor};
use picoserve::time::Duration;

/// picoserve's runtime marker for Oasis (its `Socket` and `Timer` are generic over
/// one, which is also what lets us implement its `Socket` for our `TcpStream`).
pub struct Oasis;

/// `picoserve::Timer` over `oasis::time::sleep`.
pub struct Timer;

impl picoserve::Timer<Oasis> for Timer {
    async fn delay(&self, duration: Duration) {
        oasis::time::sleep(core::time::Duration::from_millis(duration.as_millis())).await;
    }
}

/// Bytes `write_with` lends picoserve per call (response heads are formatted into
/// it, then copied into the stack's send buffer).
const WRITE_CHUNK: usize = 512;

/// The write half, with picoserve's buffer-lending `Write` on top (the orphan rule
/// wants a local type for a foreign trait without type parameters).
pub struct Writer<'a>(WriteHalf<'a>);

impl ErrorType for Writer<'_> {
    type Error = NetError;
}

impl BaseWrite for Writer<'_> {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, NetError> {
        self.0.write(buf).await
    }

    async fn flush(&mut self) -> Result<(), NetError> {
        self.0.flush().await
    }
}

impl picoserve::io::Write for Writer<'_> {
    async fn write_with<F: FnOnce(BorrowedCursor<'_>) -> R, R>(
        &mut self,
        f: F,
    ) -> Result<R, NetError> {
        let mut chunk = [0u8; WRITE_CHUNK];
        let mut buffer = BorrowedBuffer::new(&mut chunk);
        let out = f(buffer.unfilled());
        self.write_all(buffer.filled()).await?;
        Ok(out)
    }
}

impl picoserve::io::Socket<Oasis> for TcpStream {
    type Error = NetError;
    type ReadHalf<'a> = ReadHalf<'a>;
    type WriteHalf<'a> = Writer<'a>;

    fn split(&mut self) -> (ReadHalf<'_>, Writer<'_>) {
        let (r, w) = TcpStream::split(self);
        (r, Writer(w))
    }

    async fn abort<T: picoserve::Timer<Oasis>>(
        self,
        _: &picoserve::Timeouts,
        _: &T,
    ) -> Result<(), picoserve::Error<NetError>> {
        TcpStream::abort(self);
        Ok(())
    }

    /// Flush and FIN, then drain what the client still sends until it closes too
    /// (closing with unread data would reset the connection and could lose the
    /// response), bounded by the write and read timeouts.
    async fn shutdown<T: picoserve::Timer<Oasis>>(
        mut self,
        timeouts: &picoserve::Timeouts,
        timer: &T,
    ) -> Result<(), picoserve::Error<NetError>> {
        use picoserve::Error::{Read, ReadTimeout, Write, WriteTimeout};
        timer
            .run_with_timeout(timeouts.write, async {
                TcpStream::flush(&mut self).await?;
                TcpStream::shutdown(&mut self).await
            })
            .await
            .map_err(WriteTimeout)?
            .map_err(Write)?;
        let mut sink = [0u8; 128];
        while timer
            .run_with_timeout(timeouts.read_request, self.read(&mut sink))
            .await
            .map_err(ReadTimeout)?
            .map_err(Read)?
            > 0
        {}
        Ok(())
    }
}

/// Accepts connections on `listener` for good and runs `handler(stream)` for each,
/// at most `max_connections` at once (more are reset), all inside the calling task.
///
/// `oasis::net::serve` would run each as its own task, but tasks must be `Send` and
/// picoserve's connection futures are not (it is written for single-threaded
/// executors: `Cell`s inside, `fmt::Arguments` held across awaits). The main task
/// need not be `Send`, so the connections are polled from it, each woken on its own.
pub async fn serve_local<F, Fut>(
    listener: &TcpListener,
    max_connections: usize,
    mut handler: F,
) -> Result<(), NetError>
where
    F: FnMut(TcpStream) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut connections = FuturesUnordered::new();
    loop {
        // `accept` is cancel-safe, but it is never dropped early here anyway.
        let mut accept = pin!(listener.accept());
        let accepted = poll_fn(|cx| {
            while let Poll::Ready(Some(())) = connections.poll_next_unpin(cx) {}
            accept.as_mut().poll(cx)
        })
        .await;
        match accepted {
            Ok((stream, _)) if connections.len() >= max_connections => stream.abort(),
            Ok((stream, _)) => connections.push(handler(stream)),
            Err(e) => oasis::log::warn!("accept: {e}"),
        }
    }
}
