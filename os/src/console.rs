//! `print!`/`println!` to the platform console.

use core::fmt::{self, Write};

/// The console as a `core::fmt::Write` sink.
pub struct Console;

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        crate::platform::get().console_write(s.as_bytes());
        Ok(())
    }
}

/// Formats into one buffer, then writes it with one console call, so lines from
/// different tasks never interleave mid-line.
#[doc(hidden)]
pub fn _print(args: fmt::Arguments<'_>) {
    match args.as_str() {
        Some(s) => crate::platform::get().console_write(s.as_bytes()),
        None => {
            let mut buf = alloc::string::String::new();
            let _ = buf.write_fmt(args);
            crate::platform::get().console_write(buf.as_bytes());
        }
    }
}

/// Prints to the console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::_print(::core::format_args!($($arg)*)) };
}

/// Prints a line to the console.
#[macro_export]
macro_rules! println {
    () => { $crate::_print(::core::format_args!("\n")) };
    ($($arg:tt)*) => { $crate::_print(::core::format_args!("{}\n", ::core::format_args!($($arg)*))) };
}
