#!/usr/bin/env python3
"""Generate tokenizer reference data for the parity test (TokenizerParity.MatchesLlamaCpp).

Builds a deterministic (seeded) set of varied strings, tokenizes each one with
llama-cpp-python (vocab only, no BOS) and writes
    [{"text": str, "special": bool, "ids": [int, ...]}, ...]
to tests/parity/tokenizer_reference.json.

It also writes tests/parity/tokenizer_reference_pre.json: the same vocabulary relabelled
with other pre-tokenizers (llama-bpe, qwen2, gpt-2, falcon, deepseek-coder; written as
temporary vocab-only GGUF copies) and tokenized on a subset of the strings, so that
pre-tokenizers without a conformance fixture are checked too:
    [{"pre": str, "text": str, "special": bool, "ids": [int, ...]}, ...]

And tests/parity/tokenizer_reference_spm.json: special-token text through the
SentencePiece fixtures (llama-spm, phi-3), with and without BOS and special parsing:
    [{"vocab": str, "text": str, "special": bool, "bos": bool, "ids": [int, ...]}, ...]

Usage: .venv/bin/python tests/parity/llama_tokenize_ref.py [MODEL.gguf] [OUT.json]
"""
import json
import os
import random
import struct
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DEFAULT_MODEL = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
DEFAULT_OUT = os.path.join(HERE, "tokenizer_reference.json")
SEED = 20241126

LATIN = ["café", "naïve", "résumé", "Ångström", "Zürich", "São Paulo", "El Niño", "façade",
         "crème brûlée", "Dvořák", "Łódź", "Ærøskøbing", "straße", "İstanbul", "ﬁnal",
         "coöperate", "Š", "œuvre", "Hello", "world", "The", "quick", "brown", "fox"]
SCRIPTS = {
    "cyrillic": ["Привет", "мир", "Съешь", "же", "ещё", "этих", "мягких", "французских",
                 "булок", "ЁЛКА", "україна", "Їжак"],
    "greek": ["Καλημέρα", "κόσμε", "ΑΒΓΔ", "ψυχή", "ἀρχή", "Ὀδυσσεύς", "λόγος"],
    "cjk": ["你好", "世界", "中文分词测试", "東京都", "こんにちは", "カタカナ", "ひらがな",
            "한국어", "안녕하세요", "漢字かな交じり文", "𠀋𡈽", "々〆〤"],
    "arabic": ["مرحبا", "بالعالم", "السلام عليكم", "العربية", "ﷺ", "٣٤٥"],
    "hebrew": ["שלום", "עולם", "עִבְרִית"],
    "hindi": ["नमस्ते", "दुनिया", "हिन्दी", "क्षत्रिय", "१२३४"],
    "thai": ["สวัสดี", "ภาษาไทย", "กรุงเทพมหานคร"],
    "other": ["বাংলা", "தமிழ்", "ქართული", "Հայերեն", "አማርኛ", "ᏣᎳᎩ", "ᠮᠣᠩᠭᠣᠯ", "ខ្មែរ",
              "ລາວ", "မြန်မာ", "සිංහල", "ગુજરાતી"],
}
EMOJI = ["😀", "🚀", "👍🏽", "❤️", "✅", "🇺🇸", "🇯🇵", "🇩🇪🇫🇷", "👨‍👩‍👧‍👦", "👩🏻‍💻", "🏳️‍🌈",
         "🧑‍🤝‍🧑", "1️⃣", "#️⃣", "🤷‍♂️", "😶‍🌫️", "🦙", "🫠", "☕", "⌚", "©️", "™", "🈯"]
WS = [" ", "  ", "   ", "\t", "\t\t", "\n", "\n\n", "\r\n", "\r", " \n", "\n ", " \t ",
      "\u00a0", "\u3000", "\u2009", "\u2028", "\u0085", "\u000b", "\u000c", "    ", "\n\n\n"]
