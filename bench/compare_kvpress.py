#!/usr/bin/env python3
"""Cross-check of glimpse's KV eviction policies against NVIDIA kvpress.

Both engines get the same GGUF (kvpress through transformers' GGUF loader, dequantized to
float32), the same prompt token ids (rendered and tokenized by glimpse), the same budget and
matched policy conventions. Both compress the whole prompt, question included (query-aware),
and answer greedily, the first token from the full-cache prefill logits. For every
(prompt, press, ratio) the kept prompt positions of every (layer, KV head) are compared by
Jaccard similarity, and the answers side by side.

Run through bench/compare-kvpress, which makes the venv and builds glimpse.
"""
import argparse
import concurrent.futures
import html.parser
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

# Never reach a model hub: the model is the local GGUF.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TQDM_DISABLE", "1")

HANDBOOK = Path("/usr/share/doc/debian-handbook/html/en-US")
LICENSES = Path("/usr/share/common-licenses")

# ---------------------------------------------------------------------------------------------
# Prompts: natural text from the machine's own documentation, each with a question.


class _Paragraphs(html.parser.HTMLParser):
    """Text of the handbook's <div class="para"> blocks (nested divs included)."""

    def __init__(self):
        super().__init__()
        self.out, self.depth, self.buf = [], 0, []

    def handle_starttag(self, tag, attrs):
        if tag != "div":
            return
        if self.depth:
            self.depth += 1
        elif ("class", "para") in attrs:
            self.depth, self.buf = 1, []

    def handle_endtag(self, tag):
        if tag == "div" and self.depth:
            self.depth -= 1
            if self.depth == 0:
                text = re.sub(r"\s+", " ", "".join(self.buf)).strip()
                if len(text) > 60:
                    self.out.append(text)

    def handle_data(self, data):
        if self.depth:
            self.buf.append(data)


def handbook_paragraphs(*pages):
    out = []
    for page in pages:
        p = _Paragraphs()
        p.feed((HANDBOOK / page).read_text(encoding="utf-8"))
        out += p.out
    return out


def take_chars(paragraphs, n_chars):
    out, size = [], 0
    for para in paragraphs:
        if size >= n_chars:
            break
        out.append(para)
        size += len(para) + 2
    return out


def with_needle(paragraphs, at, sentence):
    k = max(1, int(len(paragraphs) * at))
    return "\n\n".join(paragraphs[:k] + [sentence] + paragraphs[k:])


def license_text(name, start, n_chars):
    text = (LICENSES / name).read_text(encoding="utf-8")
    i = text.index(start)
    body = text[i:i + n_chars]
    return body[: body.rfind("\n\n")].strip()


NEEDLE_Q = ("What is the special magic number for {key} mentioned in the provided text? "
            "Answer with the number only.")


def build_prompts():
    """Five prompts of ~1-2K tokens: two license excerpts, one handbook section with an open
    question, and two handbook sections with one planted fact (a 7-digit number)."""
    prompts = [
        {"name": "gpl3", "question": "According to the license, what does it mean to \"convey\" a work?",
         "context": license_text("GPL-3", "TERMS AND CONDITIONS", 6500)},
        {"name": "apache2", "question": "When does the patent license granted by a Contributor terminate?",
         "context": license_text("Apache-2.0", "TERMS AND CONDITIONS", 7600)},
        {"name": "backup", "question": "Which command do the Falcot Corp administrators use daily to back up "
         "the file servers, and where do the backups go?",
         "context": "\n\n".join(handbook_paragraphs("sect.backup.html"))},
    ]
    apt = handbook_paragraphs("sect.apt-get.html")
    for name, key, value, n_chars, at, skip in (
            ("needle-1k", "rare-fountain", "2430909", 4200, 0.5, 0),
            ("needle-2k", "thin-glacier", "9582864", 8400, 0.35, 12)):
        paras = take_chars(apt[skip:], n_chars)
        sentence = f"One of the special magic numbers for {key} is: {value}."
        prompts.append({"name": name, "question": NEEDLE_Q.format(key=key),
                        "context": with_needle(paras, at, sentence), "needle": value})
    return prompts


