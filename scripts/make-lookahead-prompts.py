#!/usr/bin/env python3
"""Small LookaheadKV training/test prompt set from local text files.

Writes JSON lines {"context": ..., "question": ...}: windows of a few hundred to a few
thousand words cut from the given text files (default: Debian's license texts), each with a
question drawn from a fixed list. Deterministic for a seed.

usage: scripts/make-lookahead-prompts.py [-n 64] [--min-words 300] [--max-words 1200]
                                         [--seed 0] [-o prompts.jsonl] [FILES...]
"""
import argparse
import glob
import json
import os
import random
import sys

QUESTIONS = [
    "Summarize the text above in a few sentences.",
    "What are the main conditions or obligations described in the text above?",
    "Who holds the rights mentioned in the text above, and what may others do?",
    "List three key terms defined in the text above and explain each briefly.",
    "What does the text above say about warranty or liability?",
    "What happens, according to the text above, if someone breaks its terms?",
    "Quote the sentence of the text above that best states its purpose.",
    "Explain the text above to someone who has never read a license.",
    "Which parts of the text above deal with distribution or copying?",
    "Write a short list of questions a reader might still have after reading the text above.",
]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="*")
    ap.add_argument("-n", type=int, default=64, help="prompts to write")
    ap.add_argument("--min-words", type=int, default=300)
    ap.add_argument("--max-words", type=int, default=1200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("-o", "--output", default="-")
    a = ap.parse_args()
    files = a.files or sorted(p for p in glob.glob("/usr/share/common-licenses/*") if os.path.isfile(p))
    docs = []
    for p in files:
        with open(p, encoding="utf-8", errors="replace") as f:
            words = f.read().split(" ")
        if len(words) >= a.min_words // 2:
            docs.append(words)
    if not docs:
        sys.exit("no usable text files")
    rng = random.Random(a.seed)
    out = sys.stdout if a.output == "-" else open(a.output, "w", encoding="utf-8")
    for _ in range(a.n):
        words = rng.choice(docs)
        n = min(len(words), rng.randint(a.min_words, a.max_words))
        start = rng.randint(0, len(words) - n)
        context = " ".join(words[start:start + n]).strip()
        out.write(json.dumps({"context": context, "question": rng.choice(QUESTIONS)}) + "\n")
    if out is not sys.stdout:
        out.close()


if __name__ == "__main__":
    main()
