//! `cargo oasis new NAME`: a new application under `appliances/`.

use std::path::PathBuf;

use anyhow::{Context, bail};

/// Creates `appliances/NAME` with a working `main`. Returns its directory.
pub fn new_app(name: &str) -> anyhow::Result<PathBuf> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !valid {
        bail!(
            "`{name}` is not a valid application name: use lowercase letters, digits, `-` and `_`, starting with a letter"
        );
    }
    let dir = crate::workspace_root().join("appliances").join(name);
    if dir.exists() {
        bail!("{} already exists", dir.display());
    }
    std::fs::create_dir_all(dir.join("src"))
        .with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            r#"[package]
name = "{name}"
version.workspace = true
edition.workspace = true
license.workspace = true

[[bin]]
name = "{name}"
path = "src/main.rs"
test = false
bench = false

[dependencies]
oasis.workspace = true

[lints]
workspace = true
"#
        ),
    )?;
    std::fs::write(
        dir.join("src/main.rs"),
        r#"//! A new Oasis application.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use oasis::prelude::*;

#[oasis::main]
async fn main(os: Os) -> Result<(), String> {
    let mut args = os.args();
    let name: String = args.value_or("name", "world".into(), "NAME", "who to greet");
    args.finish();
    println!("hello, {name}!");
    sleep(Duration::from_millis(10)).await;
    Ok(())
}
"#,
    )?;
    Ok(dir)
}