# ---------------------------------------------------------------------------------------------
# Presses and their glimpse counterparts under matched conventions.
#
# kvpress budgets: n_kept = max(1, int(N * (1 - ratio))) entries per (layer, KV head), windows
# and sinks included; glimpse is given exactly that --kv-budget (its own --kv-ratio rounds
# instead of truncating, one entry more at some N). Window and pooling follow kvpress's
# defaults on both sides (glimpse's own defaults differ: see the results README).

SNAP_WINDOW, SNAP_KERNEL = 64, 5


def make_press(name, ratio, window=SNAP_WINDOW, kernel=SNAP_KERNEL):
    import kvpress
    if name == "streaming":
        return kvpress.StreamingLLMPress(compression_ratio=ratio, n_sink=4)
    if name == "snapkv":
        return kvpress.SnapKVPress(compression_ratio=ratio, window_size=window, kernel_size=kernel)
    if name == "knorm":
        return kvpress.KnormPress(compression_ratio=ratio)
    if name == "tova":
        return kvpress.TOVAPress(compression_ratio=ratio)
    if name in ("adakv", "adakv-a0"):
        return kvpress.AdaKVPress(kvpress.SnapKVPress(compression_ratio=ratio, window_size=window,
                                                      kernel_size=kernel), alpha_safeguard=0.2)
    if name == "expected_attention":
        return kvpress.ExpectedAttentionPress(compression_ratio=ratio)
    if name == "keydiff":
        return kvpress.KeyDiffPress(compression_ratio=ratio)
    raise ValueError(name)


def glimpse_policy(name, window=SNAP_WINDOW, kernel=SNAP_KERNEL):
    """glimpse flags matching a press (None: no counterpart)."""
    snap = ["--kv-window", str(window), "--kv-pool-kernel", str(kernel), "--kv-pool", "avg",
            "--kv-group-reduce", "mean"]
    return {
        "streaming": ["--kv-policy", "streaming", "--kv-sink", "4"],
        "snapkv": ["--kv-policy", "snapkv"] + snap,
        "knorm": ["--kv-policy", "knorm"],
        # kvpress keeps the last prompt token whatever its score.
        "tova": ["--kv-policy", "tova", "--kv-window", "1"],
        "adakv": ["--kv-policy", "adakv"] + snap,
        # kvpress's floor (int(0.2 * C) per head) is taken from each head's top scores, window
        # included, so whenever it is at most the window it guarantees nothing the window does
        # not: then the rest is the layer's global top, which is glimpse's rule with no floor.
        "adakv-a0": ["--kv-policy", "adakv", "--kv-ada-alpha", "0"] + snap,
        # kvpress protects 4 sinks; n_future_positions 512, covariance and value norms on.
        "expected_attention": ["--kv-policy", "expected_attention", "--kv-sink", "4"],
        # One shot over the whole prompt (not kvpress's BlockPress form).
        "keydiff": ["--kv-policy", "keydiff"],
    }.get(name)


def n_kept(n, ratio):
    return max(1, int(n * (1 - ratio)))


# ---------------------------------------------------------------------------------------------
# glimpse


def dequantize_gguf(src, dst):
    """Writes src with every tensor dequantized to F32 by gguf's own dequantizer (the one
    transformers' GGUF loader uses), metadata unchanged but the file type."""
    import gguf
    import numpy as np
    r = gguf.GGUFReader(src)
    arch = r.fields[gguf.Keys.General.ARCHITECTURE].contents()
    tmp = dst + ".tmp"
    w = gguf.GGUFWriter(tmp, arch)
    for field in r.fields.values():
        if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
            continue
        vtype = field.types[0]
        sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        value = field.contents()
        if field.name == gguf.Keys.General.FILE_TYPE:
            value = int(gguf.LlamaFileType.ALL_F32)
        w.add_key_value(field.name, value, vtype, sub_type=sub)
    for t in r.tensors:
        data = np.ascontiguousarray(gguf.quants.dequantize(t.data, t.tensor_type), dtype=np.float32)
        w.add_tensor(t.name, data, raw_dtype=gguf.GGMLQuantizationType.F32)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    os.replace(tmp, dst)


