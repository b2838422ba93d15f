"""The inner loops of one C2-compiled method, from a -XX:+PrintAssembly log whose disassembler
(libhsdis0-fcml) printed raw code bytes: rebuilds the method's bytes, disassembles them with
objdump, finds the backward branches whose loop body holds an FMA, prints each body and writes it
as an llvm-mca input. Used by kernel-loops.sh.

  python3 kernel_loops.py LOG METHOD OUTPREFIX   (METHOD: a substring of the "Compiled method" line)
"""
import re
import subprocess
import sys

log, method, prefix = sys.argv[1], sys.argv[2], sys.argv[3]

# the code bytes of the last C2 (non-OSR) compilation whose header names the method
chunks, current = None, None
for line in open(log, errors="replace"):
    if line.startswith("Compiled method"):
        current = {} if "(c2)" in line and method in line and " % " not in line else None
        if current is not None:
            chunks = current
        continue
    if current is None:
        continue
    m = re.match(r"\s+0x([0-9a-f]+): ([0-9a-f| ]+)$", line)
    if m:
        hexbytes = m.group(2).replace("|", "").replace(" ", "")
        if hexbytes and len(hexbytes) % 2 == 0:
            current[int(m.group(1), 16)] = bytes.fromhex(hexbytes)
if not chunks:
    sys.exit(f"no C2 compilation of {method} with code bytes in {log}")
start = min(chunks)
blob = bytearray()
for addr in sorted(chunks):
    off = addr - start
    blob += b"\x90" * max(0, off - len(blob))
    blob[off:off + len(chunks[addr])] = chunks[addr]
with open(prefix + ".bin", "wb") as f:
    f.write(blob)
listing = subprocess.run(["objdump", "-D", "-b", "binary", "-mi386:x86-64", "-M", "intel",
                          f"--adjust-vma={start:#x}", prefix + ".bin"],
                         capture_output=True, text=True, check=True).stdout
ins = []
for line in listing.splitlines():
    parts = line.split("\t")
    if len(parts) >= 3 and re.match(r"\s+[0-9a-f]+:$", parts[0]):
        ins.append((int(parts[0].strip().rstrip(":"), 16), parts[2].strip()))
where = {a: i for i, (a, _) in enumerate(ins)}

count = 0
for i, (addr, text) in enumerate(ins):
    m = re.match(r"(j\w+)\s+0x([0-9a-f]+)", text)
    if not m or int(m.group(2), 16) >= addr or int(m.group(2), 16) not in where:
        continue
    body = [t for _, t in ins[where[int(m.group(2), 16)]:i + 1]]
    fmas = sum("vfmadd" in t for t in body)
    if fmas == 0 or len(body) > 200:
        continue
    count += 1
    # a vector spill or reload inside the loop: a vector register to or from the stack
    spills = sum(bool(re.search(r"[xyz]mm\d+.*\[rsp|\[rsp.*[xyz]mm\d+", t)) and "vbroadcast" not in t
                 for t in body)
    print(f"# loop {count}: {len(body)} instructions, {fmas} FMAs, {spills} vector stack accesses")
    with open(f"{prefix}-loop{count}.s", "w") as f:
        f.write(".intel_syntax noprefix\nLOOP:\n")
        for t in body:
            t = re.sub(r"(j\w+)\s+0x[0-9a-f]+", r"\1 LOOP", re.sub(r"#.*", "", t))
            f.write(t + "\n")
            print("    " + t)
