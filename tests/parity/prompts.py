"""Deterministic chat prompts for the logit-parity test, built from texts every Debian
system ships (/usr/share/common-licenses) and rendered with the model's own Jinja chat
template (jinja2), independently of glimpse's template code."""
import jinja2

LICENSES = "/usr/share/common-licenses"


def _excerpt(name, n_chars, start=0):
    with open(f"{LICENSES}/{name}", encoding="utf-8") as f:
        text = f.read()
    return text[start:start + n_chars]


def conversations():
    return [
        [{"role": "user", "content": _excerpt("GPL-3", 9400) +
          "\n\nSummarize the main obligations this license places on someone who distributes "
          "modified versions."}],
        [{"role": "system", "content": "You are a careful legal assistant."},
         {"role": "user", "content": _excerpt("Apache-2.0", 4200) +
          "\n\nWhat does the license say about patents?"}],
        [{"role": "user", "content": _excerpt("MPL-2.0", 2600, 1000) +
          "\n\nList three defined terms from this text."}],
        [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}],
        [{"role": "user", "content": "Write a Python function that reverses a string, with a "
          "docstring and two examples."}],
    ]


def render(template_text, messages):
    env = jinja2.Environment(trim_blocks=False, lstrip_blocks=False)
    return env.from_string(template_text).render(messages=messages, add_generation_prompt=True,
                                                 bos_token="", eos_token="")