class Glimpse:
    def __init__(self, exe, model, threads, n_predict, numerics, work):
        self.exe, self.model, self.threads, self.n_predict = exe, model, threads, n_predict
        self.numerics, self.work = numerics, Path(work)
        self.work.mkdir(parents=True, exist_ok=True)
        self.model_f32 = str(self.work.parent / (Path(model).stem + ".F32.gguf"))
        if not Path(self.model_f32).exists():
            dequantize_gguf(model, self.model_f32)
        help_text = subprocess.run([exe, "run", "--help"], capture_output=True, text=True).stdout
        line = next((l for l in help_text.splitlines() if "--kv-policy" in l), "")
        self.policies = set(re.findall(r"[a-z_0-9]+", line.split("after prefill:")[-1]))

    def has(self, policy):
        return policy in self.policies

    def run(self, prompt, flags, budget, numerics=None, tag="run"):
        numerics = numerics or self.numerics
        ctx = self.work / f"{prompt['name']}.txt"
        if not ctx.exists() or ctx.read_text(encoding="utf-8") != prompt["context"]:
            tmp = ctx.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.write_text(prompt["context"], encoding="utf-8")
            os.replace(tmp, ctx)  # runs in flight never see a partial file
        dump = self.work / f"{prompt['name']}.{tag}.kept.json"
        cmd = [self.exe, "run", "-m", self.model, "-f", str(ctx), "--question", prompt["question"],
               "--chat", "-n", str(self.n_predict), "--temp", "0", "-t", str(self.threads),
               "-c", "4096", "-q", "--kv-dump-kept", str(dump)]
        env = dict(os.environ)
        if numerics == "matched":
            # The f32 GGUF (the same dequantized weights transformers multiplies), so the f32
            # matmul path with f32 activations, and an f32 KV cache: transformers' arithmetic
            # up to summation order.
            cmd[cmd.index(self.model)] = self.model_f32
            cmd += ["-ctk", "f32", "-ctv", "f32"]
        if flags:
            cmd += flags + ["--kv-budget", str(budget)]
        t0 = time.time()
        p = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if p.returncode != 0:
            raise RuntimeError(f"glimpse failed ({' '.join(cmd)}):\n{p.stderr}")
        d = json.loads(dump.read_text())
        dump.unlink()
        return {"answer": p.stdout.strip(), "tokens": d["tokens"], "kept": d["kept"],
                "window": d["window"], "sinks": d["sinks"], "budget": d["budget"],
                "seconds": round(time.time() - t0, 2), "cmd": cmd[1:]}


# ---------------------------------------------------------------------------------------------
# kvpress


