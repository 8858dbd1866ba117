//! Replays the fuzz seed corpus and a few thousand deterministic mutations of it
//! through the same code path as the `args` fuzz target, on stable (the shared
//! `oasis-testkit` replay).

use oasis_bootargs::{ArgError, ArgParser, split};
use oasis_testkit::corpus::{self, Replay};

fn seeds() -> Vec<corpus::Seed> {
    corpus::seeds(env!("CARGO_MANIFEST_DIR"), "args")
}

#[test]
fn seeds_parse_as_expected() {
    let seeds = seeds();
    assert!(seeds.len() >= 5);
    for s in &seeds {
        let text = std::str::from_utf8(&s.data).unwrap();
        match s.name.as_str() {
            "qemu_cmdline" => {
                let argv = split(text).unwrap();
                assert_eq!(argv, ["console=ttyS0", "--", "-p", "8080"]);
                let mut p = ArgParser::new("t", &argv).unwrap();
                assert_eq!(p.take_params("console"), ["ttyS0"]);
                assert_eq!(p.positionals("ARGS", ""), ["-p", "8080"]);
                p.finish().unwrap();
            }
            "microvm" => {
                let mut p = ArgParser::new("t", &split(text).unwrap()).unwrap();
                assert_eq!(p.take_params("virtio_mmio.device").len(), 2);
                assert_eq!(p.value::<u16>("port", "N", "").unwrap(), Some(8080));
                assert!(p.flag("verbose", "").unwrap());
                assert_eq!(
                    p.values::<String>("log", Some('l'), "F", "").unwrap(),
                    ["net:trace"]
                );
                p.finish().unwrap();
            }
            "quoted" => {
                // The NUL ends the command line, as a C string from the VMM.
                let argv = split(text).unwrap();
                assert_eq!(argv[0], "--name=hello world");
                assert_eq!(argv.last().map(String::as_str), Some("-lnet:debug"));
                let mut p = ArgParser::new("t", &argv).unwrap();
                assert_eq!(p.value::<i64>("offset", "N", "").unwrap(), Some(-3));
                assert_eq!(p.values::<u32>("mem", Some('m'), "M", "").unwrap(), [64]);
            }
            "help" => {
                let mut p = ArgParser::new("t", &split(text).unwrap()).unwrap();
                assert!(p.help_requested());
                p.value::<u16>("port", "N", "").unwrap();
                p.positionals("ARGS", "");
                p.finish().unwrap();
                assert!(p.usage().contains("--port=N"));
            }
            "malformed" => assert!(matches!(split(text), Err(ArgError::Malformed { .. }))),
            _ => {}
        }
        oasis_bootargs::fuzzing::args(&s.data);
    }
}

/// Syntax that steers mutations into the parser's branches.
const TOKENS: &[&[u8]] = &[
    b"--",
    b"-",
    b"=",
    b"\"",
    b"\\",
    b" ",
    b"\0",
    b"--help",
    b"--port=",
    b"--verbose",
    b"-l",
    b"virtio_mmio.device=",
    b"\xc3\xa9",
];

#[test]
fn mutated_inputs_never_panic() {
    let replay = Replay {
        mutations: 5000,
        tokens: TOKENS,
        noise: 500,
        noise_len: 200,
        ..Replay::default()
    };
    replay.run(&seeds(), oasis_bootargs::fuzzing::args);
}

#[test]
fn overlong_command_line_is_refused_not_parsed() {
    let long = vec![b'a'; oasis_bootargs::MAX_CMDLINE + 1];
    oasis_bootargs::fuzzing::args(&long);
}
