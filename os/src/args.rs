//! The application's view of its arguments: typed values; bad input exits with 64.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Display;
use core::str::FromStr;

use oasis_bootargs::ArgParser;

use crate::__private::usage_error;

/// Typed access to the application's arguments. Every method that finds a problem
/// prints it and exits with status 64; [`finish`](Self::finish) handles `--help` and
/// rejects arguments nobody asked for.
pub struct Args {
    parser: ArgParser,
}

impl Args {
    pub(crate) fn new(parser: Option<ArgParser>) -> Self {
        let parser = parser.unwrap_or_else(|| {
            usage_error(&"Os::args() called twice: the arguments were already taken")
        });
        Self { parser }
    }

    /// `--name`: true if given.
    pub fn flag(&mut self, name: &str, help: &str) -> bool {
        self.parser
            .flag(name, help)
            .unwrap_or_else(|e| usage_error(&e))
    }

    /// `--name=VALUE`, at most once.
    pub fn value<T>(&mut self, name: &str, meta: &str, help: &str) -> Option<T>
    where
        T: FromStr,
        T::Err: Display,
    {
        self.parser
            .value(name, meta, help)
            .unwrap_or_else(|e| usage_error(&e))
    }

    /// `--name=VALUE` or `default`.
    pub fn value_or<T>(&mut self, name: &str, default: T, meta: &str, help: &str) -> T
    where
        T: FromStr,
        T::Err: Display,
    {
        self.value(name, meta, help).unwrap_or(default)
    }

    /// Every `--name=VALUE`, in order.
    pub fn values<T>(&mut self, name: &str, meta: &str, help: &str) -> Vec<T>
    where
        T: FromStr,
        T::Err: Display,
    {
        self.parser
            .values(name, None, meta, help)
            .unwrap_or_else(|e| usage_error(&e))
    }

    /// Positional arguments (after `--`, or bare words).
    pub fn positionals(&mut self, meta: &str, help: &str) -> Vec<String> {
        self.parser.positionals(meta, help)
    }

    /// Prints the usage and exits 0 on `--help`; exits 64 on any argument nobody
    /// asked for.
    pub fn finish(self) {
        if self.parser.help_requested() {
            crate::console::_print(format_args!("{}", self.parser.usage()));
            crate::platform::get().exit(0);
        }
        if let Err(e) = self.parser.finish() {
            usage_error(&e);
        }
    }
}
