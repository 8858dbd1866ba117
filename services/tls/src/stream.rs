//! The TLS stream: rustls' unbuffered server connection pumped over an async stream.

use alloc::vec::Vec;

use embedded_io::Error as _;
use embedded_io_async::{Read, Write};
use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, InsufficientSizeError};

use crate::{TlsConfig, TlsError};

/// The largest TLS record we accept: a 5-byte header and 2^14 + 2048 bytes of
/// ciphertext (RFC 5246 §6.2.3's TLS 1.2 bound; TLS 1.3's is 2^14 + 256). A handshake
/// message must also fit (it is reassembled in the input buffer): real ClientHellos
/// are under 2 KiB, even with post-quantum key shares.
pub const MAX_INCOMING: usize = 5 + 16_384 + 2_048;
/// Plaintext per record written (TLS's maximum).
const MAX_PLAIN: usize = 16_384;
/// Record header + explicit nonce + tag + content type, with room to spare.
const RECORD_OVERHEAD: usize = 64;
/// The input buffer's first size (a ClientHello fits).
const FIRST_INCOMING: usize = 2_048;
/// Buffers larger than this are released when empty (idle connections hold none).
const KEEP: usize = 0;

/// A server-side TLS connection over `S`, with the same `embedded-io-async` traits.
///
/// Cancellation: [`read`](Read::read) is cancel-safe (no bytes are lost when its
/// future is dropped, e.g. by a timeout). `write` and `flush` are not: a record may
/// have been partly sent; it is completed before anything else is sent, but the
/// caller cannot know how much of its data went. Drop the stream after such a
/// cancellation, as with TCP.
pub struct TlsStream<S> {
    io: S,
    conn: UnbufferedServerConnection,
    incoming: Vec<u8>,
    in_len: usize,
    outgoing: Vec<u8>,
    out_len: usize,
    out_sent: usize,
    /// Decrypted bytes a reader's buffer had no room for, from `stash_pos`.
    stash: Vec<u8>,
    stash_pos: usize,
    peer_closed: bool,
}

impl<S> core::fmt::Debug for TlsStream<S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TlsStream")
            .field("in", &self.in_len)
            .field("out", &(self.out_len - self.out_sent))
            .field("peer_closed", &self.peer_closed)
            .finish()
    }
}

/// Grows `buf` (used as a byte array, `len` = size) to at least `need` bytes,
/// fallibly.
fn grow(buf: &mut Vec<u8>, need: usize) -> Result<(), TlsError> {
    if buf.len() < need {
        buf.try_reserve_exact(need - buf.len())
            .map_err(|_| TlsError::OutOfMemory)?;
        buf.resize(need, 0);
    }
    Ok(())
}

/// Performs the server side of a TLS handshake on `io` and returns the stream,
/// ready for application data. Not time-limited: wrap it in a timeout (the facade's
/// `oasis::tls::accept` does).
pub async fn accept<S: Read + Write>(io: S, config: &TlsConfig) -> Result<TlsStream<S>, TlsError> {
    let conn = UnbufferedServerConnection::new(config.rustls()).map_err(TlsError::Protocol)?;
    let mut s = TlsStream {
        io,
        conn,
        incoming: Vec::new(),
        in_len: 0,
        outgoing: Vec::new(),
        out_len: 0,
        out_sent: 0,
        stash: Vec::new(),
        stash_pos: 0,
        peer_closed: false,
    };
    match s.handshake().await {
        Ok(()) => Ok(s),
        Err(e) => {
            s.send_alert().await;
            Err(e)
        }
    }
}

