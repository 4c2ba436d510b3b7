#!/usr/bin/env python3
"""Reference outputs from llama.cpp (llama-cpp-python) for the parity test.

For each prompt of prompts.py writes into OUT/:
  promptI.txt          the rendered chat text
  promptI.tokens.json  llama.cpp's token ids for it (special tokens parsed, model's BOS rule)
  promptI.logits.f32   teacher-forced logits [n_tokens][n_vocab] float32
  promptI.greedy.json  64 greedy tokens after the prompt (argmax, no stopping)
  promptI.alt-fa.f32   the same logits from llama.cpp with flash attention on
  promptI.alt-kv32.f32 the same logits from llama.cpp with an f32 KV cache
  promptI.alt-*.greedy.json  their greedy continuations
and eog.json with the end-of-generation token ids. The two alternative runs measure how far
llama.cpp moves under its own rounding choices: the noise floor that parity is judged against.

--kv-f32 runs the main pass with an f32 KV cache (flash attention off, as always), the
configuration of the F32 parity test; --no-alt skips the two alternative runs.
"""
import argparse
import json
import os
import sys

import numpy as np
import llama_cpp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import prompts  # noqa: E402


def greedy(llm, n):
    """n argmax tokens continuing what llm has evaluated (no stopping)."""
    gen = []
    for _ in range(n):
        nxt = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        gen.append(nxt)
        llm.eval([nxt])
    return gen


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--greedy", type=int, default=64)
    ap.add_argument("--kv-f32", action="store_true", help="f32 KV cache (GGML_TYPE_F32 = 0)")
    ap.add_argument("--no-alt", action="store_true", help="skip the alt-fa / alt-kv32 runs")
    a = ap.parse_args()
    kv = dict(type_k=0, type_v=0) if a.kv_f32 else {}
    os.makedirs(a.out, exist_ok=True)
    llm = llama_cpp.Llama(model_path=a.model, n_ctx=8192, n_batch=512, n_threads=a.threads,
                          n_threads_batch=a.threads, logits_all=True, verbose=False,
                          flash_attn=False, **kv)
    template = llm.metadata["tokenizer.chat_template"]
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    n_vocab = llm.n_vocab()
    eog = [t for t in range(n_vocab) if llama_cpp.llama_vocab_is_eog(vocab, t)]
    json.dump(eog, open(f"{a.out}/eog.json", "w"))
    add_bos = bool(llama_cpp.llama_vocab_get_add_bos(vocab))
    for i, msgs in enumerate(prompts.conversations()):
        text = prompts.render(template, msgs)
        open(f"{a.out}/prompt{i}.txt", "w", encoding="utf-8").write(text)
        toks = llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True)
        json.dump(toks, open(f"{a.out}/prompt{i}.tokens.json", "w"))
        llm.reset()
        llm.eval(toks)
        logits = np.asarray(llm.scores[:len(toks)], dtype=np.float32)
        logits.tofile(f"{a.out}/prompt{i}.logits.f32")
        json.dump(greedy(llm, a.greedy), open(f"{a.out}/prompt{i}.greedy.json", "w"))
        print(f"prompt{i}: {len(toks)} tokens", file=sys.stderr)
    del llm
    if a.no_alt:
        return
    for tag, kw in (("alt-fa", dict(flash_attn=True)), ("alt-kv32", dict(type_k=0, type_v=0))):
        alt = llama_cpp.Llama(model_path=a.model, n_ctx=8192, n_batch=512, n_threads=a.threads,
                              n_threads_batch=a.threads, logits_all=True, verbose=False, **kw)
        for i in range(len(prompts.conversations())):
            toks = json.load(open(f"{a.out}/prompt{i}.tokens.json"))
            alt.reset()
            alt.eval(toks)
            np.asarray(alt.scores[:len(toks)], dtype=np.float32).tofile(
                f"{a.out}/prompt{i}.{tag}.f32")
            json.dump(greedy(alt, a.greedy), open(f"{a.out}/prompt{i}.{tag}.greedy.json", "w"))
        del alt


if __name__ == "__main__":
    main()
