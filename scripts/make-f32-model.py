#!/usr/bin/env python3
"""Writes an all-F32 copy of a GGUF model: every quantized, f16 or bf16 tensor dequantized
to f32 (gguf.quants.dequantize), f32 and integer tensors copied as they are, every metadata
key copied (tokenizer, chat template, hyperparameters) except general.file_type, which
becomes ALL_F32.

Used by the F32 parity test (tests/parity/check_parity.py --f32): with no quantization on
either side, glimpse and llama.cpp differ only by f32 summation order.

    .venv/bin/python scripts/make-f32-model.py IN.gguf OUT.gguf

Idempotent: an OUT newer than IN is left alone (--force rewrites it). The file is written
next to OUT under a temporary name and renamed into place, so a reader never sees half a
file.
"""
import argparse
import os
import sys

import numpy as np
from gguf import GGUFReader, GGUFValueType, GGUFWriter, GGMLQuantizationType, LlamaFileType
from gguf.quants import dequantize

# Keys the writer produces itself (header counts, architecture) or that this copy changes.
_SKIP = {"general.architecture", "general.file_type", "general.alignment"}
_KEEP_TYPES = {GGMLQuantizationType.F32, GGMLQuantizationType.I8, GGMLQuantizationType.I16,
               GGMLQuantizationType.I32, GGMLQuantizationType.I64, GGMLQuantizationType.F64}


def copy_metadata(reader, writer):
    for name, field in reader.fields.items():
        if name.startswith("GGUF.") or name in _SKIP:
            continue
        vtype = field.types[0]
        sub = field.types[-1] if vtype == GGUFValueType.ARRAY else None
        writer.add_key_value(name, field.contents(), vtype, sub_type=sub)
    writer.add_file_type(int(LlamaFileType.ALL_F32))
    align = reader.get_field("general.alignment")
    if align is not None:
        writer.data_alignment = int(align.contents())
        writer.add_uint32("general.alignment", writer.data_alignment)


def f32_tensor(t):
    """The tensor's values as a numpy array in GGUF's row-major order (dims reversed)."""
    if t.tensor_type in _KEEP_TYPES:
        return np.asarray(t.data)
    return np.ascontiguousarray(dequantize(np.asarray(t.data), t.tensor_type), dtype=np.float32)


def convert(src, dst):
    reader = GGUFReader(src)
    arch = reader.get_field("general.architecture").contents()
    tmp = f"{dst}.tmp{os.getpid()}"
    try:
        writer = GGUFWriter(tmp, arch)
        copy_metadata(reader, writer)
        n_conv = 0
        for t in reader.tensors:
            data = f32_tensor(t)
            n_conv += t.tensor_type not in _KEEP_TYPES
            writer.add_tensor(t.name, data)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    print(f"{dst}: {len(reader.tensors)} tensors, {n_conv} dequantized to f32", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--force", action="store_true", help="rewrite even if OUT is up to date")
    a = ap.parse_args()
    if (not a.force and os.path.exists(a.output)
            and os.path.getmtime(a.output) >= os.path.getmtime(a.input)):
        print(f"{a.output}: up to date", file=sys.stderr)
        return 0
    os.makedirs(os.path.dirname(os.path.abspath(a.output)), exist_ok=True)
    convert(a.input, a.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
