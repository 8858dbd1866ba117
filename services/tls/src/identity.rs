//! A server identity: certificate chain + private key, loaded from PEM or DER and
//! checked before it is served (the key matches the certificate, the certificate is
//! valid now).

use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec::Vec;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use crate::der;

/// Why a certificate or key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// The certificate file holds no certificate, or one that does not parse.
    #[error("malformed certificate: {0}")]
    Certificate(String),
    /// The key file holds no private key, or one of a type we cannot sign with.
    #[error("malformed or unsupported private key: {0}")]
    Key(String),
    /// The key is not the certificate's.
    #[error("the private key does not match the certificate")]
    Mismatch,
    /// The certificate's validity period has ended.
    #[error("the certificate expired (notAfter is {0} s after the epoch, before now)")]
    Expired(i64),
    /// The certificate's validity period has not begun.
    #[error("the certificate is not valid yet (notBefore is {0} s after the epoch, after now)")]
    NotYetValid(i64),
}

/// A certificate chain (leaf first) with its private key, ready to serve.
#[derive(Debug, Clone)]
pub struct Identity {
    key: Arc<CertifiedKey>,
    names: Vec<String>,
    validity: der::Validity,
}

fn is_pem(bytes: &[u8]) -> bool {
    bytes.windows(11).any(|w| w == b"-----BEGIN ")
}

/// Signs a message with the key and verifies it with the certificate's public key.
fn proof_of_possession(
    certified: &CertifiedKey,
    provider: &rustls::crypto::CryptoProvider,
) -> Result<(), IdentityError> {
    let algs = &provider.signature_verification_algorithms;
    let signer = certified
        .key
        .choose_scheme(&algs.supported_schemes())
        .ok_or_else(|| IdentityError::Key("no signature scheme fits the key".into()))?;
    let msg = b"oasis: does this key belong to this certificate?";
    let sig = signer
        .sign(msg)
        .map_err(|e| IdentityError::Key(e.to_string()))?;
    let leaf = certified
        .end_entity_cert()
        .map_err(|e| IdentityError::Certificate(e.to_string()))?;
    let cert = webpki::EndEntityCert::try_from(leaf)
        .map_err(|e| IdentityError::Certificate(alloc::format!("{e:?}")))?;
    let scheme = signer.scheme();
    let verified = algs
        .mapping
        .iter()
        .filter(|(s, _)| *s == scheme)
        .flat_map(|(_, list)| list.iter())
        .any(|alg| cert.verify_signature(*alg, msg, &sig).is_ok());
    if verified {
        Ok(())
    } else {
        Err(IdentityError::Mismatch)
    }
}

impl Identity {
    /// Loads a chain (PEM with one or more `CERTIFICATE` blocks, leaf first, or one
    /// DER certificate) and a private key (PEM `PRIVATE KEY`/`EC PRIVATE KEY`/`RSA
    /// PRIVATE KEY`, or DER PKCS#8/SEC1/PKCS#1). With `now` (Unix seconds), a
    /// certificate outside its validity period is refused.
    pub fn load(cert: &[u8], key: &[u8], now: Option<u64>) -> Result<Identity, IdentityError> {
        let chain: Vec<CertificateDer<'static>> = if is_pem(cert) {
            CertificateDer::pem_slice_iter(cert)
                .collect::<Result<_, _>>()
                .map_err(|e| IdentityError::Certificate(alloc::format!("{e:?}")))?
        } else {
            alloc::vec![CertificateDer::from(cert.to_vec())]
        };
        let leaf = chain
            .first()
            .ok_or_else(|| IdentityError::Certificate("no CERTIFICATE block".into()))?;
        let validity = der::validity(leaf)
            .ok_or_else(|| IdentityError::Certificate("not an X.509 certificate".into()))?;
        let names = webpki::EndEntityCert::try_from(leaf)
            .map_err(|e| IdentityError::Certificate(alloc::format!("{e:?}")))?
            .valid_dns_names()
            .map(|n| n.to_ascii_lowercase())
            .collect();
        let key: PrivateKeyDer<'static> = if is_pem(key) {
            PrivateKeyDer::from_pem_slice(key)
                .map_err(|e| IdentityError::Key(alloc::format!("{e:?}")))?
        } else {
            PrivateKeyDer::try_from(key.to_vec()).map_err(|e| IdentityError::Key(e.to_string()))?
        };
        let provider = crate::provider();
        let signer = provider
            .key_provider
            .load_private_key(key)
            .map_err(|e| IdentityError::Key(e.to_string()))?;
        let certified = CertifiedKey::new(chain, signer);
        // Not `CertifiedKey::keys_match`: this provider's keys cannot give their
        // public half, so prove possession instead (sign, verify with the cert).
        proof_of_possession(&certified, &provider)?;
        if let Some(now) = now.and_then(|n| i64::try_from(n).ok()) {
            if now > validity.not_after {
                return Err(IdentityError::Expired(validity.not_after));
            }
            if now < validity.not_before {
                return Err(IdentityError::NotYetValid(validity.not_before));
            }
        }
        Ok(Identity {
            key: Arc::new(certified),
            names,
            validity,
        })
    }

    /// The DNS names in the certificate (lower case; wildcards as `*.example.com`).
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The certificate's validity period.
    pub fn validity(&self) -> der::Validity {
        self.validity
    }

    /// Whether this certificate answers for `server_name` (exact, case-insensitive,
    /// or a `*.` wildcard matching one leftmost label).
    pub fn answers(&self, server_name: &str) -> bool {
        self.names.iter().any(|n| {
            if n.eq_ignore_ascii_case(server_name) {
                return true;
            }
            match (n.strip_prefix("*."), server_name.split_once('.')) {
                (Some(base), Some((label, rest))) => {
                    !label.is_empty() && base.eq_ignore_ascii_case(rest)
                }
                _ => false,
            }
        })
    }

    pub(crate) fn certified_key(&self) -> Arc<CertifiedKey> {
        self.key.clone()
    }
}
