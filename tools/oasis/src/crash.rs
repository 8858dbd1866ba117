//! Symbolised crash reports: the guest's backtrace lines, followed by function, file
//! and line read from the image's ELF.
//!
//! A kvm guest that panics or takes a CPU fault prints (platform/kvm `backtrace.rs`,
//! `interrupts.rs`, `lib.rs`):
//!
//! ```text
//! backtrace (symbolise with addr2line -e IMAGE):
//!     0: 0x000000000010cfef
//!     1: 0x0000000000100c3e
//! ```
//!
//! [`Annotator`] recognises such frames and returns, for each, the lines to print
//! after it (the raw line stays as it was):
//!
//! ```text
//!     1: 0x0000000000100c3e
//!        hello::main::{{closure}} at appliances/hello/src/main.rs:37:9
//!        (inlined by) oasis::__private::start at os/src/lib.rs:120:5
//! ```
//!
//! With DWARF (debug builds, or release with `CARGO_PROFILE_RELEASE_DEBUG`), every
//! inlined function and its line; without (release images keep only the symbol
//! table), the enclosing symbol as `name+0xOFFSET`. [`pass_through`] does this to a
//! console stream as `cargo oasis run` shows it.

use std::borrow::Cow;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use object::{Object, ObjectSection, ObjectSymbol, SectionKind, SymbolKind};

use crate::qemu::GuestExit;

/// Why an image's symbols could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SymbolsError {
    #[error("reading {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("{} is not an ELF image we can read: {reason}", path.display())]
    Parse { path: PathBuf, reason: String },
    #[error("reading the DWARF debug information of {}: {reason}", path.display())]
    Dwarf { path: PathBuf, reason: String },
}

/// One function at an address: where an address lies, innermost first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    /// Demangled, without the hash (`hello::main::{{closure}}`); `None` when the
    /// DWARF names no function.
    pub function: Option<String>,
    /// Source file (relative to the workspace when inside it) and line.
    pub file: Option<String>,
    pub line: Option<u32>,
    pub column: Option<u32>,
}

/// An image's symbols: DWARF line tables when it has them, its symbol table always.
pub struct Symbols {
    dwarf: Option<addr2line::Loader>,
    /// (address, demangled name), sorted by address: functions only.
    symtab: Vec<(u64, String)>,
    /// Address ranges of executable sections: an address elsewhere has no function.
    text: Vec<std::ops::Range<u64>>,
    /// Prefix stripped from source paths (the workspace root).
    root: PathBuf,
}

impl Symbols {
    /// Reads `elf`'s symbol table and, when present, its DWARF.
    pub fn open(elf: &Path) -> Result<Symbols, SymbolsError> {
        let data = std::fs::read(elf).map_err(|source| SymbolsError::Read {
            path: elf.into(),
            source,
        })?;
        let file = object::File::parse(&*data).map_err(|e| SymbolsError::Parse {
            path: elf.into(),
            reason: e.to_string(),
        })?;
        let text: Vec<_> = file
            .sections()
            .filter(|s| s.kind() == SectionKind::Text && s.size() > 0)
            .map(|s| s.address()..s.address() + s.size())
            .collect();
        // Untyped symbols too: the assembly entry points (`pvh_start32`) are labels.
        let mut ranked: Vec<(u64, u8, String)> = file
            .symbols()
            .filter(|s| !s.is_undefined())
            .filter(|s| matches!(s.kind(), SymbolKind::Text | SymbolKind::Unknown))
            .filter(|s| text.iter().any(|r| r.contains(&s.address())))
            .filter_map(|s| {
                let name = s.name().ok().filter(|n| !n.is_empty())?;
                // Where names share an address, functions win over labels, and
                // labels over linker-script markers (`__image_start`).
                let rank = match s.kind() {
                    SymbolKind::Text => 0,
                    _ if name.starts_with("__") => 2,
                    _ => 1,
                };
                let name = addr2line::demangle_auto(Cow::Borrowed(name), None);
                Some((s.address(), rank, name.into_owned()))
            })
            .collect();
        ranked.sort();
        ranked.dedup_by_key(|(a, _, _)| *a);
        let symtab = ranked.into_iter().map(|(a, _, n)| (a, n)).collect();
        let dwarf = match file.section_by_name(".debug_info") {
            Some(_) => Some(
                addr2line::Loader::new(elf).map_err(|e| SymbolsError::Dwarf {
                    path: elf.into(),
                    reason: e.to_string(),
                })?,
            ),
            None => None,
        };
        Ok(Symbols {
            dwarf,
            symtab,
            text,
            root: crate::workspace_root(),
        })
    }

