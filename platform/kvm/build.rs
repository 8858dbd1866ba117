//! Puts the linker script on the linker's search path. `.cargo/config.toml` passes
//! `-Toasis-kvm.ld`; a build script cannot pass link arguments to the final binary of
//! another crate, but its search path does propagate.
use std::{env, fs, path::PathBuf};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    fs::copy("link.ld", out.join("oasis-kvm.ld")).expect("copy link.ld");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=link.ld");
}
