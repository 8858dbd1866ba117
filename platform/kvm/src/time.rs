//! Clocks: monotonic time from the TSC, wall-clock time from Xen's `shared_info`
//! on Xen (a PVH domU has no RTC), else from the CMOS RTC.
//!
//! The TSC frequency comes from the first source that knows it, without busy-waiting
//! for long: Xen's CPUID leaf base+3 (a Xen PVH guest has no PIT to measure against),
//! kvmclock (KVM publishes the TSC→ns scale), the hypervisor timing leaf
//! 0x40000010, CPUID 0x15/0x16 on bare metal, else a 5 ms measurement against the
//! 8254 PIT (the path under TCG, whose TSC runs at the host's rate).

use core::sync::atomic::{AtomicU64, Ordering};

use crate::cpu::{cpuid, inb, outb, rdmsr, rdtsc, wrmsr};

/// TSC ticks per second.
static TSC_HZ: AtomicU64 = AtomicU64::new(0);
/// ns = (ticks * MULT) >> 32.
static MULT: AtomicU64 = AtomicU64::new(0);
/// TSC at boot (PVH entry): the origin of monotonic time.
static ORIGIN: AtomicU64 = AtomicU64::new(0);
/// Unix nanoseconds at monotonic 0, once the RTC has been read.
static WALL_AT_ORIGIN: AtomicU64 = AtomicU64::new(0);

/// Where the TSC frequency came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TscSource {
    Xen,
    KvmClock,
    HypervisorLeaf,
    Cpuid,
    Pit,
}

impl TscSource {
    pub fn name(self) -> &'static str {
        match self {
            Self::Xen => "Xen cpuid leaf",
            Self::KvmClock => "kvmclock",
            Self::HypervisorLeaf => "cpuid 0x40000010",
            Self::Cpuid => "cpuid 0x15/0x16",
            Self::Pit => "PIT",
        }
    }
}

const PIT_HZ: u64 = 1_193_182;
const PIT_CALIBRATION_MS: u64 = 5;

/// Finds the TSC frequency; `origin` is the boot TSC. Starts/finishes the LAPIC timer
/// calibration during the PIT window when one is needed.
pub fn init(origin: u64) -> TscSource {
    ORIGIN.store(origin, Ordering::Relaxed);
    let hv = hypervisor();
    let (hz, src) = if let Some(khz) = crate::xen::tsc_khz() {
        (khz * 1000, TscSource::Xen)
    } else if let Some(hz) = hv.filter(|h| h.kvm).and_then(|_| kvmclock_hz()) {
        (hz, TscSource::KvmClock)
    } else if let Some(hz) = hv
        .and_then(|h| {
            (h.max_leaf >= 0x4000_0010).then(|| u64::from(cpuid(0x4000_0010, 0).eax) * 1000)
        })
        .filter(|&hz| hz > 0)
    {
        (hz, TscSource::HypervisorLeaf)
    } else if let Some(hz) = hv.is_none().then(cpuid_hz).flatten() {
        (hz, TscSource::Cpuid)
    } else {
        (pit_measure(), TscSource::Pit)
    };
    set_hz(hz);
    SOURCE.call_once(|| src);
    if crate::apic::needs_calibration() {
        // Rare (no TSC-deadline): measure the LAPIC timer against the now-known TSC.
        crate::apic::start_calibration();
        let t0 = rdtsc();
        let wait = hz / 1000; // 1 ms
        while rdtsc().wrapping_sub(t0) < wait {
            core::hint::spin_loop();
        }
        let (t1, ticks) = bracketed(crate::apic::calibration_ticks);
        crate::apic::finish_calibration(ticks, ticks_to_ns(t1.wrapping_sub(t0)));
    }
    src
}

fn set_hz(hz: u64) {
    let hz = hz.max(1_000_000);
    TSC_HZ.store(hz, Ordering::Relaxed);
    MULT.store(
        ((1_000_000_000u128 << 32) / u128::from(hz)) as u64,
        Ordering::Relaxed,
    );
}

static SOURCE: spin::Once<TscSource> = spin::Once::new();

/// Where the TSC frequency came from.
pub fn source() -> TscSource {
    SOURCE.get().copied().unwrap_or(TscSource::Pit)
}

/// TSC ticks per second.
pub fn tsc_hz() -> u64 {
    TSC_HZ.load(Ordering::Relaxed)
}

/// Converts TSC ticks to nanoseconds.
pub fn ticks_to_ns(ticks: u64) -> u64 {
    ((u128::from(ticks) * u128::from(MULT.load(Ordering::Relaxed))) >> 32) as u64
}

/// Converts nanoseconds to TSC ticks.
pub fn ns_to_ticks(ns: u64) -> u64 {
    (u128::from(ns) * u128::from(tsc_hz()) / 1_000_000_000) as u64
}

/// Monotonic nanoseconds since PVH entry.
pub fn monotonic_ns() -> u64 {
    ticks_to_ns(rdtsc().wrapping_sub(ORIGIN.load(Ordering::Relaxed)))
}