CODE = [
    "def foo(x):\n    return x * 2\n",
    "for (int i = 0; i < n; ++i) {\n\tsum += a[i];\n}",
    "#include <vector>\nint main() { std::vector<int> v{1, 2, 3}; }",
    '{"key": "value", "n": 12345, "list": [1.5, -2e10, null]}',
    "<div class=\"x\">Hello &amp; bye</div>",
    "SELECT * FROM users WHERE id = 42 AND name LIKE '%bob%';",
    "$ ls -la /usr/local/bin | grep -v '^d' > out.txt 2>&1",
    "x = [i**2 for i in range(10) if i % 3 == 0]  # squares",
    "fn main() -> Result<(), Box<dyn Error>> { println!(\"{}\", 0x1F); Ok(()) }",
    "if (a && b || !c) { return a->b.c[0]; } else if (x != y) {}",
    "    \n        nested = {'a': {'b': [1, 2, {'c': None}]}}\n",
    "https://example.com/path?q=1&r=%20x#frag",
    "user.name+tag@example.co.uk",
    "// TODO(someone): fix this!!!\n/* block */",
    "```python\nprint('hi')\n```",
    "a_b_c __init__ CamelCaseWord snake_case_word SCREAMING_CASE",
]
CONTRACTIONS = ["I'm", "don't", "we'll", "they've", "she'd", "it's", "IT'S", "You'RE", "WE'LL",
                "O'Neil", "rock 'n' roll", "'s", "'t", "''", "'''", "y'all", "can't've",
                "it’s", "l'homme", "'Tis", "'ve", "'LL", "'D", "don'T"]
SPECIALS = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<reponame>", "<file_sep>",
            "<jupyter_code>", "<empty_output>", "<|im_start", "im_end|>", "<|", "|>"]
PUNCT = list("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~") + ["…", "—", "–", "«", "»", "“", "”", "¿",
                                                     "¡", "·", "•", "§", "¶", "†", "€", "£",
                                                     "¥", "°", "±", "×", "÷", "→", "∑", "√"]
DIGITS = ["0", "7", "42", "123", "1234", "12345", "1234567890", "3.14159", "1,000,000",
          "2024-11-26", "0x1F", "1e-9", "½", "²³", "Ⅻ", "١٢٣", "१२३", "１２３", "①②"]


def rand_cp(rng):
    """A code point from a random block; mostly assigned ranges, sometimes anything."""
    blocks = [(0x20, 0x7E), (0xA0, 0x2FF), (0x300, 0x36F), (0x370, 0x52F), (0x590, 0x6FF),
              (0x900, 0xDFF), (0xE00, 0xEFF), (0x1100, 0x11FF), (0x1E00, 0x1FFF),
              (0x2000, 0x2BFF), (0x3000, 0x30FF), (0x4E00, 0x9FFF), (0xAC00, 0xD7A3),
              (0xF900, 0xFFFD), (0x1F000, 0x1FAFF), (0x10000, 0x10FFF), (0x20000, 0x2A6DF)]
    if rng.random() < 0.05:
        cp = rng.randrange(0x20, 0x30000)
    else:
        lo, hi = rng.choice(blocks)
        cp = rng.randint(lo, hi)
    if 0xD800 <= cp <= 0xDFFF:
        cp = 0x41
    return chr(cp)


def word(rng):
    kind = rng.random()
    if kind < 0.30:
        return rng.choice(LATIN)
    if kind < 0.55:
        return rng.choice(rng.choice(list(SCRIPTS.values())))
    if kind < 0.65:
        return rng.choice(EMOJI)
    if kind < 0.75:
        return rng.choice(DIGITS)
    if kind < 0.82:
        return rng.choice(CONTRACTIONS)
    if kind < 0.92:
        return "".join(rng.choice(PUNCT) for _ in range(rng.randint(1, 4)))
    return "".join(rand_cp(rng) for _ in range(rng.randint(1, 5)))


def sentence(rng, n_words):
    parts = []
    for _ in range(n_words):
        parts.append(word(rng))
        r = rng.random()
        parts.append(" " if r < 0.7 else rng.choice(WS) if r < 0.9 else "")
    return "".join(parts)


