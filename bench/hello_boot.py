#!/usr/bin/env python3
"""Boot benchmark for `hello`: image size, guest boot time (PVH entry -> main, as the
guest measures it with the TSC), and wall time from QEMU start to exit, median of N
runs, next to QEMU's own floor (a guest that exits at its first instruction) booted
the same way.

    python3 bench/hello_boot.py [--runs 20] [--machine microvm]

Prints a Markdown table; numbers go to BENCHMARKS.md by hand or via bench/run.
"""
import argparse, os, re, shutil, statistics, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oasisbench as ob  # noqa: E402

ROOT = ob.ROOT


def floor_image(tmp):
    """A PVH ELF whose entry writes 0 to isa-debug-exit: QEMU's own start/stop cost."""
    asm = os.path.join(tmp, "floor.S")
    with open(asm, "w") as f:
        f.write("""
        .section .note.Xen, "a", @note
        .p2align 2
        .long 4, 4, 18
        .asciz "Xen"
        .long _start
        .text
        .code32
        .global _start
_start: movw $0xf4, %dx
        movb $0, %al
        outb %al, %dx
1:      hlt
        jmp 1b
""")
    obj, elf = os.path.join(tmp, "floor.o"), os.path.join(tmp, "floor.elf")
    subprocess.run(["as", "--32", "-o", obj, asm], check=True)
    subprocess.run(["ld", "-m", "elf_i386", "-Ttext=0x100000", "-e", "_start", "-o", elf, obj], check=True)
    return elf


def timed(cmd):
    t0 = time.perf_counter()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
    return time.perf_counter() - t0, p.stdout.decode(errors="replace"), p.returncode


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--machine", default="microvm")
    a = ap.parse_args()
    if not shutil.which("qemu-system-x86_64"):
        sys.exit("qemu-system-x86_64 missing: sudo apt-get install -y qemu-system-x86")
    subprocess.run(["cargo", "build", "-q", "--release", "-p", "hello", "--target", "x86_64-unknown-none"], cwd=ROOT, check=True)
    image = os.path.join(ROOT, "target/x86_64-unknown-none/release/hello")
    with tempfile.TemporaryDirectory() as tmp:
        stripped = os.path.join(tmp, "hello")
        subprocess.run(["objcopy", "--strip-all", image, stripped], check=True)
        size = os.path.getsize(stripped)
        floor = floor_image(tmp)
        walls, boots, floors = [], [], []
        for _ in range(a.runs):
            w, out, rc = timed(ob.qemu_cmd(a.machine, stripped, mem=16))
            if rc != 1:
                sys.exit(f"hello exited with QEMU status {rc}:\n{out}")
            walls.append(w)
            m = re.search(r"boot: (\d+) us", out)
            boots.append(int(m.group(1)))
            fw, _, _ = timed(ob.qemu_cmd(a.machine, floor, mem=16))
            floors.append(fw)
    acc = ob.accel()[0]
    med = statistics.median
    print(f"| metric | value |\n|---|---|")
    print(f"| hello image, stripped | {size} bytes ({size/1024:.1f} KiB) |")
    print(f"| guest boot, PVH entry -> main ({acc}) | median {med(boots)} us (min {min(boots)}, max {max(boots)}) |")
    print(f"| wall, QEMU start -> exit, {a.machine} ({acc}) | median {med(walls)*1000:.1f} ms (min {min(walls)*1000:.1f}, max {max(walls)*1000:.1f}) |")
    print(f"| QEMU floor (guest exits at first instruction) | median {med(floors)*1000:.1f} ms |")
    print(f"| hello above the floor | {(med(walls)-med(floors))*1000:.1f} ms (includes 3 x 100 ms of sleeps) |")
    print(f"\nruns: {a.runs}, machine: {a.machine}, accel: {acc}")


if __name__ == "__main__":
    main()