/// What the caller of [`TlsStream::step`] wants done.
enum Want<'a> {
    /// Complete the handshake.
    Handshake,
    /// Decrypted application data, into this buffer.
    Read(&'a mut [u8]),
    /// This plaintext encrypted into one record.
    Write(&'a [u8]),
    /// A close_notify alert encoded.
    CloseNotify,
}

/// What one step of the state machine produced.
enum Step {
    /// Progress made (records encoded or input consumed): step again after sending.
    Again,
    /// Read more bytes from the peer first.
    Fill,
    /// The handshake is complete.
    Ready,
    /// `n` bytes of application data were copied to the reader, or `n` bytes of the
    /// writer's plaintext were encrypted (0: the close_notify was).
    Done(usize),
    /// The peer sent close_notify, or the connection is closed.
    End,
}

/// Steps a writer may take without sending anything new before we call it a bug in
/// the state machine rather than spin.
const MAX_IDLE_STEPS: usize = 16;

impl<S: Read + Write> TlsStream<S> {
    /// The stream underneath (e.g. to set socket options).
    pub fn get_ref(&self) -> &S {
        &self.io
    }

    /// The stream underneath, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.io
    }

    /// Consumes the stream, returning the one underneath.
    pub fn into_inner(self) -> S {
        self.io
    }

    /// The ALPN protocol agreed on, if any.
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        self.conn.alpn_protocol()
    }

    /// The negotiated protocol version (`0x0304` TLS 1.3, `0x0303` TLS 1.2).
    pub fn protocol_version(&self) -> Option<u16> {
        self.conn.protocol_version().map(u16::from)
    }

    /// One turn of rustls' state machine: encodes what it wants sent into
    /// `outgoing`, copies decrypted data out, encrypts, applies the input discard.
    /// Only synchronous work happens here, so the async callers stay cancel-safe:
    /// they send `outgoing` and read input between steps.
    fn step(&mut self, want: &mut Want<'_>) -> Result<Step, TlsError> {
        let Self {
            conn,
            incoming,
            in_len,
            outgoing,
            out_len,
            out_sent,
            stash,
            stash_pos,
            peer_closed,
            ..
        } = self;
        // Nothing new is encoded behind data still waiting to be sent.
        if *out_sent < *out_len {
            return Ok(Step::Again);
        }
        // Writers pass no input: processing it could only decrypt data (kept for the
        // next read) and make them wait for nothing.
        let input: &mut [u8] = match want {
            Want::Handshake | Want::Read(_) => incoming.get_mut(..*in_len).unwrap_or_default(),
            Want::Write(_) | Want::CloseNotify => &mut [],
        };
        let status = conn.process_tls_records(input);
        let mut discard = status.discard;
        let step = match status.state.map_err(TlsError::Protocol)? {
            ConnectionState::EncodeTlsData(mut e) => {
                loop {
                    let at = *out_len;
                    match e.encode(outgoing.get_mut(at..).unwrap_or_default()) {
                        Ok(n) => {
                            *out_len += n;
                            break;
                        }
                        Err(EncodeError::InsufficientSize(InsufficientSizeError {
                            required_size,
                        })) => grow(outgoing, at + required_size)?,
                        Err(EncodeError::AlreadyEncoded) => break,
                    }
                }
                Step::Again
            }
            // `outgoing` holds the records; the caller sends them before the next
            // step (the check above). rustls only needs to know they go exactly once.
            ConnectionState::TransmitTlsData(t) => {
                t.done();
                Step::Again
            }
            ConnectionState::BlockedHandshake => match want {
                Want::Handshake | Want::Read(_) => Step::Fill,
                Want::Write(_) | Want::CloseNotify => {
                    return Err(TlsError::Protocol(rustls::Error::HandshakeNotComplete));
                }
            },
            ConnectionState::WriteTraffic(mut w) => match want {
                Want::Handshake => Step::Ready,
                // Handshake done and nothing decrypted: a reader needs more input.
                Want::Read(_) => Step::Fill,
                Want::Write(data) => {
                    let chunk = data.get(..data.len().min(MAX_PLAIN)).unwrap_or_default();
                    let mut need = chunk.len() + RECORD_OVERHEAD;
                    loop {
                        grow(outgoing, need)?;
                        match w.encrypt(chunk, outgoing) {
                            Ok(n) => break *out_len = n,
                            Err(EncryptError::InsufficientSize(InsufficientSizeError {
                                required_size,
                            })) if required_size > need => need = required_size,
                            Err(_) => {
                                return Err(TlsError::Protocol(rustls::Error::EncryptError));
                            }
                        }
                    }
                    Step::Done(chunk.len())
                }
                Want::CloseNotify => {
                    grow(outgoing, RECORD_OVERHEAD)?;
                    *out_len = w
                        .queue_close_notify(outgoing)
                        .map_err(|_| TlsError::Protocol(rustls::Error::EncryptError))?;
                    Step::Done(0)
                }
            },
            ConnectionState::ReadTraffic(mut r) => {
                let mut got = 0;
                while let Some(rec) = r.next_record() {
                    let rec = rec.map_err(TlsError::Protocol)?;
                    discard += rec.discard;
                    let dst: &mut [u8] = match want {
                        Want::Read(buf) => buf.get_mut(got..).unwrap_or_default(),
                        _ => &mut [],
                    };
                    let n = rec.payload.len().min(dst.len());
                    let (now, later) = rec.payload.split_at(n);
                    dst.get_mut(..n).unwrap_or_default().copy_from_slice(now);
                    got += n;
                    if !later.is_empty() {
                        if *stash_pos == stash.len() {
                            stash.clear();
                            *stash_pos = 0;
                        }
                        stash
                            .try_reserve(later.len())
                            .map_err(|_| TlsError::OutOfMemory)?;
                        stash.extend_from_slice(later);
                    }
                }
                if got > 0 {
                    Step::Done(got)
                } else {
                    Step::Again
                }
            }
            ConnectionState::PeerClosed => {
                *peer_closed = true;
                match want {
                    Want::Read(_) | Want::Handshake => Step::End,
                    Want::Write(_) | Want::CloseNotify => Step::Again,
                }
            }
            ConnectionState::Closed => match want {
                Want::Write(_) => return Err(TlsError::Io(embedded_io::ErrorKind::BrokenPipe)),
                _ => Step::End,
            },
            // Early data is not enabled; future states: step again.
            _ => Step::Again,
        };
        if discard > 0 {
            incoming.copy_within(discard..*in_len, 0);
            *in_len -= discard;
            if *in_len == 0 && incoming.len() > KEEP {
                *incoming = Vec::new();
            }
        }
        Ok(step)
    }

    async fn handshake(&mut self) -> Result<(), TlsError> {
        loop {
            self.transmit().await?;
            match self.step(&mut Want::Handshake)? {
                Step::Again => {}
                Step::Fill => self.fill().await?,
                Step::Ready => return self.transmit().await,
                Step::Done(_) | Step::End => return Err(TlsError::Eof),
            }
        }
    }

    /// Steps until the writer's `want` is done, sending as it goes.
    async fn write_step(&mut self, mut want: Want<'_>) -> Result<usize, TlsError> {
        for _ in 0..MAX_IDLE_STEPS {
            self.transmit().await?;
            match self.step(&mut want)? {
                Step::Done(n) => {
                    self.transmit().await?;
                    return Ok(n);
                }
                Step::End => return Ok(0),
                Step::Again | Step::Fill | Step::Ready => {}
            }
        }
        Err(TlsError::Protocol(rustls::Error::General(
            "the TLS state machine made no progress".into(),
        )))
    }

    /// Sends whatever `outgoing` holds. Cancel-safe: progress is recorded after every
    /// write, so a dropped future resumes where it stopped.
    async fn transmit(&mut self) -> Result<(), TlsError> {
        while self.out_sent < self.out_len {
            let pending = self
                .outgoing
                .get(self.out_sent..self.out_len)
                .unwrap_or_default();
            match self.io.write(pending).await {
                Ok(0) => return Err(TlsError::Io(embedded_io::ErrorKind::WriteZero)),
                Ok(n) => self.out_sent += n,
                Err(e) => return Err(TlsError::Io(e.kind())),
            }
        }
        self.out_sent = 0;
        self.out_len = 0;
        if self.outgoing.len() > KEEP {
            self.outgoing = Vec::new();
        }
        Ok(())
    }

    /// Reads more ciphertext from the peer. Cancel-safe.
    async fn fill(&mut self) -> Result<(), TlsError> {
        if self.in_len == self.incoming.len() {
            if self.in_len >= MAX_INCOMING {
                return Err(TlsError::TooLarge);
            }
            let next = (self.incoming.len() * 2).clamp(FIRST_INCOMING, MAX_INCOMING);
            grow(&mut self.incoming, next)?;
        }
        let space = self.incoming.get_mut(self.in_len..).unwrap_or_default();
        match self.io.read(space).await {
            Ok(0) => Err(TlsError::Eof),
            Ok(n) => {
                self.in_len += n;
                Ok(())
            }
            Err(e) => Err(TlsError::Io(e.kind())),
        }
    }

    /// Best effort, after a failed handshake: send the alert rustls queued.
    async fn send_alert(&mut self) {
        if let Ok(Step::Again) = self.step(&mut Want::Handshake) {
            let _ = self.transmit().await;
        }
    }

    /// Sends close_notify (the client learns the data is complete, not truncated)
    /// and flushes. The stream underneath stays open: shut it down after.
    pub async fn close_notify(&mut self) -> Result<(), TlsError> {
        self.write_step(Want::CloseNotify).await?;
        self.io.flush().await.map_err(|e| TlsError::Io(e.kind()))
    }
}

