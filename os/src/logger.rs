//! The `log` backend: `[seconds.micros] LEVEL target: message` on the console,
//! filtered by `-l LEVEL` / `-l TARGET:LEVEL` (longest matching target prefix wins).

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

struct Logger {
    default: LevelFilter,
    targets: Vec<(String, LevelFilter)>,
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
        let mut line = String::with_capacity(96);
        let _ = writeln!(
            line,
            "[{:5}.{:06}] {:5} {}: {}",
            ns / 1_000_000_000,
            (ns / 1000) % 1_000_000,
            r.level(),
            r.target(),
            r.args()
        );
        crate::platform::get().console_write(line.as_bytes());
    }

    fn flush(&self) {}
}

static LOGGER: spin::Once<Logger> = spin::Once::new();

/// Installs the logger (default level: info).
pub fn init(filters: Vec<Filter>) {
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
    let logger = LOGGER.call_once(|| Logger { default, targets });
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
}
