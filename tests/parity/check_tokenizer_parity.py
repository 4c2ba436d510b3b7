#!/usr/bin/env python3
"""Token-id parity between `glimpse tokenize` and llama.cpp (llama-cpp-python) on one GGUF's
vocabulary, over thousands of varied strings.

The strings are those of llama_tokenize_ref.py (ASCII, whitespace runs, newlines, digits,
code, contractions, many scripts, emoji, random code points) plus strings aimed at
SentencePiece vocabularies like Gemma's: long runs of spaces, tabs and newlines (Gemma has
whitespace-run tokens), control characters and unassigned or private-use code points (byte
fallback), and the text of the vocabulary's own control and user-defined tokens, whole,
partial and glued to words. Every string is tokenized without special parsing, and the ones
holding special-token text also with it; a subset is also checked with the model's BOS rule.
glimpse tokenizes them all in one process (`glimpse tokenize --batch`).

Exit status: 0 when every case matches, 1 otherwise (the first mismatches are printed),
77 (skipped) when the model file is absent.
Usage: check_tokenizer_parity.py --glimpse build/bin/glimpse --model models/X.gguf
"""
import argparse
import json
import os
import random
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import llama_tokenize_ref  # noqa: E402  (the shared string generator; llama_cpp imported lazily)

SEED = 20250101
WS_PIECES = [" ", "\t", "\n", "\r", "\u00a0", "\u3000", "\u2581"]


def vocab_specials(path):
    """(control token texts, user-defined token texts) of the GGUF's vocabulary."""
    from gguf import GGUFReader
    r = GGUFReader(path)
    f, tt = r.fields["tokenizer.ggml.tokens"], r.fields["tokenizer.ggml.token_type"]
    control, user = [], []
    for i, ti in zip(f.data, tt.data):
        t = int(tt.parts[ti][0])
        text = bytes(f.parts[i]).decode("utf-8", "replace")
        if t == 3:
            control.append(text)
        elif t == 4:
            user.append(text)
    return control, user


def spm_strings(rng, control, user):
    """Strings aimed at SentencePiece vocabularies: (plain texts, texts with special text)."""
    plain, special = [], []
    for n in list(range(1, 41)) + [63, 64, 65, 100]:
        for ch in (" ", "\n", "\t"):
            plain.append(ch * n)
            plain.append("x" + ch * n + "y")
    for _ in range(250):
        plain.append("".join(rng.choice(WS_PIECES) * rng.randint(1, 12) +
                             rng.choice(["", "a", "word", "1", "é", "def", "}", "."])
                             for _ in range(rng.randint(1, 6))))
    # Byte fallback: control characters, private use, unassigned and rare code points.
    odd = [chr(c) for c in range(0, 32)] + ["\x7f", "\u0080", "\u009f", "\ue000", "\uf8ff",
           "\U000f0000", "\U0010fffd", "\u0378", "\u2fff", "\U0002a6d6", "\U00030000",
           "\ufffe", "\ufeff", "\u200b", "\u200d", "\u2060", "\U0001d400", "\U0001f9ff"]
    plain += odd
    for _ in range(200):
        plain.append("".join(rng.choice(odd + list("abc xyz") + ["é", "你"])
                             for _ in range(rng.randint(1, 12))))
    # User-defined tokens are split out even without special parsing.
    for _ in range(150):
        plain.append(rng.choice(["", "a", "Hi ", " x"]) + rng.choice(user) +
                     rng.choice(["", "b", " y", "\n", rng.choice(user)]))
    # Control tokens' text: whole, partial, glued, repeated.
    texts = control[:12] + rng.sample(control, min(60, len(control)))
    for c in texts:
        special += [c, " " + c + " ", "a" + c + "b", c + c, c[:-1], c[1:], "<" + c + ">"]
    for _ in range(200):
        parts = []
        for _ in range(rng.randint(1, 6)):
            r = rng.random()
            parts.append(rng.choice(texts) if r < 0.35 else rng.choice(user) if r < 0.45
                         else llama_tokenize_ref.sentence(rng, rng.randint(0, 5)))
            parts.append(rng.choice(["", "", "\n", " ", "user\n", "model\n"]))
        special.append("".join(parts))
    special.append("<start_of_turn>user\nWhat is the capital of France?<end_of_turn>\n"
                   "<start_of_turn>model\n")
    return plain, special


def glimpse_batch(glimpse, model, texts, special, bos):
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, encoding="utf-8") as f:
        json.dump(texts, f, ensure_ascii=False)
        path = f.name
    try:
        cmd = [glimpse, "tokenize", "-m", model, "--batch", path]
        if special:
            cmd.append("--special")
        if not bos:
            cmd.append("--no-bos")
        return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    finally:
        os.remove(path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--glimpse", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--show", type=int, default=10, help="mismatches to print")
    a = ap.parse_args()
    if not os.path.exists(a.model):
        print(f"SKIP: {a.model} not found")
        return 77
    import llama_cpp
    llm = llama_cpp.Llama(model_path=a.model, vocab_only=True, verbose=False)
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    add_bos = bool(llama_cpp.llama_vocab_get_add_bos(vocab))
    rng = random.Random(SEED)
    control, user = vocab_specials(a.model)
    texts, special_texts = llama_tokenize_ref.generate()
    plain2, special2 = spm_strings(rng, control, user)
    texts = list(dict.fromkeys(texts + special_texts + plain2 + special2))
    with_special = list(dict.fromkeys(special_texts + special2))
    with_bos = rng.sample(texts, 300)
    runs = [("plain", texts, False, False), ("special", with_special, True, False),
            ("bos", with_bos, False, add_bos)]
    total, bad = 0, 0
    for name, group, special, bos in runs:
        mine = glimpse_batch(a.glimpse, a.model, group, special, bos)
        n_bad = 0
        for text, got in zip(group, mine):
            want = llm.tokenize(text.encode("utf-8"), add_bos=bos, special=special)
            if got != want:
                n_bad += 1
                if bad + n_bad <= a.show:
                    print(f"MISMATCH ({name}) {text!r}\n  glimpse   {got}\n  llama.cpp {want}")
        print(f"{name}: {len(group)} strings, {n_bad} mismatches")
        total += len(group)
        bad += n_bad
    print(f"overall: {total} cases ({len(texts)} distinct strings), {bad} mismatches")
    print("PASS" if bad == 0 else "FAIL")
    return 0 if bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
