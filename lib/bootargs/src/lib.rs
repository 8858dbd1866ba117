//! Boot arguments with one syntax on every target.
//!
//! On `kvm` the arguments are the kernel command line (split by [`split`]); on
//! `hosted` they are `argv[1..]`. The syntax:
//!
//! - `--name=value` for options, `--name` for flags (a long option's value is
//!   always attached with `=`, so a flag never swallows the next argument);
//! - `-x VALUE` or `-xVALUE` for short options (every short option takes a value:
//!   `-l debug`);
//! - `name=value` without dashes is a *kernel parameter* (`virtio_mmio.device=…` as
//!   QEMU and Firecracker append it), meant for the platform;
//! - `--` ends option parsing; the rest are positional arguments.
//!
//! [`ArgParser`] hands out typed values and remembers what it was asked for, so
//! [`ArgParser::finish`] can reject anything unknown and [`ArgParser::usage`] can
//! print help. It never panics on input; every problem is an [`ArgError`] that names
//! the offending argument.
#![no_std]
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![warn(missing_docs)]

extern crate alloc;

use alloc::borrow::ToOwned;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt::Write;
use core::str::FromStr;

/// Exit status for a usage error (BSD `EX_USAGE`).
pub const EXIT_USAGE: u8 = 64;

/// The longest command line accepted, in bytes (Linux's x86 limit is 2048; we allow more).
pub const MAX_CMDLINE: usize = 4096;

/// What is wrong with the arguments.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgError {
    /// Nobody asked for this argument.
    #[error("unknown argument `{0}` (try --help)")]
    Unknown(String),
    /// The token does not follow the syntax (`---x`, `-`, `--=v`, an open quote).
    #[error("malformed argument `{arg}`: {reason}")]
    Malformed {
        /// The token as given.
        arg: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An option needs a value and has none.
    #[error("option `{0}` needs a value")]
    MissingValue(String),
    /// A flag was given a value (`--fail=yes`).
    #[error("flag `{0}` takes no value")]
    UnexpectedValue(String),
    /// The value does not parse as the option's type.
    #[error("invalid value `{value}` for `{name}`: {reason}")]
    InvalidValue {
        /// The option.
        name: String,
        /// The value given.
        value: String,
        /// Why it was rejected.
        reason: String,
    },
    /// An option that may appear once appeared again.
    #[error("option `{0}` given more than once")]
    Duplicate(String),
    /// The command line is longer than [`MAX_CMDLINE`].
    #[error("command line of {0} bytes exceeds the {MAX_CMDLINE}-byte limit")]
    TooLong(usize),
}

/// Splits a kernel command line into arguments at ASCII whitespace. Double quotes
/// group words (`--motd="hello world"` is one argument `--motd=hello world`);
/// a backslash escapes the next character inside quotes.
pub fn split(cmdline: &str) -> Result<Vec<String>, ArgError> {
    if cmdline.len() > MAX_CMDLINE {
        return Err(ArgError::TooLong(cmdline.len()));
    }
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_token = false;
    let mut quoted = false;
    let mut chars = cmdline.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quoted = !quoted;
                in_token = true;
            }
            '\\' if quoted => match chars.next() {
                Some(n) => cur.push(n),
                None => break,
            },
            c if c.is_ascii_whitespace() && !quoted => {
                if in_token {
                    out.push(core::mem::take(&mut cur));
                    in_token = false;
                }
            }
            '\0' => break, // C strings from the VMM may carry their terminator
            c => {
                cur.push(c);
                in_token = true;
            }
        }
    }
    if quoted {
        return Err(ArgError::Malformed {
            arg: cur,
            reason: "unterminated double quote",
        });
    }
    if in_token {
        out.push(cur);
    }
    Ok(out)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Long,
    Short,
    Param,
    Positional,
}

#[derive(Debug)]
struct Item {
    kind: Kind,
    name: String,
    value: Option<String>,
    /// The token as written, for error messages.
    raw: String,
    used: bool,
}

#[derive(Debug)]
struct Spec {
    usage: String,
    help: String,
}

/// Typed access to arguments, with help and unknown-argument detection.
#[derive(Debug)]
pub struct ArgParser {
    program: String,
    items: Vec<Item>,
    specs: Vec<Spec>,
}