/// The TSC value at monotonic time `ns`.
pub fn tsc_at(ns: u64) -> u64 {
    ORIGIN.load(Ordering::Relaxed).wrapping_add(ns_to_ticks(ns))
}

#[derive(Clone, Copy)]
struct Hypervisor {
    kvm: bool,
    max_leaf: u32,
}

fn hypervisor() -> Option<Hypervisor> {
    if cpuid(1, 0).ecx & (1 << 31) == 0 {
        return None;
    }
    let r = cpuid(0x4000_0000, 0);
    let mut sig = [0u8; 12];
    sig[0..4].copy_from_slice(&r.ebx.to_le_bytes());
    sig[4..8].copy_from_slice(&r.ecx.to_le_bytes());
    sig[8..12].copy_from_slice(&r.edx.to_le_bytes());
    Some(Hypervisor {
        kvm: &sig == b"KVMKVMKVM\0\0\0",
        max_leaf: r.eax,
    })
}

/// Reads the TSC scale KVM publishes in a pvclock structure (MSR_KVM_SYSTEM_TIME_NEW).
fn kvmclock_hz() -> Option<u64> {
    const MSR_KVM_SYSTEM_TIME_NEW: u32 = 0x4b56_4d01;
    const KVM_FEATURE_CLOCKSOURCE2: u32 = 1 << 3;
    if cpuid(0x4000_0001, 0).eax & KVM_FEATURE_CLOCKSOURCE2 == 0 {
        return None;
    }
    #[repr(C, align(64))]
    struct PvClock {
        version: u32,
        _pad0: u32,
        tsc_timestamp: u64,
        system_time: u64,
        tsc_to_system_mul: u32,
        tsc_shift: i8,
        flags: u8,
        _pad: [u8; 2],
    }
    static mut PVCLOCK: PvClock = PvClock {
        version: 0,
        _pad0: 0,
        tsc_timestamp: 0,
        system_time: 0,
        tsc_to_system_mul: 0,
        tsc_shift: 0,
        flags: 0,
        _pad: [0; 2],
    };
    let p = &raw mut PVCLOCK;
    // SAFETY: KVM advertised CLOCKSOURCE2, so the MSR exists; PVCLOCK is identity-mapped
    // static memory the hypervisor may write until we disable the MSR below.
    let (mul, shift) = unsafe {
        wrmsr(MSR_KVM_SYSTEM_TIME_NEW, p as u64 | 1);
        let mut got = (0, 0);
        for _ in 0..1000 {
            let v1 = core::ptr::read_volatile(&raw const (*p).version);
            let mul = core::ptr::read_volatile(&raw const (*p).tsc_to_system_mul);
            let shift = core::ptr::read_volatile(&raw const (*p).tsc_shift);
            let v2 = core::ptr::read_volatile(&raw const (*p).version);
            if v1 == v2 && v1.is_multiple_of(2) && mul != 0 {
                got = (mul, shift);
                break;
            }
        }
        wrmsr(MSR_KVM_SYSTEM_TIME_NEW, 0);
        let _ = rdmsr(MSR_KVM_SYSTEM_TIME_NEW);
        got
    };
    if mul == 0 {
        return None;
    }
    // ns = ((tsc << shift) * mul) >> 32  =>  hz = 1e9 * 2^32 / (mul * 2^shift)
    let mut hz = (1_000_000_000u128 << 32) / u128::from(mul);
    if shift >= 0 {
        hz >>= shift as u32;
    } else {
        hz <<= (-shift) as u32;
    }
    Some(hz as u64)
}

/// CPUID 0x15 (crystal ratio) or 0x16 (base MHz), trusted only on bare metal.
fn cpuid_hz() -> Option<u64> {
    let max = cpuid(0, 0).eax;
    if max >= 0x15 {
        let r = cpuid(0x15, 0);
        if r.eax != 0 && r.ebx != 0 && r.ecx != 0 {
            return Some(u64::from(r.ecx) * u64::from(r.ebx) / u64::from(r.eax));
        }
    }
    if max >= 0x16 {
        let mhz = cpuid(0x16, 0).eax & 0xFFFF;
        if mhz != 0 {
            return Some(u64::from(mhz) * 1_000_000);
        }
    }
    None
}

