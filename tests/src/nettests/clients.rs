//! Host-side network clients for tests against a guest: TCP echo (one or many
//! concurrent connections, byte-for-byte checks), UDP echo, discard, and quitters.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use oasis_testkit::pattern;

/// Describes where `got` first differs from `want`.
pub fn first_difference(want: &[u8], got: &[u8]) -> Option<String> {
    if want == got {
        return None;
    }
    let at = want
        .iter()
        .zip(got)
        .position(|(a, b)| a != b)
        .unwrap_or(want.len().min(got.len()));
    Some(format!(
        "sent {} bytes, got {} back; first difference at offset {at} (sent {:?}, got {:?})",
        want.len(),
        got.len(),
        want.get(at..(at + 8).min(want.len())),
        got.get(at..(at + 8).min(got.len())),
    ))
}

/// Connects and proves the whole path works with a one-byte echo round trip.
/// Over QEMU user networking a completed `connect` only means the host kernel
/// queued the connection for slirp (see [`tcp_echo_many`]); the round trip means
/// slirp accepted it and the guest answered.
pub fn connect_echoing(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, String> {
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let local = s.local_addr().map_err(|e| e.to_string())?;
    let mut one = [0u8; 1];
    s.write_all(&[0xA5])
        .and_then(|()| s.read_exact(&mut one))
        .map_err(|e| format!("{local}: first byte: {e}"))?;
    if one != [0xA5] {
        return Err(format!("{local}: first byte came back as {:#04x}", one[0]));
    }
    Ok(s)
}

/// Echoes `data` on `s`: writes from a second thread (so neither side's buffers
/// can deadlock), half-closes, reads until the server closes, and checks the bytes
/// that came back are exactly `data`.
pub fn echo_on(s: TcpStream, data: &[u8]) -> Result<(), String> {
    let local = s.local_addr().map_err(|e| e.to_string())?;
    let mut w = s.try_clone().map_err(|e| e.to_string())?;
    let mut r = s;
    let back = std::thread::scope(|sc| {
        let writer = sc.spawn(move || -> Result<(), String> {
            for chunk in data.chunks(8192) {
                w.write_all(chunk).map_err(|e| format!("write: {e}"))?;
            }
            w.shutdown(Shutdown::Write)
                .map_err(|e| format!("shutdown: {e}"))
        });
        let mut back = Vec::with_capacity(data.len());
        let read = r
            .read_to_end(&mut back)
            .map_err(|e| format!("read after {} bytes: {e}", back.len()));
        let wrote = writer
            .join()
            .unwrap_or_else(|_| Err("writer panicked".into()));
        wrote?;
        read.map(|_| back)
    })
    .map_err(|e| format!("{local}: {e}"))?;
    match first_difference(data, &back) {
        None => Ok(()),
        Some(d) => Err(format!("{local}: {d}")),
    }
}

/// One TCP echo exchange of `data` on a new connection ([`connect_echoing`] +
/// [`echo_on`]).
pub fn tcp_echo(addr: SocketAddr, data: &[u8], timeout: Duration) -> Result<(), String> {
    echo_on(connect_echoing(addr, timeout)?, data)
}

/// How [`tcp_echo_many`] opens its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connect {
    /// All at once.
    Together,
    /// One after another (retrying a failed one), then all stream together. QEMU's
    /// user networking listens on forwarded ports with a backlog of 1: a burst of
    /// connects overflows the host kernel's accept queue, which falls back to SYN
    /// cookies and then resets connections whose cookies fail.
    OneByOne,
}

