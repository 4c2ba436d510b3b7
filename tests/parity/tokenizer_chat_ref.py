#!/usr/bin/env python3
"""Reference chat prompts for ChatTemplateParity: real template texts rendered with Jinja2
the way Hugging Face's apply_chat_template does (sandboxed, trim_blocks, lstrip_blocks).

Writes tests/parity/tokenizer_chat_reference.json:
    [{"family", "template", "bos", "eos", "messages", "add_generation_prompt", "expected"}]
"expected" has the leading BOS text written by the template removed (the tokenizer adds BOS itself). Conversations
a template rejects (raise_exception) are left out.

Usage: .venv/bin/python tests/parity/tokenizer_chat_ref.py [MODEL.gguf]
"""
import json
import os
import sys

import jinja2
import jinja2.sandbox

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DEFAULT_MODEL = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
OUT = os.path.join(HERE, "tokenizer_chat_reference.json")

SMOLLM2 = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
    "Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}")

TEMPLATES = [
    ("chatml", "<s>", "</s>",
     "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
     "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
     "{{ '<|im_start|>assistant\\n' }}{% endif %}"),
    # Qwen2-Instruct
    ("chatml", "<|endoftext|>", "<|im_end|>",
     "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
     "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
     "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
     "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"),
    # Meta-Llama-3-8B-Instruct
    ("llama3", "<|begin_of_text|>", "<|eot_id|>",
     "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
     "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | "
     "trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}"
     "{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"
     "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"),
    # Llama-2-7b-chat-hf
    ("llama2", "<s>", "</s>",
     "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
     "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
     "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
     "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation "
     "roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 "
     "and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + "
     "'\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}"
     "{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + "
     "' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + "
     "eos_token }}{% endif %}{% endfor %}"),
    # Mistral-7B-Instruct-v0.1 / v0.2
    ("mistral", "<s>", "</s>",
     "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != "
     "(loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate "
     "user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}"
     "{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}"
     "{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant "
     "roles are supported!') }}{% endif %}{% endfor %}"),
    # gemma-7b-it
    ("gemma", "<bos>", "<eos>",
     "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not "
     "supported') }}{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != "
     "(loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate "
     "user/assistant/user/assistant/...') }}{% endif %}{% if (message['role'] == 'assistant') %}"
     "{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}"
     "{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}"
     "{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}"),
    # Phi-3-mini-4k-instruct / Phi-3.5-mini-instruct
    ("phi3", "<s>", "<|endoftext|>",
     "{% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>\n' + "
     "message['content'] + '<|end|>\n'}}{% elif message['role'] == 'user' %}{{'<|user|>\n' + "
     "message['content'] + '<|end|>\n'}}{% elif message['role'] == 'assistant' %}"
     "{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}{% endfor %}"
     "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}"),
    # First Phi-3 release (also the template in the phi-3 vocabulary fixture)
    ("phi3-legacy", "<s>", "<|endoftext|>",
     "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') %}"
     "{{'<|user|>' + '\n' + message['content'] + '<|end|>' + '\n' + '<|assistant|>' + '\n'}}"
     "{% elif (message['role'] == 'assistant') %}{{message['content'] + '<|end|>' + '\n'}}"
     "{% endif %}{% endfor %}"),
]

CONVERSATIONS = [
    ([{"role": "user", "content": "Hello!"}], True),
    ([{"role": "user", "content": "Hello!"}], False),
    ([{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Hi"},
      {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "What's 2+2?"}], True),
    ([{"role": "user", "content": "  spaced out \n"}, {"role": "assistant", "content": "\nok  "}], False),
    ([{"role": "user", "content": "Привет 👋 <b>bold</b>\n\nsecond line"}], True),
    ([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
      {"role": "user", "content": "c"}, {"role": "assistant", "content": "d"},
      {"role": "user", "content": "e"}], True),
    ([{"role": "system", "content": "Sys\nprompt"}, {"role": "user", "content": "x"}], False),
    ([], True),
]


def raise_exception(msg):
    raise jinja2.exceptions.TemplateError(msg)


def render(template, bos, eos, messages, gen):
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    out = env.from_string(template).render(messages=messages, add_generation_prompt=gen,
                                           bos_token=bos, eos_token=eos)
    # Only a BOS the template itself writes is removed (SmolLM2's BOS is "<|im_start|>").
    if "bos_token" in template and bos and out.startswith(bos):
        return out[len(bos):]
    return out


def smollm2_template(model):
    try:
        import llama_cpp
        llm = llama_cpp.Llama(model_path=model, vocab_only=True, verbose=False)
        return llm.metadata.get("tokenizer.chat_template", SMOLLM2)
    except Exception:  # no model or no binding: the copy above is the file's template
        return SMOLLM2


def main():
    model = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_MODEL
    templates = [("chatml", "<|im_start|>", "<|im_end|>", smollm2_template(model))] + TEMPLATES
    rows = []
    for family, bos, eos, tmpl in templates:
        for messages, gen in CONVERSATIONS:
            if not messages and family in ("llama2", "gemma"):
                continue  # these templates index messages[0]
            try:
                expected = render(tmpl, bos, eos, messages, gen)
            except jinja2.exceptions.TemplateError:
                continue
            rows.append({"family": family, "template": tmpl, "bos": bos, "eos": eos,
                         "messages": messages, "add_generation_prompt": gen,
                         "expected": expected})
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(rows, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {len(rows)} cases to {OUT}")


if __name__ == "__main__":
    main()