/// Counts TSC ticks while PIT channel 0 counts down PIT_CALIBRATION_MS worth of ticks.
///
/// Channel 0 rather than the usual channel 2: channel 2's gate is port 0x61, which
/// QEMU microvm does not emulate (no PC speaker), while channel 0's gate is tied high
/// on every PC-compatible machine. Its IRQ 0 is masked at the PIC and not routed at
/// the I/O APIC, so reprogramming it raises nothing.
fn pit_measure() -> u64 {
    let want = PIT_HZ * PIT_CALIBRATION_MS / 1000;
    // SAFETY: channel 0, lobyte/hibyte, mode 2 (rate generator), count 0 = 65536. The
    // PIT is ours (we never use it as a timer).
    unsafe {
        outb(0x43, 0x34);
        outb(0x40, 0);
        outb(0x40, 0);
    }
    let first = pit_sample();
    crate::apic::start_calibration();
    let lapic_t0 = rdtsc();
    let mut last = first;
    let mut elapsed = 0;
    // Bounded: a missing PIT reads a constant; give up after 2M reads.
    for _ in 0..2_000_000u32 {
        let s = pit_sample();
        // The counter counts down and wraps from 1 to 65536 (0).
        elapsed += (last.0 + 65_536 - s.0) % 65_536;
        last = s;
        if elapsed >= want {
            break;
        }
    }
    let elapsed_ns = (elapsed.max(1) * 1_000_000_000) / PIT_HZ;
    let hz =
        (u128::from(last.1.wrapping_sub(first.1)) * 1_000_000_000 / u128::from(elapsed_ns)) as u64;
    set_hz(hz);
    let (count_tsc, ticks) = bracketed(crate::apic::calibration_ticks);
    crate::apic::finish_calibration(ticks, ticks_to_ns(count_tsc.wrapping_sub(lapic_t0)));
    hz
}

/// The PIT channel 0 counter and the TSC at the moment it was read.
fn pit_sample() -> (u64, u64) {
    let (tsc, c) = bracketed(|| {
        // SAFETY: latching and reading channel 0's count has no other effect.
        unsafe {
            outb(0x43, 0x00);
            let lo = inb(0x40);
            let hi = inb(0x40);
            u64::from(u16::from_le_bytes([lo, hi]))
        }
    });
    (c, tsc)
}

/// Runs `read` between two TSC reads and returns the midpoint with the value, retrying
/// when the two are far apart: under emulation the vCPU can be descheduled mid-read,
/// which would otherwise skew a calibration by milliseconds.
fn bracketed<T>(mut read: impl FnMut() -> T) -> (u64, T) {
    const MAX_GAP: u64 = 100_000; // TSC ticks: ~40 us at 2.5 GHz
    let mut best = None;
    for _ in 0..100 {
        let a = rdtsc();
        let v = read();
        let b = rdtsc();
        let gap = b.wrapping_sub(a);
        let mid = a.wrapping_add(gap / 2);
        if gap < MAX_GAP {
            return (mid, v);
        }
        if best.as_ref().is_none_or(|(g, _, _)| gap < *g) {
            best = Some((gap, mid, v));
        }
    }
    let (_, mid, v) = best.expect("at least one sample");
    (mid, v)
}

// ---- wall clock -------------------------------------------------------------------

/// Unix nanoseconds now: Xen's wall clock on Xen, else the RTC (read on first use).
pub fn wall_ns() -> Option<u64> {
    if let Some(ns) = crate::xen::wall_ns() {
        return Some(ns);
    }
    let mut base = WALL_AT_ORIGIN.load(Ordering::Relaxed);
    if base == 0 {
        let secs = read_rtc()?;
        base = (secs * 1_000_000_000).saturating_sub(monotonic_ns()).max(1);
        WALL_AT_ORIGIN.store(base, Ordering::Relaxed);
    }
    Some(base + monotonic_ns())
}

fn cmos(reg: u8) -> u8 {
    // SAFETY: the CMOS index/data ports are ours; bit 7 of the index keeps NMIs masked.
    unsafe {
        outb(0x70, 0x80 | reg);
        inb(0x71)
    }
}

/// Reads the CMOS RTC as Unix seconds (UTC assumed, as QEMU provides by default).
fn read_rtc() -> Option<u64> {
    let snapshot = || {
        // Wait (bounded) for no update in progress.
        for _ in 0..10_000 {
            if cmos(0x0A) & 0x80 == 0 {
                break;
            }
        }
        [
            cmos(0x00),
            cmos(0x02),
            cmos(0x04),
            cmos(0x07),
            cmos(0x08),
            cmos(0x09),
            cmos(0x32),
        ]
    };
    let mut a = snapshot();
    for _ in 0..5 {
        let b = snapshot();
        if a == b {
            break;
        }
        a = b;
    }
    let status_b = cmos(0x0B);
    let bcd = status_b & 0x04 == 0;
    let conv = |v: u8| if bcd { (v & 0x0F) + (v >> 4) * 10 } else { v };
    let [s, m, h, d, mo, y, c] = a;
    let pm = h & 0x80 != 0;
    let mut hour = conv(h & 0x7F);
    if status_b & 0x02 == 0 && pm {
        hour = (hour % 12) + 12; // 12-hour mode
    }
    let century = match conv(c) {
        19..=21 => u64::from(conv(c)),
        _ => 20,
    };
    let year = century * 100 + u64::from(conv(y));
    let (month, day) = (u64::from(conv(mo)), u64::from(conv(d)));
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 {
        return None;
    }
    Some(
        days_from_civil(year, month, day) * 86_400
            + u64::from(hour) * 3600
            + u64::from(conv(m)) * 60
            + u64::from(conv(s)),
    )
}

/// Days since 1970-01-01 (Howard Hinnant's algorithm), for years >= 1970.
fn days_from_civil(y: u64, m: u64, d: u64) -> u64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe).saturating_sub(719_468)
}
