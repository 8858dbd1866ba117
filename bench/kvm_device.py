#!/usr/bin/env python3
"""Measures Oasis images under real KVM on a machine that has hardware virtualization.

Runs on a second machine (the "device" lent to some sessions) with a carried QEMU:
    python3 bench/kvm_device.py --qemu-dir .devqemu --images .devqemu/images --out OUT

Measures, for microvm and pc: hello's guest boot time (PVH entry -> main, TSC),
wall time from QEMU start to exit, QEMU's floor (a guest that exits at its first
instruction), echo and www boot-to-ready (first TCP echo / HTTP 200 through a user
network port forward), and the www memory floor. Prints Markdown.
"""
import argparse, os, re, statistics, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oasisbench as ob  # noqa: E402


def qemu(a, machine, mem, kernel, net=None):
    """`ob.qemu_cmd` with the carried QEMU (its own loader, libraries, firmware)."""
    q = os.path.abspath(a.qemu_dir)
    carried = (os.path.join(q, "lib/ld-linux-x86-64.so.2"), "--library-path", os.path.join(q, "lib"),
               os.path.join(q, "qemu-system-x86_64"), "-L", os.path.join(q, "share"))
    return ob.qemu_cmd(machine, kernel, mem=mem, net=net, qemu=carried, bios=os.path.join(q, "share/qboot.rom"))


def run_hello(a, machine, kernel, n):
    walls, boots = [], []
    for _ in range(n):
        t0 = time.perf_counter()
        p = subprocess.run(qemu(a, machine, 16, kernel), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        walls.append((time.perf_counter() - t0) * 1000)
        out = p.stdout.decode(errors="replace")
        m = re.search(r"boot: (\d+) us", out)
        if m:
            boots.append(int(m.group(1)))
        elif kernel.endswith("hello"):
            print("hello failed:", out[-500:], file=sys.stderr)
    return walls, boots


def boot_to_ready(a, machine, kernel, guest_port, probe, mem=64):
    port = ob.free_port()
    return ob.boot_to_ready(qemu(a, machine, mem, kernel, net=("user", [(port, guest_port)])), b"ready", probe, port, timeout=30)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qemu-dir", default=".devqemu")
    ap.add_argument("--images", default=".devqemu/images")
    ap.add_argument("--runs", type=int, default=20)
    a = ap.parse_args()
    os.environ["QEMU_MODULE_DIR"] = os.path.join(os.path.abspath(a.qemu_dir), "modules")
    info = open("/proc/cpuinfo").read()
    cpu = re.search(r"model name\s*:\s*(.*)", info)
    accel, why = ob.accel()
    print(f"machine: {cpu.group(1) if cpu else '?'}, {os.cpu_count()} cpus; accel: {accel} ({why})\n")
    img = lambda n: os.path.abspath(os.path.join(a.images, n))
    med = statistics.median
    print("| measurement | microvm | pc |\n|---|---|---|")
    rows = {}
    for m in ("microvm", "pc"):
        w, b = run_hello(a, m, img("hello"), a.runs)
        fw, _ = run_hello(a, m, img("floor.elf"), a.runs)
        rows.setdefault("hello guest boot, PVH entry -> main (us), median [min-max]", []).append(f"{med(b)} [{min(b)}-{max(b)}]" if b else "n/a")
        rows.setdefault("hello wall, QEMU start -> exit (ms), median", []).append(f"{med(w):.1f}")
        rows.setdefault("QEMU floor wall (ms), median", []).append(f"{med(fw):.1f}")
        rows.setdefault("hello above floor minus its 300 ms of sleeps (ms)", []).append(f"{med(w) - med(fw) - 300:.1f}")
        for app, port, probe, label in (("echo", 7, ob.echo_probe, "echo start -> first echo reply"),
                                        ("www", 80, ob.http_probe, "www start -> first HTTP 200")):
            xs = [x for x in (boot_to_ready(a, m, img(app), port, probe) for _ in range(10)) if x]
            rows.setdefault(f"{label} (ms), median of 10", []).append(f"{med(xs):.1f}" if xs else "failed")
    for k, v in rows.items():
        print(f"| {k} | {v[0]} | {v[1]} |")
    floor = ob.memory_floor(lambda mib: boot_to_ready(a, "microvm", img("www"), 80, ob.http_probe, mem=mib) is not None, 2, 64)
    print(f"\nwww memory floor (microvm, {accel}): {floor} MiB")


if __name__ == "__main__":
    main()
