#!/usr/bin/env python3
"""Writes the fuzz seed corpora under test/src/test/resources/hflash/fuzz/<Class>Inputs/<method>/.

Every seed is small and generated here: synthetic files, plus small slices cut from the repo's own demo trace
(data/stories260K-seq0-256.safetensors). Known bad cases (lying lengths, deep nesting, overflowing shapes) are
written by hand below. Run from the repository root: python3 test/fuzz/make_seeds.py
"""
import json
import os
import random
import struct

ROOT = os.path.join("test", "src", "test", "resources", "hflash", "fuzz")
rng = random.Random(22)


def put(cls, method, name, data):
    d = os.path.join(ROOT, cls + "Inputs", method)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode("utf-8"))


def safetensors(tensors, metadata=None, pad=True):
    """tensors: list of (name, dtype, shape, raw bytes)."""
    header, blobs, off = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(raw)]}
        off += len(raw)
        blobs.append(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def f32(values):
    return struct.pack("<%df" % len(values), *values)


def rand_f32(n):
    return f32([rng.uniform(-2, 2) for _ in range(n)])


# ---- safetensors: whole files and headers alone -----------------------------------------------------------
good = safetensors([("a", "F32", [2, 3], rand_f32(6)), ("b", "F16", [3], bytes(6)), ("c", "BF16", [], bytes(2))],
                   {"scale": "0.5"})
put("SafetensorsFuzzTest", "file", "valid-three-dtypes", good)
put("SafetensorsFuzzTest", "file", "truncated", good[:-5])
put("SafetensorsFuzzTest", "file", "empty", b"")
put("SafetensorsFuzzTest", "file", "length-lies-huge", struct.pack("<Q", (1 << 63) - 1) + b"{}")
put("SafetensorsFuzzTest", "file", "length-negative", struct.pack("<q", -8) + b"{}      ")
put("SafetensorsFuzzTest", "file", "deep-nesting", struct.pack("<Q", 20000) + b"[" * 20000)
headers = {
    "empty-object": "{}",
    "metadata-only": '{"__metadata__":{"k":"v","unicode":"\\u00e9\\ud83d\\ude00"}}',
    "zero-size-tensor": '{"t":{"dtype":"F32","shape":[0,5],"data_offsets":[0,0]}}',
    "deep-arrays": "[" * 20000 + "]" * 20000,
    "deep-objects": '{"a":' * 10000 + "1" + "}" * 10000,
    "shape-overflow": '{"t":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,0]}}',
    "offsets-past-end": '{"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}',
    "offsets-reversed": '{"t":{"dtype":"F32","shape":[0],"data_offsets":[5,0]}}',
    "duplicate-key": '{"t":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"t":1}',
    "huge-number": '{"t":{"dtype":"F32","shape":[1e999999999],"data_offsets":[0,0]}}',
    "long-digits": '{"t":' + "9" * 5000 + "}",
    "bad-escape": '{"\\x":1}',
    "metadata-not-string": '{"__metadata__":{"k":1}}',
    "unknown-dtype": '{"t":{"dtype":"I64","shape":[0],"data_offsets":[0,0]}}',
    "root-array": "[1,2,3]",
}
for name, text in headers.items():
    put("SafetensorsFuzzTest", "header", name, text)
put("SafetensorsFuzzTest", "header", "invalid-utf8", b'{"\xff\xfe":1}')

# ---- traces: small slices of the repo's demo trace, and synthetic ones ----------------------------------
with open(os.path.join("data", "stories260K-seq0-256.safetensors"), "rb") as f:
    blob = f.read()
n = struct.unpack("<Q", blob[:8])[0]
hdr = json.loads(blob[8:8 + n])
data = blob[8 + n:]


def cut(name, layers, heads, pos, dim, qpos=None):
    """tensor `name` cut to [layers, heads, pos(last qpos rows for q/o), dim] as raw F32 bytes."""
    L, H, P, D = hdr[name]["shape"]
    base = hdr[name]["data_offsets"][0]
    rows = pos if qpos is None else qpos
    first = 0 if qpos is None else pos - qpos
    out = bytearray()
    for l in range(layers):
        for h in range(heads):
            for p in range(first, first + rows):
                o = base + (((l * H + h) * P + p) * D) * 4
                out += data[o:o + dim * 4]
    return bytes(out)


for (layers, heads, kv, pos, qpos, tag) in [(1, 2, 1, 40, 40, "l1-h2-kv1-p40"), (2, 4, 2, 33, 5, "l2-h4-kv2-p33-q5")]:
    dim = 8
    tensors = [("q", "F32", [layers, heads, qpos, dim], cut("q", layers, heads, pos, dim, qpos)),
               ("k", "F32", [layers, kv, pos, dim], cut("k", layers, kv, pos, dim)),
               ("v", "F32", [layers, kv, pos, dim], cut("v", layers, kv, pos, dim)),
               ("o", "F32", [layers, heads, qpos, dim], cut("o", layers, heads, pos, dim, qpos))]
    put("TraceEvalFuzzTest", "raw", "demo-slice-" + tag, safetensors(tensors, {"scale": hdr["__metadata__"]["scale"]}))
nan = f32([float("nan")] * 8)
put("TraceEvalFuzzTest", "raw", "nan-query", safetensors(
    [("q", "F32", [1, 1, 1, 8], nan), ("k", "F32", [1, 1, 1, 8], rand_f32(8)), ("v", "F32", [1, 1, 1, 8], rand_f32(8))]))
put("TraceEvalFuzzTest", "raw", "k-v-shapes-differ", safetensors(
    [("q", "F32", [1, 1, 1, 4], rand_f32(4)), ("k", "F32", [1, 1, 2, 4], rand_f32(8)), ("v", "F32", [1, 1, 1, 4], rand_f32(4))]))
put("TraceEvalFuzzTest", "raw", "bad-scale", safetensors(
    [("q", "F32", [1, 1, 1, 4], rand_f32(4)), ("k", "F32", [1, 1, 1, 4], rand_f32(4)), ("v", "F32", [1, 1, 1, 4], rand_f32(4))],
    {"scale": "-inf"}))
put("TraceEvalFuzzTest", "raw", "f16-odd-dim", safetensors(
    [("q", "F16", [1, 3, 2, 3], bytes(36)), ("k", "F16", [1, 1, 2, 3], bytes(12)), ("v", "BF16", [1, 1, 2, 3], bytes(12))]))
for i in range(4):
    put("TraceEvalFuzzTest", "structured", "random-%d" % i, bytes(rng.getrandbits(8) for _ in range(64 + 200 * i)))


# ---- llama2.c checkpoint: a tiny synthetic model, truncations, lying headers -----------------------------
def checkpoint(dim, hidden, layers, heads, kv, vocab, seq, shared=True, fill=None):
    hd = dim // heads
    kvd = kv * hd
    floats = vocab * dim + layers * (2 * dim + 2 * dim * dim + 2 * kvd * dim + 3 * hidden * dim) + dim + seq * hd
    if not shared:
        floats += vocab * dim
    vals = [rng.uniform(-0.5, 0.5) if fill is None else fill for _ in range(floats)]
    return struct.pack("<7i", dim, hidden, layers, heads, kv, vocab if shared else -vocab, seq) + f32(vals)


tiny = checkpoint(8, 12, 1, 2, 1, 16, 4)
put("Llama2FuzzTest", "checkpoint", "tiny-shared", tiny)
put("Llama2FuzzTest", "checkpoint", "tiny-unshared", checkpoint(8, 12, 2, 4, 2, 10, 3, shared=False))
put("Llama2FuzzTest", "checkpoint", "tiny-nan-weights", checkpoint(4, 4, 1, 2, 2, 4, 2, fill=float("nan")))
put("Llama2FuzzTest", "checkpoint", "truncated", tiny[:-3])
put("Llama2FuzzTest", "checkpoint", "header-only", tiny[:28])
put("Llama2FuzzTest", "checkpoint", "size-overflow", struct.pack("<7i", 2**31 - 1, 2**31 - 1, 2**31 - 1, 1, 1, 2**31 - 1, 2**31 - 1))
put("Llama2FuzzTest", "checkpoint", "vocab-min-int", struct.pack("<7i", 8, 8, 1, 2, 1, -2**31, 4))
with open(os.path.join("/work", "shared", "data", "stories260K", "stories260K.bin"), "rb") if os.path.exists(
        "/work/shared/data/stories260K/stories260K.bin") else open(os.devnull, "rb") as f:
    head = f.read(28 + 4096)
if head:
    put("Llama2FuzzTest", "checkpoint", "stories260K-first-4k", head)  # truncated: the header and a few weights
for i in range(3):
    put("Llama2FuzzTest", "checkpointStructured", "random-%d" % i, bytes(rng.getrandbits(8) for _ in range(32 + 64 * i)))


# ---- llama2.c tokenizer: synthetic vocabularies with the byte-fallback block -----------------------------
def tokenizer(pieces, max_len=None):
    max_len = max_len if max_len is not None else max(1, max(len(p) for p in pieces))
    out = struct.pack("<i", max_len)
    for i, p in enumerate(pieces):
        out += struct.pack("<fi", -float(i), len(p)) + p
    return out


pieces = [b"<unk>", b"<s>", b"</s>"] + [b"<0x%02X>" % b for b in range(256)] + [b" ", b"e", b" t", b"he", b" the", b"\xc3\xa9"]
# FuzzedDataProvider takes the text from the front and the bos flag from the back: "text\\" ends the string
put("Llama2FuzzTest", "tokenizer", "byte-fallback-vocab", b"the caf\xc3\xa9 \xff\\ " + tokenizer(pieces) + b"\x01")
put("Llama2FuzzTest", "tokenizer", "tiny-vocab", b"hello\\ " + tokenizer([b"a", b"b", b" "]) + b"\x00")
put("Llama2FuzzTest", "tokenizer", "no-space-piece", b"xy\\ " + tokenizer(pieces[:259]) + b"\x00")
put("Llama2FuzzTest", "tokenizer", "length-past-max", b"\\ " + tokenizer([b"abc"], max_len=2))
put("Llama2FuzzTest", "tokenizer", "truncated", b"\\ " + tokenizer(pieces)[:-3])