    /// Whether the image has line tables (else only symbol names).
    pub fn has_lines(&self) -> bool {
        self.dwarf.is_some()
    }

    /// Where the code at `pc` lies, innermost (inlined) function first; empty when
    /// nothing is known about it. A return address (`ret`) is looked up one byte
    /// back, at its call instruction: a call that ends a function would otherwise
    /// name the next one.
    pub fn places(&self, pc: u64, ret: bool) -> Vec<Place> {
        let probe = if ret { pc.saturating_sub(1) } else { pc };
        if !self.text.iter().any(|r| r.contains(&probe)) {
            return Vec::new();
        }
        let mut out = Vec::new();
        if let Some(dwarf) = &self.dwarf
            && let Ok(mut frames) = dwarf.find_frames(probe)
        {
            while let Ok(Some(f)) = frames.next() {
                let function = f
                    .function
                    .as_ref()
                    .and_then(|n| n.demangle().ok())
                    .map(|n| n.into_owned());
                let (file, line, column) = match f.location {
                    Some(l) => (l.file.map(|p| self.shorten(p)), l.line, l.column),
                    None => (None, None, None),
                };
                out.push(Place {
                    function,
                    file,
                    line,
                    column,
                });
            }
        }
        if out.iter().all(|p| p.function.is_none())
            && let Some(name) = self.symbol(probe, pc)
        {
            out.insert(
                0,
                Place {
                    function: Some(name),
                    file: None,
                    line: None,
                    column: None,
                },
            );
        }
        out
    }

    /// `name+0xOFFSET`: the symbol-table function holding `probe`, and `pc`'s
    /// offset from its start.
    pub fn symbol(&self, probe: u64, pc: u64) -> Option<String> {
        let i = self.symtab.partition_point(|(a, _)| *a <= probe);
        let (addr, name) = self.symtab.get(i.checked_sub(1)?)?;
        Some(match pc.wrapping_sub(*addr) {
            0 => name.clone(),
            off => format!("{name}+{off:#x}"),
        })
    }

    fn shorten(&self, path: &str) -> String {
        Path::new(path)
            .strip_prefix(&self.root)
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| path.to_string())
    }
}

/// A backtrace frame line: `    N: 0x<hex>`.
fn frame(line: &str) -> Option<(usize, u64)> {
    let (n, addr) = line.trim().split_once(": ")?;
    let n = n.parse().ok()?;
    let addr = u64::from_str_radix(addr.trim().strip_prefix("0x")?, 16).ok()?;
    Some((n, addr))
}

/// Follows a console line by line and says what to print after each.
pub struct Annotator<'a> {
    symbols: &'a Symbols,
    /// Inside a backtrace: after its header, before the first line that is no frame.
    in_backtrace: bool,
    /// The backtrace is a CPU fault's: its frame 0 is the faulting RIP itself.
    fault: bool,
}

impl<'a> Annotator<'a> {
    pub fn new(symbols: &'a Symbols) -> Self {
        Annotator {
            symbols,
            in_backtrace: false,
            fault: false,
        }
    }

    /// The lines to print after `line` (without line endings): empty except after
    /// a backtrace frame whose address the image knows.
    pub fn line(&mut self, line: &str) -> Vec<String> {
        let trimmed = line.trim();
        if trimmed.starts_with("backtrace") {
            self.in_backtrace = true;
            // The fault handler's header is exactly `backtrace:` (interrupts.rs).
            self.fault = trimmed == "backtrace:";
            return Vec::new();
        }
        if !self.in_backtrace {
            return Vec::new();
        }
        let Some((n, addr)) = frame(line) else {
            self.in_backtrace = false;
            return Vec::new();
        };
        // All frames are return addresses but a fault's first, the faulting RIP.
        let ret = !(n == 0 && self.fault);
        let indent = " ".repeat(line.len() - line.trim_start().len() + 3);
        self.symbols
            .places(addr, ret)
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let by = if i > 0 { "(inlined by) " } else { "" };
                format!("{indent}{by}{}", describe(p))
            })
            .collect()
    }
}

