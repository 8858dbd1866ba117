//! Builds a TLS certificate and key into the image when `OASIS_TLS_CERT` and
//! `OASIS_TLS_KEY` name files (PEM or DER) at build time; `oasis::tls::embedded`
//! returns them. `cargo oasis run www --tls` sets both to the development
//! certificate (`cargo oasis cert`). Unset: nothing is embedded.

use std::path::PathBuf;

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    for (var, file) in [("OASIS_TLS_CERT", "tls_cert"), ("OASIS_TLS_KEY", "tls_key")] {
        println!("cargo:rerun-if-env-changed={var}");
        let bytes = match std::env::var_os(var) {
            Some(path) if !path.is_empty() => {
                let path = PathBuf::from(path);
                println!("cargo:rerun-if-changed={}", path.display());
                std::fs::read(&path)
                    .unwrap_or_else(|e| panic!("{var}={}: cannot read it: {e}", path.display()))
            }
            _ => Vec::new(),
        };
        std::fs::write(out.join(file), bytes).expect("OUT_DIR is writable");
    }
}