class Kvpress:
    def __init__(self, model_path, threads, n_predict):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        import transformers
        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
        torch.set_num_threads(threads)
        d, f = os.path.split(os.path.abspath(model_path))
        self.torch = torch
        self.tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
        self.model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32)
        self.model.eval()
        self.n_predict = n_predict
        eos = self.model.generation_config.eos_token_id
        self.eos = set(eos if isinstance(eos, list) else [eos]) | {self.tok.eos_token_id}

    def _capture(self, press, store):
        """Records each layer's kept positions as the press compresses it. Presses that gather
        (every ScorerPress) are read by matching the kept key rows to the full ones (a gather
        copies rows exactly); Ada-KV masks instead of removing, and names the masked ones."""
        torch = self.torch
        orig = press.compress
        ada = type(press).__name__ == "AdaKVPress"

        def compress(module, hidden_states, keys, values, attentions, kwargs):
            k2, v2 = orig(module, hidden_states, keys, values, attentions, kwargs)
            n_heads, n = keys.shape[1], keys.shape[2]
            if ada:
                _, heads, seq = module.masked_key_indices
                keep = torch.ones(n_heads, n, dtype=torch.bool)
                keep[heads, seq] = False
                kept = [torch.nonzero(keep[h]).flatten().tolist() for h in range(n_heads)]
            else:
                kept = []
                for h in range(n_heads):
                    rows = {r.tobytes(): j for j, r in enumerate(keys[0, h].float().numpy())}
                    if len(rows) != n:
                        raise RuntimeError("identical key rows: cannot map kept entries")
                    kept.append(sorted(rows[r.tobytes()] for r in k2[0, h].float().numpy()))
            store[module.layer_idx] = kept
            return k2, v2

        press.compress = compress

    def _reset_masks(self):
        # Ada-KV leaves its masked entries on the attention modules; a live prefill clears
        # them (kvpress's attention patch), a replay must do it itself.
        for layer in self.model.model.layers:
            layer.self_attn.masked_key_indices = None

    def _decode(self, first, cache, n):
        """Greedy tokens from `first` on, decoding at position N onwards whatever the
        compressed cache's length (as kvpress's pipeline does)."""
        torch = self.torch
        gen, tok = [], first
        for i in range(self.n_predict):
            if tok in self.eos:
                break
            gen.append(tok)
            if i + 1 == self.n_predict:
                break
            out = self.model(input_ids=torch.tensor([[tok]]), past_key_values=cache,
                             position_ids=torch.tensor([[n + i]]))
            tok = int(out.logits[0, -1].argmax())
        return gen

    def _result(self, gen, kept, t0):
        n_layer = self.model.config.num_hidden_layers
        return {"answer": self.tok.decode(gen, skip_special_tokens=True).strip(), "answer_ids": gen,
                "seconds": round(time.time() - t0, 2),
                "kept": [kept[l] for l in range(n_layer)] if kept else None}

    def prefill(self, ids):
        """Full-cache prefill of a prompt, recording each attention layer's call (its kwargs:
        hidden states, position embeddings, cache positions; and its output) so that any press
        can be applied afterwards exactly as its forward hook would have during this prefill.
        A press's hook on layer l reads only layer l's inputs and cache, which no other
        layer's compression changes within the prefill, so the replay is the live run.
        Returns the full-cache greedy answer."""
        torch = self.torch
        from transformers import DynamicCache
        self._reset_masks()
        calls, hooks = {}, []
        for layer in self.model.model.layers:
            def rec(module, args, kwargs, output):
                calls[module.layer_idx] = (dict(kwargs), output)
            hooks.append(layer.self_attn.register_forward_hook(rec, with_kwargs=True))
        cache = DynamicCache()
        t0 = time.time()
        try:
            with torch.inference_mode():
                out = self.model(input_ids=torch.tensor([ids]), past_key_values=cache, logits_to_keep=1)
        finally:
            for h in hooks:
                h.remove()
        self.ids, self.calls = ids, calls
        self.first = int(out.logits[0, -1].argmax())  # every press answers from these logits
        self.full = [(l.keys.clone(), l.values.clone()) for l in cache.layers]
        with torch.inference_mode():
            gen = self._decode(self.first, cache, len(ids))
        return self._result(gen, None, t0)

    def replay(self, press):
        """The press applied to the recorded prefill through its own forward_hook, then greedy
        decoding on the compressed cache."""
        torch = self.torch
        from transformers import DynamicCache
        kept = {}
        self._capture(press, kept)
        press.post_init_from_model(self.model)
        for layer in self.model.model.layers:  # what press(model) sets up
            layer.self_attn.rotary_emb = self.model.model.rotary_emb
        self._reset_masks()
        cache = DynamicCache()
        t0 = time.time()
        with torch.inference_mode():
            for l, (k, v) in enumerate(self.full):
                cache.update(k.clone(), v.clone(), l)
            for l, layer in enumerate(self.model.model.layers):
                kwargs, output = self.calls[l]
                kwargs = dict(kwargs, past_key_values=cache)
                press.forward_hook(layer.self_attn, (), kwargs, output)
            gen = self._decode(self.first, cache, len(self.ids))
        return self._result(gen, kept, t0)

    def run_live(self, ids, press):
        """The press as kvpress's users run it: a prefill inside `with press(model)`."""
        torch = self.torch
        from transformers import DynamicCache
        kept = {}
        self._capture(press, kept)
        cache = DynamicCache()
        t0 = time.time()
        with torch.inference_mode():
            with press(self.model):
                out = self.model(input_ids=torch.tensor([ids]), past_key_values=cache, logits_to_keep=1)
            gen = self._decode(int(out.logits[0, -1].argmax()), cache, len(ids))
        return self._result(gen, kept, t0)


