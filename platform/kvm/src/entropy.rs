//! Hardware entropy: RDSEED, else RDRAND (Intel DRNG guide §5.2: retry on CF=0).

use oasis_devices::EntropyError;

use crate::cpu::cpuid;

const RETRIES: u32 = 100;

#[derive(Clone, Copy)]
enum Insn {
    RdSeed,
    RdRand,
}

fn available() -> Option<Insn> {
    if cpuid(0, 0).eax >= 7 && cpuid(7, 0).ebx & (1 << 18) != 0 {
        Some(Insn::RdSeed)
    } else if cpuid(1, 0).ecx & (1 << 30) != 0 {
        Some(Insn::RdRand)
    } else {
        None
    }
}

fn step(insn: Insn) -> Option<u64> {
    let v: u64;
    let ok: u8;
    // SAFETY: CPUID said the instruction exists; it only writes the output register
    // and flags.
    unsafe {
        match insn {
            Insn::RdSeed => {
                core::arch::asm!("rdseed {v}", "setc {ok}", v = out(reg) v, ok = out(reg_byte) ok, options(nomem, nostack))
            }
            Insn::RdRand => {
                core::arch::asm!("rdrand {v}", "setc {ok}", v = out(reg) v, ok = out(reg_byte) ok, options(nomem, nostack))
            }
        }
    }
    (ok != 0).then_some(v)
}

/// Fills `buf` from the CPU's entropy instructions.
pub fn fill(buf: &mut [u8]) -> Result<(), EntropyError> {
    let insn = available().ok_or(EntropyError::NoSource)?;
    for chunk in buf.chunks_mut(8) {
        let mut got = None;
        for _ in 0..RETRIES {
            if let Some(v) = step(insn) {
                got = Some(v);
                break;
            }
            core::hint::spin_loop();
        }
        let v = got.ok_or(EntropyError::SourceFailed { retries: RETRIES })?;
        chunk.copy_from_slice(&v.to_le_bytes()[..chunk.len()]);
    }
    Ok(())
}

/// Where `getrandom` callers (ring, in TLS) get their bytes: the program's CSPRNG,
/// which the facade installs at start ([`set_random_source`]); hardware entropy
/// until then.
#[cfg(feature = "getrandom")]
static RANDOM_SOURCE: spin::Once<fn(&mut [u8])> = spin::Once::new();

/// Installs the CSPRNG `getrandom` callers draw from.
#[cfg(feature = "getrandom")]
pub fn set_random_source(f: fn(&mut [u8])) {
    RANDOM_SOURCE.call_once(|| f);
}

#[cfg(feature = "getrandom")]
fn getrandom_hook(buf: &mut [u8]) -> Result<(), getrandom::Error> {
    match RANDOM_SOURCE.get() {
        Some(f) => {
            f(buf);
            Ok(())
        }
        None => fill(buf).map_err(|_| getrandom::Error::UNSUPPORTED),
    }
}

#[cfg(feature = "getrandom")]
getrandom::register_custom_getrandom!(getrandom_hook);