def generate():
    rng = random.Random(SEED)
    texts = []
    # Fixed edge cases first.
    texts += ["", " ", "  ", "\n", "\t", "\r\n", "a", "'", "''s", " 's", "1", " 1", "a1", "1a",
              "Hello world", " Hello world", "Hello  world", "Hello\n\nworld", "  leading",
              "trailing  ", "\n\n\nx", "x\n\n\n", "\t\tx", "x \t \n y"]
    for lst in [LATIN, EMOJI, DIGITS, CONTRACTIONS, CODE, WS, PUNCT] + list(SCRIPTS.values()):
        texts += lst
    # Single-category strings.
    for _ in range(150):
        n = rng.randint(1, 8)
        texts.append(" ".join(rng.choice(rng.choice(list(SCRIPTS.values()))) for _ in range(n)))
    for _ in range(120):
        texts.append("".join(rng.choice(EMOJI) + rng.choice(["", "", " ", "\u200d"])
                             for _ in range(rng.randint(1, 6))))
    for _ in range(120):
        digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 25)))
        texts.append(rng.choice(["", " ", "x", "$", "v"]) + digits +
                     rng.choice(["", " ", ".", "px", "%", "\n"]))
    for _ in range(120):
        texts.append("".join(rng.choice(WS) + rng.choice(["", "a", "word", "!", "1", "é"])
                             for _ in range(rng.randint(1, 6))))
    for _ in range(100):
        a, b = rng.sample(CODE, 2)
        texts.append(a + rng.choice(WS) + b)
    for _ in range(100):
        texts.append(" ".join(rng.choice(CONTRACTIONS + LATIN) for _ in range(rng.randint(2, 7))))
    # Mixed sentences of all sorts.
    for _ in range(700):
        texts.append(sentence(rng, rng.randint(1, 14)))
    # Random code point soups (valid UTF-8).
    for _ in range(300):
        texts.append("".join(rand_cp(rng) for _ in range(rng.randint(1, 40))))
    # A few long paragraphs.
    for _ in range(20):
        texts.append(sentence(rng, rng.randint(80, 200)))
    # Special-token text, tokenized both with and without special parsing.
    special_texts = [
        "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n",
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
        "Face<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
        "<|endoftext|>", " <|endoftext|> ", "<|im_end|><|im_end|>", "<|im_start|><|im_start|>",
        "a<|im_start|>b", "<|im_start", "<|im_start|", "<<|im_start|>>", "<reponame>x<file_sep>",
    ]
    for _ in range(250):
        parts = []
        for _ in range(rng.randint(1, 6)):
            parts.append(rng.choice(SPECIALS) if rng.random() < 0.4 else sentence(rng, rng.randint(0, 4)))
            parts.append(rng.choice(["", "", "\n", " ", "user\n", "assistant\n"]))
        special_texts.append("".join(parts))
    return texts, special_texts


PRE_VARIANTS = ["llama-bpe", "qwen2", "gpt-2", "falcon", "deepseek-coder"]


def relabel_pre(src, dst, pre):
    """Copy a GGUF's metadata (no tensors) with tokenizer.ggml.pre replaced."""
    scalar = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
              10: "<Q", 11: "<q", 12: "<d"}
    with open(src, "rb") as f:
        def rd(n):
            return f.read(n)

        def u32():
            return struct.unpack("<I", rd(4))[0]

        def u64():
            return struct.unpack("<Q", rd(8))[0]

        def raw_value(t):
            # Returns the value's bytes exactly as stored.
            if t == 8:
                n = u64()
                return struct.pack("<Q", n) + rd(n)
            if t == 9:
                et, n = u32(), u64()
                return struct.pack("<IQ", et, n) + b"".join(raw_value(et) for _ in range(n))
            return rd(struct.calcsize(scalar[t]))

        assert rd(4) == b"GGUF"
        version, _n_tensors, n_kv = u32(), u64(), u64()
        kvs = []
        for _ in range(n_kv):
            klen = u64()
            key = rd(klen)
            t = u32()
            kvs.append((key, t, raw_value(t)))
    out = [b"GGUF", struct.pack("<IQQ", version, 0, len(kvs))]
    for key, t, val in kvs:
        if key == b"tokenizer.ggml.pre":
            p = pre.encode()
            val = struct.pack("<Q", len(p)) + p
        out.append(struct.pack("<Q", len(key)) + key + struct.pack("<I", t) + val)
    with open(dst, "wb") as f:
        f.write(b"".join(out))