impl ArgParser {
    /// Parses `args` (without the program name) into options, flags, kernel
    /// parameters and positional arguments.
    pub fn new(program: &str, args: &[String]) -> Result<Self, ArgError> {
        let mut items = Vec::new();
        let mut i = 0;
        let mut rest_positional = false;
        while i < args.len() {
            let tok = &args[i];
            i += 1;
            if rest_positional {
                items.push(Item::new(Kind::Positional, tok, None, tok));
                continue;
            }
            if tok == "--" {
                rest_positional = true;
                continue;
            }
            if let Some(body) = tok.strip_prefix("--") {
                let (name, value) = match body.split_once('=') {
                    Some((n, v)) => (n, Some(v.to_owned())),
                    None => (body, None),
                };
                check_name(name, tok)?;
                items.push(Item::new(Kind::Long, name, value, tok));
            } else if let Some(body) = tok.strip_prefix('-') {
                let mut chars = body.chars();
                let Some(c) = chars.next().filter(char::is_ascii_alphanumeric) else {
                    return Err(ArgError::Malformed {
                        arg: tok.clone(),
                        reason: "a short option is a dash and one letter (`-l debug`)",
                    });
                };
                let attached = chars.as_str().trim_start_matches('=');
                let value = if !attached.is_empty() {
                    attached.to_owned()
                } else if let Some(next) = args.get(i) {
                    i += 1;
                    next.clone()
                } else {
                    return Err(ArgError::MissingValue(tok.clone()));
                };
                items.push(Item::new(Kind::Short, &c.to_string(), Some(value), tok));
            } else if let Some((name, value)) = tok.split_once('=') {
                check_name(name, tok)?;
                items.push(Item::new(Kind::Param, name, Some(value.to_owned()), tok));
            } else {
                items.push(Item::new(Kind::Positional, tok, None, tok));
            }
        }
        Ok(Self {
            program: program.to_owned(),
            items,
            specs: Vec::new(),
        })
    }

    /// Whether `--help` (or `-h`) was given. The caller prints [`usage`](Self::usage)
    /// and exits 0.
    pub fn help_requested(&self) -> bool {
        self.items
            .iter()
            .any(|it| it.kind == Kind::Long && it.name == "help")
    }

    /// A boolean flag `--name`. `--name=true|false|yes|no|1|0` is accepted too.
    pub fn flag(&mut self, name: &str, help: &str) -> Result<bool, ArgError> {
        self.spec(alloc::format!("--{name}"), help);
        let mut found = false;
        for it in self.matching(Kind::Long, name) {
            if found {
                return Err(ArgError::Duplicate(alloc::format!("--{name}")));
            }
            found = match it.value.as_deref() {
                None | Some("true" | "yes" | "1") => true,
                Some("false" | "no" | "0") => false,
                Some(_) => return Err(ArgError::UnexpectedValue(it.raw.clone())),
            };
            if it.value.is_none() {
                found = true;
            }
            it.used = true;
        }
        Ok(found)
    }

    /// An option `--name=VALUE` given at most once, parsed as `T`.
    pub fn value<T>(&mut self, name: &str, meta: &str, help: &str) -> Result<Option<T>, ArgError>
    where
        T: FromStr,
        T::Err: core::fmt::Display,
    {
        let all = self.values::<T>(name, None, meta, help)?;
        if all.len() > 1 {
            return Err(ArgError::Duplicate(alloc::format!("--{name}")));
        }
        Ok(all.into_iter().next())
    }

    /// Every value of a repeatable option, long `--name=V` and (if given) short `-s V`,
    /// in command-line order.
    pub fn values<T>(
        &mut self,
        name: &str,
        short: Option<char>,
        meta: &str,
        help: &str,
    ) -> Result<Vec<T>, ArgError>
    where
        T: FromStr,
        T::Err: core::fmt::Display,
    {
        let usage = match short {
            Some(s) => alloc::format!("-{s}, --{name}={meta}"),
            None => alloc::format!("--{name}={meta}"),
        };
        self.spec(usage, help);
        let short = short.map(|c| c.to_string());
        let mut out = Vec::new();
        for it in self.items.iter_mut() {
            let hit = (it.kind == Kind::Long && it.name == name)
                || (it.kind == Kind::Short && Some(&it.name) == short.as_ref());
            if !hit {
                continue;
            }
            it.used = true;
            let Some(v) = it.value.as_deref() else {
                return Err(ArgError::MissingValue(it.raw.clone()));
            };
            out.push(v.parse::<T>().map_err(|e| ArgError::InvalidValue {
                name: alloc::format!("--{name}"),
                value: v.to_owned(),
                reason: e.to_string(),
            })?);
        }
        Ok(out)
    }

    /// Takes every kernel parameter `name=VALUE` (no dashes), for the platform.
    pub fn take_params(&mut self, name: &str) -> Vec<String> {
        self.matching(Kind::Param, name)
            .map(|it| {
                it.used = true;
                it.value.clone().unwrap_or_default()
            })
            .collect()
    }

