//! The `log` backend: `[seconds.micros] LEVEL target: message` on the console,
//! filtered by `-l LEVEL` / `-l TARGET:LEVEL` (longest matching target prefix wins).
//! `--log-format=logfmt` or `json` writes one structured record per line instead,
//! for log collectors: `ts` (seconds since boot), `level`, `target`, `msg`.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt::Write;
use core::str::FromStr;

use log::{LevelFilter, Log, Metadata, Record};

/// One `-l` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    target: Option<String>,
    level: LevelFilter,
}

impl FromStr for Filter {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (target, level) = match s.rsplit_once(':') {
            Some((t, l)) if !t.is_empty() => (Some(t.to_string()), l),
            Some(_) => return Err("empty target before `:`".to_string()),
            None => (None, s),
        };
        let level = LevelFilter::from_str(level).map_err(|_| {
            alloc::format!("`{level}` is not a level (error, warn, info, debug, trace, off)")
        })?;
        Ok(Self { target, level })
    }
}

/// How log lines are written (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// `[    0.052796] INFO  target: message` (the default).
    #[default]
    Text,
    /// `ts=0.052796 level=info target=oasis::net msg="…"`.
    Logfmt,
    /// `{"ts":0.052796,"level":"info","target":"oasis::net","msg":"…"}`.
    Json,
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(Format::Text),
            "logfmt" => Ok(Format::Logfmt),
            "json" => Ok(Format::Json),
            _ => Err(alloc::format!(
                "`{s}` is not a log format (text, logfmt, json)"
            )),
        }
    }
}

/// Writes `s` escaped for a JSON string or a logfmt quoted value (both: `\"`,
/// `\\`, control characters as escapes).
fn escape(out: &mut String, s: &str, json: bool) {
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                if json {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                } else {
                    let _ = write!(out, "\\x{:02x}", c as u32);
                }
            }
            c => out.push(c),
        }
    }
}

/// One log line in `format`, newline-terminated.
fn format_line(format: Format, ns: u64, level: log::Level, target: &str, msg: &str) -> String {
    let mut line = String::with_capacity(96 + msg.len());
    let (secs, micros) = (ns / 1_000_000_000, (ns / 1000) % 1_000_000);
    let lower = match level {
        log::Level::Error => "error",
        log::Level::Warn => "warn",
        log::Level::Info => "info",
        log::Level::Debug => "debug",
        log::Level::Trace => "trace",
    };
    match format {
        Format::Text => {
            let _ = writeln!(line, "[{secs:5}.{micros:06}] {level:5} {target}: {msg}");
        }
        Format::Logfmt => {
            let _ = write!(
                line,
                "ts={secs}.{micros:06} level={lower} target={target} msg=\""
            );
            escape(&mut line, msg, false);
            line.push_str("\"\n");
        }
        Format::Json => {
            let _ = write!(
                line,
                "{{\"ts\":{secs}.{micros:06},\"level\":\"{lower}\",\"target\":\""
            );
            escape(&mut line, target, true);
            line.push_str("\",\"msg\":\"");
            escape(&mut line, msg, true);
            line.push_str("\"}\n");
        }
    }
    line
}

struct Logger {
    default: LevelFilter,
    targets: Vec<(String, LevelFilter)>,
    format: Format,
}

impl Logger {
    fn level_for(&self, target: &str) -> LevelFilter {
        self.targets
            .iter()
            .filter(|(t, _)| {
                target == t
                    || (target.starts_with(t.as_str()) && target[t.len()..].starts_with("::"))
            })
            .max_by_key(|(t, _)| t.len())
            .map_or(self.default, |(_, l)| *l)
    }
}

impl Log for Logger {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        m.level() <= self.level_for(m.target())
    }

    fn log(&self, r: &Record<'_>) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let ns = crate::platform::get().monotonic_nanos();
        let msg = match r.args().as_str() {
            Some(s) => alloc::borrow::Cow::Borrowed(s),
            None => alloc::borrow::Cow::Owned(r.args().to_string()),
        };
        let line = format_line(self.format, ns, r.level(), r.target(), &msg);
        crate::platform::get().console_write(line.as_bytes());
    }

    fn flush(&self) {}
}

static LOGGER: spin::Once<Logger> = spin::Once::new();

/// Installs the logger (default level: info).
pub fn init(filters: Vec<Filter>, format: Format) {
    let mut default = LevelFilter::Info;
    let mut targets = Vec::new();
    for f in filters {
        match f.target {
            Some(t) => targets.push((t, f.level)),
            None => default = f.level,
        }
    }
    let max = targets
        .iter()
        .map(|(_, l)| *l)
        .chain([default])
        .max()
        .unwrap_or(default);
    let logger = LOGGER.call_once(|| Logger {
        default,
        targets,
        format,
    });
    if log::set_logger(logger).is_ok() {
        log::set_max_level(max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_and_longest_prefix_wins() {
        let f: Filter = "net::tcp:trace".parse().unwrap();
        assert_eq!(f.target.as_deref(), Some("net::tcp"));
        assert_eq!(f.level, LevelFilter::Trace);
        assert!("loud".parse::<Filter>().is_err());
        assert!(":info".parse::<Filter>().is_err());
        let l = Logger {
            format: Format::Text,
            default: LevelFilter::Warn,
            targets: alloc::vec![
                ("net".into(), LevelFilter::Info),
                ("net::tcp".into(), LevelFilter::Trace)
            ],
        };
        assert_eq!(l.level_for("net::tcp::conn"), LevelFilter::Trace);
        assert_eq!(l.level_for("net::udp"), LevelFilter::Info);
        assert_eq!(l.level_for("network"), LevelFilter::Warn);
        assert_eq!(l.level_for("www"), LevelFilter::Warn);
    }

    #[test]
    fn structured_lines_escape_what_they_must() {
        let ns = 52_796_123;
        let msg = "say \"hi\"\\ \n\u{1}";
        assert_eq!(
            format_line(Format::Text, ns, log::Level::Info, "oasis::net", "up"),
            "[    0.052796] INFO  oasis::net: up\n"
        );
        assert_eq!(
            format_line(Format::Logfmt, ns, log::Level::Warn, "www", msg),
            "ts=0.052796 level=warn target=www msg=\"say \\\"hi\\\"\\\\ \\n\\x01\"\n"
        );
        assert_eq!(
            format_line(Format::Json, ns, log::Level::Error, "a\"b", msg),
            "{\"ts\":0.052796,\"level\":\"error\",\"target\":\"a\\\"b\",\"msg\":\"say \\\"hi\\\"\\\\ \\n\\u0001\"}\n"
        );
        assert_eq!("json".parse::<Format>(), Ok(Format::Json));
        assert!("xml".parse::<Format>().is_err());
    }
}