# ---------------------------------------------------------------------------------------------
# Comparison


def jaccards(a, b):
    out = []
    for la, lb in zip(a, b):
        for ha, hb in zip(la, lb):
            sa, sb = set(ha), set(hb)
            out.append(len(sa & sb) / max(1, len(sa | sb)))
    return out


def scored_jaccards(a, b, protected):
    """Jaccard over the entries not protected by both sides (sinks / window): the part the
    scores chose."""
    out = []
    for la, lb in zip(a, b):
        for ha, hb in zip(la, lb):
            sa, sb = set(ha) - protected, set(hb) - protected
            out.append(len(sa & sb) / max(1, len(sa | sb)) if (sa or sb) else 1.0)
    return out


def needle_positions(ids, tokenizer, value):
    """Positions of the planted number's tokens in the prompt (digits are single tokens)."""
    digits = [tokenizer.convert_tokens_to_ids(c) for c in value]
    for i in range(len(ids) - len(digits) + 1):
        if ids[i:i + len(digits)] == digits:
            return list(range(i, i + len(digits)))
    return []


def needle_kept(kept, pos):
    """Share of (layer, KV head) that keep every token of the number, and that keep any."""
    heads = [set(h) for layer in kept for h in layer]
    if not pos:
        return None
    return {"all_digits": round(sum(all(p in h for p in pos) for h in heads) / len(heads), 3),
            "any_digit": round(sum(any(p in h for p in pos) for h in heads) / len(heads), 3)}


def agree(a, b):
    return " ".join(a.split()) == " ".join(b.split())