    /// Takes the positional arguments.
    pub fn positionals(&mut self, meta: &str, help: &str) -> Vec<String> {
        self.spec(meta.to_owned(), help);
        self.items
            .iter_mut()
            .filter(|it| it.kind == Kind::Positional)
            .map(|it| {
                it.used = true;
                it.raw.clone()
            })
            .collect()
    }

    /// Fails on the first argument nobody asked for. Call after every `flag`/`value`.
    pub fn finish(&self) -> Result<(), ArgError> {
        match self.items.iter().find(|it| !it.used && !it.is_help()) {
            Some(it) => Err(ArgError::Unknown(it.raw.clone())),
            None => Ok(()),
        }
    }

    /// The help text for everything asked for so far.
    pub fn usage(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "usage: {} [OPTIONS]\n\noptions:", self.program);
        let width = self
            .specs
            .iter()
            .map(|sp| sp.usage.len())
            .max()
            .unwrap_or(0);
        for sp in &self.specs {
            let _ = writeln!(s, "  {:width$}  {}", sp.usage, sp.help);
        }
        let _ = writeln!(s, "  {:width$}  print this help and exit", "--help");
        s
    }

    fn spec(&mut self, usage: String, help: &str) {
        if !self.specs.iter().any(|sp| sp.usage == usage) {
            self.specs.push(Spec {
                usage,
                help: help.to_owned(),
            });
        }
    }

    fn matching<'a>(&'a mut self, kind: Kind, name: &'a str) -> impl Iterator<Item = &'a mut Item> {
        self.items
            .iter_mut()
            .filter(move |it| it.kind == kind && it.name == name)
    }
}

impl Item {
    fn new(kind: Kind, name: &str, value: Option<String>, raw: &str) -> Self {
        Self {
            kind,
            name: name.to_owned(),
            value,
            raw: raw.to_owned(),
            used: false,
        }
    }

    fn is_help(&self) -> bool {
        self.kind == Kind::Long && self.name == "help"
    }
}

fn check_name(name: &str, tok: &str) -> Result<(), ArgError> {
    let ok = !name.is_empty()
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(ArgError::Malformed {
            arg: tok.to_owned(),
            reason: "a name is letters, digits, `-`, `_` and `.`",
        })
    }
}

