//! `hello`: prints a greeting, its arguments and boot time, then four timestamps
//! 100 ms apart, and exits 0. `--fail` exits with status 3; `--panic` panics;
//! `--overflow` recurses until the stack guard page stops it.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use oasis::prelude::*;

/// Why `hello` failed (on request).
#[derive(Debug)]
struct Failed;

impl core::fmt::Display for Failed {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("failing as asked (--fail)")
    }
}

#[oasis::main]
async fn main(os: Os) -> Result<(), Failed> {
    let mut args = os.args();
    let fail = args.flag("fail", "exit with status 3 after greeting");
    let panic = args.flag("panic", "panic after greeting");
    let overflow = args.flag("overflow", "overflow the stack (tests the guard page)");
    let rest = args.positionals("ARGS", "printed back");
    args.finish();

    println!("hello from oasis");
    println!("args: fail={fail} panic={panic} rest={rest:?}");
    match os.boot_time() {
        Some(t) => println!("boot: {} us from entry to main", t.as_micros()),
        None => println!("boot: not measured on this platform"),
    }
    oasis::log::debug!("{}", os.platform_report());
    if panic {
        panic!("panicking as asked (--panic)");
    }
    if overflow {
        println!("recursed {} times", recurse(0));
    }
    if fail {
        os.exit(3);
    }
    for i in 0..4 {
        if i > 0 {
            sleep(Duration::from_millis(100)).await;
        }
        println!("tick {i} at {} us", os.now().as_nanos() / 1000);
    }
    Ok(())
}

/// Recursion the optimiser cannot turn into a loop; its only way out is a depth no
/// stack reaches.
fn recurse(depth: u64) -> u64 {
    let frame = core::hint::black_box([depth; 64]);
    if core::hint::black_box(depth) == u64::MAX {
        return frame[0];
    }
    recurse(depth + 1) + frame[(depth % 64) as usize]
}
