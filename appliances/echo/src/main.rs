//! `echo`: TCP and UDP echo (RFC 862) on port 7 (`--port=N` to change), plus a TCP
//! discard service (RFC 863) on port 9 for throughput measurements. Prints a line
//! containing `ready` with its address once the interface is configured.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use oasis::log::{debug, warn};
use oasis::net::{NetError, TcpStream, UdpSocket};
use oasis::prelude::*;

/// Largest UDP datagram echoed (bigger ones are truncated by the receive buffer).
const UDP_MAX: usize = 2048;
/// Per-connection copy buffer.
const TCP_CHUNK: usize = 4096;
/// Bytes an echo task copies at a time. Small: the buffer lives in every connection's
/// task, idle or not, and the stack's buffers already batch the bytes.
const ECHO_CHUNK: usize = 1024;

#[oasis::main]
async fn main(os: Os) -> Result<(), NetError> {
    let mut args = os.args();
    let port: u16 = args.value_or("port", 7, "PORT", "TCP and UDP echo port");
    let discard: u16 = args.value_or("discard-port", 9, "PORT", "TCP discard port (0: off)");
    args.finish();

    let net = os.net().await?;
    let tcp = net.tcp_listen(port)?;
    let udp = net.udp_bind(port)?;
    os.spawn(udp_echo(udp));
    if discard != 0 {
        let sink = net.tcp_listen(discard)?;
        os.spawn(oasis::net::serve(
            sink,
            usize::MAX,
            oasis::net::Refusal::Reset,
            |s, _| discard_conn(s),
        ));
    }
    println!(
        "echo: ready on {}:{port} (tcp+udp), discard on tcp {discard}",
        net.address()
    );
    oasis::net::serve(tcp, usize::MAX, oasis::net::Refusal::Reset, |s, peer| {
        debug!("connection from {peer}");
        s.set_nodelay(true);
        tcp_echo(s)
    })
    .await;
    Ok(())
}

async fn tcp_echo(mut s: TcpStream) {
    let mut buf = [0u8; ECHO_CHUNK];
    loop {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if s.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = s.flush().await;
    let _ = s.shutdown().await;
}

async fn discard_conn(mut s: TcpStream) {
    let mut buf = [0u8; TCP_CHUNK];
    while let Ok(n) = s.read(&mut buf).await {
        if n == 0 {
            break;
        }
    }
}

async fn udp_echo(sock: UdpSocket) {
    let mut buf = [0u8; UDP_MAX];
    loop {
        match sock.recv_from(&mut buf).await {
            Ok((n, peer)) => {
                if let Err(e) = sock.send_to(&buf[..n], peer).await {
                    warn!("udp send to {peer}: {e}");
                }
            }
            Err(e) => warn!("udp recv: {e}"),
        }
    }
}