/// Fuzz-target bodies shared by `fuzz/` and `tests/fuzz_replay.rs`.
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing {
    use crate::{ArgError, ArgParser, MAX_CMDLINE, split};
    use alloc::string::{String, ToString};
    use alloc::vec::Vec;

    /// Arbitrary bytes as boot arguments, both ways they reach an application: as a
    /// kernel command line through [`split`] (kvm), and split at NUL bytes as argv
    /// (hosted). Parsing, the typed options, `finish`, `--help` and every error's
    /// message must never panic.
    pub fn args(data: &[u8]) {
        let cmdline = String::from_utf8_lossy(data);
        match split(&cmdline) {
            Ok(argv) => {
                assert!(cmdline.len() <= MAX_CMDLINE);
                parse(&argv);
            }
            Err(ArgError::TooLong(n)) => assert!(n > MAX_CMDLINE),
            Err(e) => drop(e.to_string()),
        }
        let argv: Vec<String> = cmdline
            .split('\0')
            .filter(|a| !a.is_empty())
            .map(String::from)
            .collect();
        parse(&argv);
    }

    /// What an application and the platform ask for, in the order they ask.
    fn parse(argv: &[String]) {
        let mut p = match ArgParser::new("fuzz", argv) {
            Ok(p) => p,
            Err(e) => return drop(e.to_string()),
        };
        let help = p.help_requested();
        let results = [
            p.flag("verbose", "talk more").err(),
            p.value::<u16>("port", "N", "TCP port").err(),
            p.value::<i64>("offset", "N", "signed number").err(),
            p.value::<String>("name", "NAME", "who to greet").err(),
            p.value::<bool>("sync", "BOOL", "typed bool").err(),
            p.values::<String>("log", Some('l'), "FILTER", "log filter")
                .err(),
            p.values::<u32>("mem", Some('m'), "MiB", "memory").err(),
        ];
        for e in results.into_iter().flatten() {
            assert!(!e.to_string().is_empty());
        }
        let _ = p.take_params("virtio_mmio.device");
        let _ = p.take_params("console");
        let _ = p.positionals("ARGS", "the rest");
        let finished = p.finish();
        if let Err(e) = &finished {
            assert!(matches!(e, ArgError::Unknown(_)), "{e:?}");
            drop(e.to_string());
        }
        let usage = p.usage();
        assert!(usage.starts_with("usage: fuzz"));
        assert!(usage.contains("--port=N") && usage.contains("-l, --log=FILTER"));
        assert!(usage.contains("--help"));
        if help {
            assert!(!usage.is_empty());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn args(s: &str) -> Vec<String> {
        split(s).unwrap()
    }

    #[test]
    fn splits_with_quotes_and_nul() {
        assert_eq!(args("  a  --b=\"x y\" c\0junk"), vec!["a", "--b=x y", "c"]);
        assert_eq!(args("\"\""), vec![""]);
        assert!(matches!(
            split("--a=\"open"),
            Err(ArgError::Malformed { .. })
        ));
        assert!(matches!(
            split(&"x".repeat(MAX_CMDLINE + 1)),
            Err(ArgError::TooLong(_))
        ));
    }

    #[test]
    fn typed_values_flags_and_short_options() {
        let a = args(
            "--port=8080 --fail -l debug -lnet:trace --name=x virtio_mmio.device=4K@0xd0000000:5",
        );
        let mut p = ArgParser::new("t", &a).unwrap();
        assert_eq!(p.value::<u16>("port", "N", "").unwrap(), Some(8080));
        assert!(p.flag("fail", "").unwrap());
        assert!(!p.flag("panic", "").unwrap());
        assert_eq!(
            p.values::<String>("log", Some('l'), "LEVEL", "").unwrap(),
            vec!["debug", "net:trace"]
        );
        assert!(matches!(p.finish(), Err(ArgError::Unknown(ref s)) if s == "--name=x"));
        assert_eq!(
            p.value::<String>("name", "S", "").unwrap().as_deref(),
            Some("x")
        );
        assert!(
            matches!(p.finish(), Err(ArgError::Unknown(ref s)) if s.starts_with("virtio_mmio"))
        );
        assert_eq!(p.take_params("virtio_mmio.device"), vec!["4K@0xd0000000:5"]);
        p.finish().unwrap();
    }

    #[test]
    fn rejects_bad_input_with_named_errors() {
        let bad_value = ArgParser::new("t", &args("--port=http"))
            .unwrap()
            .value::<u16>("port", "N", "")
            .unwrap_err();
        assert!(matches!(bad_value, ArgError::InvalidValue { ref value, .. } if value == "http"));
        assert!(bad_value.to_string().contains("--port"));
        assert!(matches!(
            ArgParser::new("t", &args("--fail=maybe"))
                .unwrap()
                .flag("fail", ""),
            Err(ArgError::UnexpectedValue(_))
        ));
        assert!(matches!(
            ArgParser::new("t", &args("--port=1 --port=2"))
                .unwrap()
                .value::<u16>("port", "N", ""),
            Err(ArgError::Duplicate(_))
        ));
        assert!(matches!(
            ArgParser::new("t", &args("-l")),
            Err(ArgError::MissingValue(_))
        ));
        assert!(matches!(
            ArgParser::new("t", &args("---x")),
            Err(ArgError::Malformed { .. })
        ));
        assert!(matches!(
            ArgParser::new("t", &args("-")),
            Err(ArgError::Malformed { .. })
        ));
        assert!(matches!(
            ArgParser::new("t", &args("--=v")),
            Err(ArgError::Malformed { .. })
        ));
        assert!(matches!(
            ArgParser::new("t", &args("--port"))
                .unwrap()
                .value::<u16>("port", "N", ""),
            Err(ArgError::MissingValue(_))
        ));
    }

    #[test]
    fn help_and_positionals() {
        let mut p = ArgParser::new("hello", &args("--help -- --not-an-option x")).unwrap();
        assert!(p.help_requested());
        p.flag("fail", "exit with status 3").unwrap();
        assert_eq!(p.positionals("ARGS", "extra"), vec!["--not-an-option", "x"]);
        p.finish().unwrap();
        let u = p.usage();
        assert!(u.contains("--fail") && u.contains("exit with status 3") && u.contains("--help"));
    }

    #[test]
    fn never_panics_on_junk() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let alphabet = b"-=\" \\ab1.:\0\xc3\xa9";
        for _ in 0..5000 {
            let mut s = Vec::new();
            for _ in 0..(seed % 24) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                s.push(alphabet[(seed % alphabet.len() as u64) as usize]);
            }
            let s = String::from_utf8_lossy(&s);
            if let Some(mut p) = split(&s).ok().and_then(|a| ArgParser::new("t", &a).ok()) {
                let _ = p.flag("a", "");
                let _ = p.value::<u32>("b", "N", "");
                let _ = p.finish();
            }
        }
    }
}
