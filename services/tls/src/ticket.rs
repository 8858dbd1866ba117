//! Stateless session resumption: the session state is sealed into the ticket the
//! client keeps (RFC 8446 §4.6.1, RFC 5077), so the server remembers nothing per
//! client. ChaCha20-Poly1305 under a 256-bit key drawn when the configuration is
//! built, i.e. at boot: rebooting rotates the key (old tickets fall back to a full
//! handshake). Nonces are random (96 bits): at our rates the birthday bound is far.

use alloc::vec::Vec;
use core::fmt;

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};

/// How long a ticket is accepted (6 hours, the lifetime rustls' own ticketer uses).
const LIFETIME_SECS: u32 = 6 * 60 * 60;
const NONCE_LEN: usize = 12;

/// Seals and opens session tickets (rustls' `ProducesTickets`).
pub struct Ticketer {
    aead: ChaCha20Poly1305,
}

impl fmt::Debug for Ticketer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Ticketer")
    }
}

impl Ticketer {
    /// A ticketer with a fresh random key; `None` when no randomness is available.
    pub fn new() -> Option<Ticketer> {
        let mut key = [0u8; 32];
        getrandom::getrandom(&mut key).ok()?;
        Some(Ticketer {
            aead: ChaCha20Poly1305::new(Key::from_slice(&key)),
        })
    }
}

impl rustls::server::ProducesTickets for Ticketer {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        LIFETIME_SECS
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::getrandom(&mut nonce).ok()?;
        let sealed = self.aead.encrypt(Nonce::from_slice(&nonce), plain).ok()?;
        let mut out = Vec::new();
        out.try_reserve_exact(NONCE_LEN + sealed.len()).ok()?;
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Some(out)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        let nonce = cipher.get(..NONCE_LEN)?;
        let body = cipher.get(NONCE_LEN..)?;
        self.aead.decrypt(Nonce::from_slice(nonce), body).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::server::ProducesTickets;

    #[test]
    fn tickets_round_trip_and_tampering_is_refused() {
        let t = Ticketer::new().unwrap();
        let sealed = t.encrypt(b"session state").unwrap();
        assert_ne!(&sealed[NONCE_LEN..NONCE_LEN + 13], b"session state");
        assert_eq!(t.decrypt(&sealed).as_deref(), Some(&b"session state"[..]));
        let mut bad = sealed.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(t.decrypt(&bad), None);
        assert_eq!(t.decrypt(&sealed[..5]), None);
        assert_eq!(t.decrypt(&sealed[..NONCE_LEN]), None);
        let other = Ticketer::new().unwrap();
        assert_eq!(other.decrypt(&sealed), None, "another boot's key");
    }
}