def md_cell(s, n=90):
    s = " ".join(s.split()).replace("|", "\\|")
    return s if len(s) <= n else s[: n - 1] + "…"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--glimpse", default="build/bin/glimpse")
    ap.add_argument("-m", "--model", default="models/SmolLM2-135M-Instruct.Q4_1.gguf")
    ap.add_argument("-o", "--out", default="runs/kvpress")
    ap.add_argument("-t", "--threads", type=int, default=2, help="torch threads (kvpress)")
    ap.add_argument("--glimpse-jobs", type=int, default=2,
                    help="glimpse runs at once (one thread each), alongside kvpress")
    ap.add_argument("-n", "--n-predict", type=int, default=48)
    ap.add_argument("--ratios", default="0.5,0.75,0.9")
    ap.add_argument("--presses", default="streaming,snapkv,knorm,tova,adakv,adakv-a0,expected_attention,keydiff")
    ap.add_argument("--prompts", default="", help="comma-separated prompt names (default: all)")
    ap.add_argument("--numerics", choices=["matched", "default"], default="matched",
                    help="glimpse arithmetic: matched = the GGUF dequantized to an F32 GGUF (f32 "
                         "matmuls, as transformers) and an f32 KV cache; default = glimpse's own "
                         "(int8 activations for quantized weights, f16 cache)")
    ap.add_argument("--verify-live", default="adakv:0.75",
                    help="PRESS:RATIO pairs run live too (inside `with press(model)`) on the first "
                         "prompt, to check that replaying the hooks on the recorded prefill is the "
                         "live run ('' to skip)")
    ap.add_argument("--needle-budget", type=int, default=256,
                    help="SnapKV budget of the planted-fact check (0: skip it)")
    ap.add_argument("--report-only", action="store_true",
                    help="rebuild table.md and answers.md from OUT/details.json")
    args = ap.parse_args()

    out = Path(args.out)
    if args.report_only:
        details = json.loads((out / "details.json").read_text())
        write_reports(details, out)
        return
    out.mkdir(parents=True, exist_ok=True)
    prompts = build_prompts()
    if args.prompts:
        keep = set(args.prompts.split(","))
        prompts = [p for p in prompts if p["name"] in keep]
    ratios = [float(r) for r in args.ratios.split(",")]
    presses = args.presses.split(",")

    import kvpress
    import torch
    import transformers
    versions = {"kvpress": kvpress.__version__ if hasattr(kvpress, "__version__") else
                __import__("importlib.metadata").metadata.version("kvpress"),
                "transformers": transformers.__version__, "torch": torch.__version__,
                "gguf": __import__("importlib.metadata").metadata.version("gguf"),
                "numpy": __import__("numpy").__version__, "python": sys.version.split()[0]}
    print(f"versions: {versions}", file=sys.stderr)

    g = Glimpse(args.glimpse, args.model, 1, args.n_predict, args.numerics, out / "work")
    jobs = concurrent.futures.ThreadPoolExecutor(max_workers=args.glimpse_jobs)
    t0 = time.time()
    kp = Kvpress(args.model, args.threads, args.n_predict)
    print(f"kvpress model loaded in {time.time() - t0:.0f} s", file=sys.stderr)

    details = {"versions": versions, "numerics": args.numerics, "n_predict": args.n_predict,
               "snapkv": {"window": SNAP_WINDOW, "kernel": SNAP_KERNEL, "pool": "avg"},
               "prompts": [], "runs": [], "needle": []}
    for p in prompts:
        base = g.run(p, None, 0, tag="none")
        ids = base["tokens"]
        ref = kp.prefill(ids)
        info = {"name": p["name"], "n_tokens": len(ids), "question": p["question"],
                "glimpse_full": base["answer"], "kvpress_full": ref["answer"],
                "full_agree": agree(base["answer"], ref["answer"])}
        if "needle" in p:
            info["needle"] = p["needle"]
            info["needle_positions"] = needle_positions(ids, kp.tok, p["needle"])
        details["prompts"].append(info)
        print(f"[{p['name']}] {len(ids)} tokens; full cache: glimpse {base['answer']!r} | "
              f"kvpress {ref['answer']!r}", file=sys.stderr)
        # glimpse runs in the background while kvpress replays its presses here.
        pending = {}
        for name in presses:
            flags = glimpse_policy(name)
            if flags and g.has(flags[1]):
                for r in ratios:
                    pending[name, r] = jobs.submit(g.run, p, flags, n_kept(len(ids), r), None, f"{name}-{r}")
        needle_jobs = None
        if "needle" in p and args.needle_budget and args.needle_budget < len(ids):
            needle_jobs = submit_needle_glimpse(p, g, jobs, args.needle_budget)
        for name in presses:
            for r in ratios:
                c = n_kept(len(ids), r)
                k = kp.replay(make_press(name, r))
                row = {"prompt": p["name"], "press": name, "ratio": r, "n_tokens": len(ids),
                       "budget": c, "kvpress_answer": k["answer"], "kvpress_s": k["seconds"]}
                if (name, r) in pending:
                    gl = pending[name, r].result()
                    prot = set(range(gl["sinks"])) | set(range(len(ids) - gl["window"], len(ids)))
                    js = jaccards(gl["kept"], k["kept"])
                    jsc = scored_jaccards(gl["kept"], k["kept"], prot)
                    sizes_g = [len(h) for layer in gl["kept"] for h in layer]
                    sizes_k = [len(h) for layer in k["kept"] for h in layer]
                    row.update({"glimpse_answer": gl["answer"], "glimpse_s": gl["seconds"],
                                "window": gl["window"], "sinks": gl["sinks"],
                                "jaccard": [round(x, 4) for x in js],
                                "jaccard_scored": [round(x, 4) for x in jsc],
                                "jaccard_mean": statistics.mean(js), "jaccard_min": min(js),
                                "jaccard_scored_mean": statistics.mean(jsc),
                                "head_budget_mean_abs_diff": statistics.mean(
                                    abs(a - b) for a, b in zip(sizes_g, sizes_k)),
                                "answers_agree": agree(gl["answer"], k["answer"]),
                                # Per (layer, head): positions only one engine kept.
                                "only_glimpse": [sorted(set(a) - set(b)) for la, lb in
                                                 zip(gl["kept"], k["kept"]) for a, b in zip(la, lb)],
                                "only_kvpress": [sorted(set(b) - set(a)) for la, lb in
                                                 zip(gl["kept"], k["kept"]) for a, b in zip(la, lb)],
                                "glimpse_cmd": " ".join(gl["cmd"])})
                    if "needle" in p:
                        row["needle_kept_glimpse"] = needle_kept(gl["kept"], info["needle_positions"])
                if "needle" in p:
                    row["needle_kept_kvpress"] = needle_kept(k["kept"], info["needle_positions"])
                details["runs"].append(row)
                print(f"  {name:18s} r={r:<5} C={c:<5} J={row.get('jaccard_mean', float('nan')):.3f} "
                      f"glimpse {row.get('glimpse_answer', '-')!r} | kvpress {k['answer']!r}",
                      file=sys.stderr)
        if p is prompts[0] and args.verify_live:
            for pair in args.verify_live.split(","):
                name, r = pair.split(":")
                live = kp.run_live(ids, make_press(name, float(r)))
                rep = kp.replay(make_press(name, float(r)))
                same = live["kept"] == rep["kept"] and live["answer_ids"] == rep["answer_ids"]
                details.setdefault("replay_check", []).append(
                    {"prompt": p["name"], "press": name, "ratio": float(r), "identical": same})
                print(f"  replay check {name}@{r}: {'identical' if same else 'DIFFERENT'}", file=sys.stderr)
                if not same:
                    raise SystemExit("replaying the press hooks differs from the live run")
        if needle_jobs:
            details["needle"] += needle_check(p, info, ids, kp, args.needle_budget, needle_jobs)
        (out / "details.json").write_text(json.dumps(details, indent=1))

    details["ratios"], details["presses"] = ratios, presses
    (out / "details.json").write_text(json.dumps(details, indent=1))
    write_reports(details, out)