impl<S: Read + Write> embedded_io::ErrorType for TlsStream<S> {
    type Error = TlsError;
}

impl<S: Read + Write> Read for TlsStream<S> {
    /// Reads decrypted application data; `Ok(0)` at the peer's close_notify or
    /// when it closed TCP. Cancel-safe.
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, TlsError> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.stash_pos < self.stash.len() {
                let avail = self.stash.get(self.stash_pos..).unwrap_or_default();
                let n = avail.len().min(buf.len());
                buf.get_mut(..n)
                    .unwrap_or_default()
                    .copy_from_slice(avail.get(..n).unwrap_or_default());
                self.stash_pos += n;
                if self.stash_pos == self.stash.len() {
                    self.stash = Vec::new();
                    self.stash_pos = 0;
                }
                return Ok(n);
            }
            if self.peer_closed {
                return Ok(0);
            }
            self.transmit().await?;
            match self.step(&mut Want::Read(buf))? {
                Step::Done(n) => return Ok(n),
                Step::End => return Ok(0),
                Step::Again | Step::Ready => {}
                Step::Fill => match self.fill().await {
                    // TCP closed without close_notify: the end of the data for a
                    // server (HTTP frames its own messages).
                    Err(TlsError::Eof) => return Ok(0),
                    r => r?,
                },
            }
        }
    }
}

impl<S: Read + Write> Write for TlsStream<S> {
    /// Encrypts up to one record of `buf` (16 KiB) and sends it.
    async fn write(&mut self, buf: &[u8]) -> Result<usize, TlsError> {
        if buf.is_empty() {
            return Ok(0);
        }
        match self.write_step(Want::Write(buf)).await? {
            0 => Err(TlsError::Io(embedded_io::ErrorKind::BrokenPipe)),
            n => Ok(n),
        }
    }

    async fn flush(&mut self) -> Result<(), TlsError> {
        self.transmit().await?;
        self.io.flush().await.map_err(|e| TlsError::Io(e.kind()))
    }
}