/// `clients` concurrent TCP echo exchanges of `bytes` each (distinct data per
/// client; all connections open before any streams), plus `quitters` clients that
/// connect and close at once (some after sending a few bytes they never read back)
/// while the others stream. Returns every failure, or `Ok` when all clients got
/// their data back intact.
pub fn tcp_echo_many(
    addr: SocketAddr,
    clients: usize,
    bytes: usize,
    quitters: usize,
    connect: Connect,
    timeout: Duration,
) -> Result<(), String> {
    let start = std::sync::Barrier::new(clients + quitters);
    let one_by_one = Mutex::new(());
    let errors: Vec<String> = std::thread::scope(|sc| {
        let workers: Vec<_> = (0..clients)
            .map(|i| {
                let (start, one_by_one) = (&start, &one_by_one);
                sc.spawn(move || {
                    let data = pattern(i as u64, bytes);
                    let conn = match connect {
                        Connect::Together => connect_echoing(addr, timeout),
                        Connect::OneByOne => {
                            let _turn = one_by_one.lock().unwrap_or_else(|e| e.into_inner());
                            let mut r = connect_echoing(addr, timeout);
                            for _ in 0..4 {
                                if r.is_ok() {
                                    break;
                                }
                                r = connect_echoing(addr, timeout);
                            }
                            r
                        }
                    };
                    start.wait();
                    conn.and_then(|s| echo_on(s, &data))
                        .map_err(|e| format!("client {i}: {e}"))
                })
            })
            .collect();
        let quitting: Vec<_> = (0..quitters)
            .map(|i| {
                let start = &start;
                sc.spawn(move || {
                    start.wait();
                    // Spread over the exchange, not all at its start.
                    std::thread::sleep(Duration::from_millis(20 * i as u64));
                    connect_and_close(addr, i, timeout).map_err(|e| format!("quitter {i}: {e}"))
                })
            })
            .collect();
        workers
            .into_iter()
            .chain(quitting)
            .filter_map(|h| h.join().unwrap_or_else(|_| Err("panicked".into())).err())
            .collect()
    });
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} of {} clients failed:\n{}",
            errors.len(),
            clients + quitters,
            errors.join("\n")
        ))
    }
}

/// A client that connects and leaves at once: variant `i % 3` closes without a
/// byte, half-closes both ways, or sends a few bytes and closes without reading the
/// echo (which makes the server's reply meet a closed socket).
pub fn connect_and_close(addr: SocketAddr, i: usize, timeout: Duration) -> Result<(), String> {
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect: {e}"))?;
    match i % 3 {
        0 => {}
        1 => {
            let _ = s.shutdown(Shutdown::Both);
        }
        _ => {
            let _ = s.write_all(b"goodbye");
        }
    }
    drop(s);
    Ok(())
}

/// UDP echo: one datagram per entry of `sizes` (distinct contents), each retried up
/// to 5 times because UDP may drop; replies to earlier tries are skipped.
pub fn udp_echo(addr: SocketAddr, sizes: &[usize]) -> Result<(), String> {
    let s = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| e.to_string())?;
    s.connect(addr).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| e.to_string())?;
    let sent: Vec<Vec<u8>> = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| pattern(1000 + i as u64, n))
        .collect();
    let mut buf = vec![0u8; 65536];
    'datagram: for (i, d) in sent.iter().enumerate() {
        for _try in 0..5 {
            s.send(d).map_err(|e| format!("send datagram {i}: {e}"))?;
            let deadline = Instant::now() + Duration::from_secs(2);
            while Instant::now() < deadline {
                let n = match s.recv(&mut buf) {
                    Ok(n) => n,
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) =>
                    {
                        break;
                    }
                    Err(e) => return Err(format!("recv datagram {i}: {e}")),
                };
                let got = &buf[..n];
                if got == &d[..] {
                    continue 'datagram;
                }
                if !sent[..i].iter().any(|old| old == got) {
                    return Err(format!(
                        "datagram {i}: {}",
                        first_difference(d, got).unwrap_or_default()
                    ));
                }
            }
        }
        return Err(format!(
            "datagram {i} ({} bytes): no echo after 5 tries",
            d.len()
        ));
    }
    Ok(())
}

/// Sends `bytes` to a discard service and checks it closes the connection cleanly
/// (no byte back) once we half-close.
pub fn tcp_discard(addr: SocketAddr, bytes: usize, timeout: Duration) -> Result<(), String> {
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let data = pattern(7, bytes);
    s.write_all(&data).map_err(|e| format!("write: {e}"))?;
    s.shutdown(Shutdown::Write).map_err(|e| e.to_string())?;
    let mut back = Vec::new();
    s.read_to_end(&mut back)
        .map_err(|e| format!("waiting for close: {e}"))?;
    if back.is_empty() {
        Ok(())
    } else {
        Err(format!("discard sent {} bytes back", back.len()))
    }
}

/// Whether process `pid` still runs (exists and is not a zombie).
pub fn process_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next().map(|st| st != "Z"))
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_difference_names_the_offset() {
        assert!(first_difference(b"abc", b"abc").is_none());
        let d = first_difference(b"abcd", b"abXd").unwrap();
        assert!(d.contains("offset 2"), "{d}");
    }
}