/// `function at file:line:column`, leaving out what is unknown.
fn describe(p: &Place) -> String {
    let mut s = p.function.clone().unwrap_or_else(|| "??".into());
    if let Some(f) = &p.file {
        s.push_str(" at ");
        s.push_str(f);
        if let Some(l) = p.line {
            s.push_str(&format!(":{l}"));
            if let Some(c) = p.column.filter(|&c| c > 0) {
                s.push_str(&format!(":{c}"));
            }
        }
    }
    s
}

/// `console` with every backtrace frame followed by its function, file and line
/// from `elf`.
pub fn symbolise<'l>(
    console: impl IntoIterator<Item = &'l str>,
    elf: &Path,
) -> Result<Vec<String>, SymbolsError> {
    let symbols = Symbols::open(elf)?;
    let mut a = Annotator::new(&symbols);
    let mut out = Vec::new();
    for line in console {
        out.push(line.to_string());
        out.extend(a.line(line));
    }
    Ok(out)
}

/// Longest line we look at; longer ones are passed through, never annotated.
const MAX_LINE: usize = 512;

/// Copies `src` to `dst` as it arrives (partial lines included, so prompts show),
/// adding the annotations of [`Annotator`] after each completed backtrace frame.
pub fn pass_through(
    mut src: impl Read,
    mut dst: impl Write,
    symbols: Option<&Symbols>,
) -> io::Result<()> {
    let mut annotator = symbols.map(Annotator::new);
    let mut buf = [0u8; 4096];
    let mut line: Vec<u8> = Vec::with_capacity(MAX_LINE);
    let mut overlong = false;
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let mut rest = &buf[..n];
        while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
            dst.write_all(&rest[..=nl])?;
            if !overlong && line.len() + nl <= MAX_LINE {
                line.extend_from_slice(&rest[..nl]);
                let crlf = line.last() == Some(&b'\r');
                let text = String::from_utf8_lossy(&line);
                let text = text.trim_end_matches('\r');
                if let Some(a) = annotator.as_mut() {
                    let end = if crlf { "\r\n" } else { "\n" };
                    for extra in a.line(text) {
                        dst.write_all(extra.as_bytes())?;
                        dst.write_all(end.as_bytes())?;
                    }
                }
            }
            line.clear();
            overlong = false;
            rest = &rest[nl + 1..];
        }
        dst.write_all(rest)?;
        if line.len() + rest.len() > MAX_LINE {
            overlong = true;
            line.clear();
        } else if !overlong {
            line.extend_from_slice(rest);
        }
        dst.flush()?;
    }
    dst.flush()
}