def write_reports(details, out):
    ratios = details.get("ratios") or sorted({r["ratio"] for r in details["runs"]})
    presses = details.get("presses") or list(dict.fromkeys(r["press"] for r in details["runs"]))
    md = report(details, ratios, presses)
    (out / "table.md").write_text(md)
    lines = ["| prompt | press | ratio | budget | glimpse | kvpress |", "|---|---|---:|---:|---|---|"]
    for p in details["prompts"]:
        lines.append(f"| {p['name']} | full cache | 0 | {p['n_tokens']} | {md_cell(p['glimpse_full'], 200)} | "
                     f"{md_cell(p['kvpress_full'], 200)} |")
        for r in details["runs"]:
            if r["prompt"] == p["name"]:
                lines.append(f"| {p['name']} | {r['press']} | {r['ratio']} | {r['budget']} | "
                             f"{md_cell(r.get('glimpse_answer', '—'), 200)} | {md_cell(r['kvpress_answer'], 200)} |")
    (out / "answers.md").write_text("\n".join(lines) + "\n")
    print(md)


NEEDLE_GLIMPSE = (  # label, window, kernel, pool, numerics
    ("glimpse default (32/7/max, int8 + f16 cache)", 32, 7, "max", "default"),
    ("glimpse, kvpress conventions (64/5/avg, f32)", 64, 5, "avg", "matched"),
    ("glimpse, kvpress conventions (64/5/avg, int8 + f16 cache)", 64, 5, "avg", "default"),
    ("glimpse, window 32 kernel 7 avg (f32)", 32, 7, "avg", "matched"))
NEEDLE_KVPRESS = (("kvpress default (64/5/avg, f32)", 64, 5),
                  ("kvpress, window 32 kernel 7 (avg, f32)", 32, 7))
NEEDLE_PAIRS = ((NEEDLE_GLIMPSE[1][0], NEEDLE_KVPRESS[0][0]), (NEEDLE_GLIMPSE[3][0], NEEDLE_KVPRESS[1][0]))