def pre_variant_rows(llama_cpp, model, texts, special_texts):
    rng = random.Random(SEED + 1)
    subset = rng.sample(texts, 500)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for pre in PRE_VARIANTS:
            path = os.path.join(tmp, f"vocab-{pre}.gguf")
            relabel_pre(model, path, pre)
            llm = llama_cpp.Llama(model_path=path, vocab_only=True, verbose=False)
            for text in subset:
                rows.append({"pre": pre, "text": text, "special": False,
                             "ids": llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)})
            for text in special_texts[:20]:
                rows.append({"pre": pre, "text": text, "special": True,
                             "ids": llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)})
            del llm
    return rows


SPM_TEXTS = ["<|user|>\nHello<|end|>\n<|assistant|>\n", "Hi <|end|>  \n x", "<s> a </s>  b",
             "<unk>x", " <|endoftext|> y", "a\u2581b  c", "", "  ", "Hello world",
             "<|system|> sys<|end|>\n\n<|user|>q", "\n<|end|>\t\t<|end|>"]


def spm_rows(llama_cpp):
    shared = os.environ.get("GLIMPSE_SHARED_DIR", os.path.join(ROOT, "..", "shared"))
    rows = []
    for name in ["llama-spm", "phi-3"]:
        path = os.path.join(shared, "conformance", "tokenizer", f"ggml-vocab-{name}.gguf")
        llm = llama_cpp.Llama(model_path=path, vocab_only=True, verbose=False)
        for text in SPM_TEXTS:
            for special in (False, True):
                for bos in (False, True):
                    ids = llm.tokenize(text.encode("utf-8"), add_bos=bos, special=special)
                    rows.append({"vocab": name, "text": text, "special": special, "bos": bos,
                                 "ids": ids})
        del llm
    return rows


def main():
    model = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_MODEL
    out = sys.argv[2] if len(sys.argv) > 2 else DEFAULT_OUT
    import llama_cpp
    llm = llama_cpp.Llama(model_path=model, vocab_only=True, verbose=False)
    texts, special_texts = generate()
    rows, seen = [], set()
    for text, flags in [(t, (False,)) for t in texts] + [(t, (False, True)) for t in special_texts]:
        for special in flags:
            if (text, special) in seen:
                continue
            seen.add((text, special))
            ids = llm.tokenize(text.encode("utf-8"), add_bos=False, special=special)
            rows.append({"text": text, "special": special, "ids": ids})
    with open(out, "w", encoding="utf-8") as f:
        json.dump(rows, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    n_text = len({r["text"] for r in rows})
    print(f"wrote {len(rows)} cases ({n_text} distinct strings) to {out}")

    pre_rows = pre_variant_rows(llama_cpp, model, texts, special_texts)
    pre_out = os.path.join(os.path.dirname(out), "tokenizer_reference_pre.json")
    with open(pre_out, "w", encoding="utf-8") as f:
        json.dump(pre_rows, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {len(pre_rows)} cases to {pre_out}")

    spm_out = os.path.join(os.path.dirname(out), "tokenizer_reference_spm.json")
    with open(spm_out, "w", encoding="utf-8") as f:
        json.dump(spm_rows(llama_cpp), f, ensure_ascii=False, indent=0)
        f.write("\n")
    print(f"wrote {spm_out}")


if __name__ == "__main__":
    main()