/// Runs `qemu` (a [`crate::qemu::Vm::command`], stdin as the caller set it) with
/// its console passed through [`pass_through`] to `out`; returns how the guest
/// ended. This is `cargo oasis run`'s loop for kvm images.
pub fn run_guest(
    qemu: &mut Command,
    symbols: Option<&Symbols>,
    out: impl Write,
) -> io::Result<GuestExit> {
    let mut child = qemu.stdout(Stdio::piped()).spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| io::Error::other("no stdout pipe"))?;
    let copied = pass_through(stdout, out, symbols);
    let status = child.wait()?;
    // A closed `out` (e.g. `| head`) is no reason to misreport the guest's status.
    if let Err(e) = copied
        && e.kind() != io::ErrorKind::BrokenPipe
    {
        return Err(e);
    }
    Ok(GuestExit::from_status(status))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This test binary: an ELF with DWARF (the dev profile keeps debuginfo).
    fn me() -> PathBuf {
        std::env::current_exe().expect("current_exe")
    }

    /// The link-time address of the symbol whose demangled name ends with `suffix`.
    fn address_of(elf: &Path, suffix: &str) -> u64 {
        let data = std::fs::read(elf).unwrap();
        let file = object::File::parse(&*data).unwrap();
        file.symbol_map()
            .symbols()
            .iter()
            .find(|s| addr2line::demangle_auto(Cow::Borrowed(s.name()), None).ends_with(suffix))
            .map(|s| s.address())
            .unwrap_or_else(|| panic!("no symbol ending in {suffix}"))
    }

    #[inline(never)]
    fn marker(x: u64) -> u64 {
        x.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(17) ^ x
    }

    #[test]
    fn parses_frame_lines() {
        assert_eq!(frame("    0: 0x000000000010fe5c"), Some((0, 0x10fe5c)));
        assert_eq!(frame("   12: 0x0000000000100000"), Some((12, 0x100000)));
        assert_eq!(frame("tick 0 at 5 us"), None);
        assert_eq!(frame("    0: 10fe5c"), None);
    }

    #[test]
    fn frames_get_function_file_and_line() {
        assert_ne!(marker(std::hint::black_box(7)), 0);
        let elf = me();
        let addr = address_of(&elf, "crash::tests::marker");
        let sym = Symbols::open(&elf).unwrap();
        assert!(sym.has_lines(), "the test binary should carry DWARF");
        // A fault's frame 0 is looked up as is, later frames (return addresses) one
        // byte before; both land in `marker` (its first instruction is not its last).
        let console = [
            "hello",
            "!!! CPU exception 14 (page fault)",
            "backtrace:",
            &format!("    0: {addr:#018x}"),
            &format!("    1: {:#018x}", addr + 2),
            "oasis: bye",
        ];
        let out = symbolise(console, &elf).unwrap();
        let text = out.join("\n");
        assert_eq!(out[..4], console[..4], "{text}");
        let next = out
            .iter()
            .position(|l| l == console[4])
            .expect("frame 1 kept");
        let here = "oasis_cli::crash::tests::marker at tools/oasis/src/crash.rs:";
        assert!(
            out[4..next]
                .iter()
                .any(|l| l.trim_start().starts_with(here)),
            "{text}"
        );
        assert!(
            out[4].starts_with("       "),
            "indented under the frame: {text}"
        );
        assert!(out[next + 1].contains("crash::tests::marker"), "{text}");
        assert_eq!(out.last().unwrap(), "oasis: bye", "{text}");
    }

    #[test]
    fn symbol_table_names_with_offsets() {
        let elf = me();
        let addr = address_of(&elf, "crash::tests::marker");
        let sym = Symbols::open(&elf).unwrap();
        assert_eq!(
            sym.symbol(addr + 1, addr + 2).as_deref(),
            Some("oasis_cli::crash::tests::marker+0x2")
        );
        assert!(
            sym.places(0, false).is_empty(),
            "address 0 is in no text section"
        );
    }

    #[test]
    fn only_lines_inside_a_backtrace_are_annotated() {
        let elf = me();
        let addr = address_of(&elf, "crash::tests::marker");
        let frame = format!("    0: {addr:#018x}");
        // Not after a header; and after a header, not past the first non-frame line.
        let console = [
            frame.as_str(),
            "backtrace (symbolise with addr2line -e IMAGE):",
            "done",
            frame.as_str(),
        ];
        assert_eq!(symbolise(console, &elf).unwrap(), console);
    }

    #[test]
    fn pass_through_keeps_bytes_and_adds_annotations() {
        let elf = me();
        let sym = Symbols::open(&elf).unwrap();
        let addr = address_of(&elf, "crash::tests::marker");
        let input = format!("boot\r\nbacktrace:\r\n    0: {addr:#018x}\r\nprompt> ");
        // Split reads: the frame line arrives in two pieces.
        let (a, b) = input.split_at(input.len() - 20);
        let src = io::Read::chain(a.as_bytes(), b.as_bytes());
        let mut out = Vec::new();
        pass_through(src, &mut out, Some(&sym)).unwrap();
        let out = String::from_utf8(out).unwrap();
        let frame_end = input.find("\r\nprompt").unwrap() + 2;
        assert!(out.starts_with(&input[..frame_end]), "{out}");
        let extra = &out[frame_end..out.len() - "prompt> ".len()];
        assert!(extra.contains("crash::tests::marker at "), "{out}");
        assert!(extra.ends_with("\r\n"), "{out:?}");
        assert!(out.ends_with("prompt> "), "{out:?}");
        // Without symbols it is a plain copy.
        let mut plain = Vec::new();
        pass_through(input.as_bytes(), &mut plain, None).unwrap();
        assert_eq!(plain, input.as_bytes());
    }
}