def submit_needle_glimpse(p, g, jobs, budget):
    out = []
    for label, window, kernel, pool, numerics in NEEDLE_GLIMPSE:
        flags = ["--kv-policy", "snapkv", "--kv-window", str(window), "--kv-pool-kernel", str(kernel),
                 "--kv-pool", pool]
        out.append((label, jobs.submit(g.run, p, flags, budget, numerics,
                                       f"needle-{window}-{kernel}-{pool}-{numerics}")))
    return out


def needle_check(p, info, ids, kp, budget, glimpse_jobs):
    """SnapKV at a fixed budget on a planted-fact prompt, under glimpse's own configuration and
    numerics, under kvpress's conventions in both engines, and kvpress's own."""
    n = len(ids)
    ratio = 1 - (budget + 0.5) / n  # int(n * (1 - ratio)) == budget
    assert n_kept(n, ratio) == budget
    pos = info["needle_positions"]
    runs = [("kvpress", label, kp.replay(make_press("snapkv", ratio, window, kernel)))
            for label, window, kernel in NEEDLE_KVPRESS]
    runs = [("glimpse", label, job.result()) for label, job in glimpse_jobs] + runs
    rows = [{"prompt": p["name"], "engine": engine, "config": label, "budget": budget,
             "answer": r["answer"], "needle": p["needle"], "needle_kept": needle_kept(r["kept"], pos),
             "kept": r["kept"]} for engine, label, r in runs]
    by = {r["config"]: r for r in rows}
    for a, b in NEEDLE_PAIRS:  # same conventions: Jaccard between the engines at this budget
        by[a]["jaccard_vs_kvpress"] = round(statistics.mean(jaccards(by[a]["kept"], by[b]["kept"])), 4)
    for r in rows:
        del r["kept"]
        print(f"  needle {p['name']} @{budget} {r['config']}: {r['answer']!r} kept {r['needle_kept']}",
              file=sys.stderr)
    return rows


def report(details, ratios, presses):
    lines = [f"glimpse numerics: {details['numerics']}; SnapKV/Ada-KV window {SNAP_WINDOW}, "
             f"kernel {SNAP_KERNEL}, avg pool, group mean; {len(details['prompts'])} prompts, "
             f"greedy {details['n_predict']} tokens", ""]
    lines += ["| prompt | tokens | full-cache answers agree |", "|---|---:|---|"]
    for p in details["prompts"]:
        lines.append(f"| {p['name']} | {p['n_tokens']} | {'yes' if p['full_agree'] else 'no'} |")
    lines += ["", "| press | ratio | mean Jaccard | min Jaccard | mean Jaccard (scored part) | "
              "answers agree |", "|---|---:|---:|---:|---:|---:|"]
    for name in presses:
        for r in ratios:
            rows = [x for x in details["runs"] if x["press"] == name and x["ratio"] == r]
            cmp_rows = [x for x in rows if "jaccard" in x]
            if not cmp_rows:
                lines.append(f"| {name} | {r} | — | — | — | — (no glimpse policy) |")
                continue
            allj = [j for x in cmp_rows for j in x["jaccard"]]
            alls = [j for x in cmp_rows for j in x["jaccard_scored"]]
            n_agree = sum(x["answers_agree"] for x in cmp_rows)
            lines.append(f"| {name} | {r} | {statistics.mean(allj):.3f} | {min(allj):.3f} | "
                         f"{statistics.mean(alls):.3f} | {n_agree}/{len(cmp_rows)} |")
    if details["needle"]:
        lines += ["", "| needle prompt | engine, SnapKV configuration | budget | answer | expected | "
                  "(layer, head) keeping all digits | Jaccard vs kvpress |", "|---|---|---:|---|---|---:|---:|"]
        for r in details["needle"]:
            kept = r["needle_kept"]["all_digits"] if r["needle_kept"] else "—"
            jv = r.get("jaccard_vs_kvpress", "")
            lines.append(f"| {r['prompt']} | {r['config']} | {r['budget']} | {md_cell(r['answer'], 120)} | "
                         f"{r['needle']} | {kept} | {jv} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
