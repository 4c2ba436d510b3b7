#include "tokenizer/chat_template.h"

#include "gguf/gguf_file.h"
#include "tokenizer/unicode_props.h"
#include "util/error.h"

namespace glimpse {

namespace {

bool has(std::string_view s, std::string_view needle) {
  return s.find(needle) != std::string_view::npos;
}

// Jinja's "| trim" and Python's str.strip(): Unicode whitespace plus U+001C..U+001F.
std::string trim(std::string_view s) {
  std::vector<unicode::Unit> u;
  unicode::decode(s, u);
  auto space = [](const unicode::Unit& x) {
    return (x.props & unicode::kWhitespace) || (x.cp >= 0x1C && x.cp <= 0x1F);
  };
  size_t b = 0, e = u.size();
  while (b < e && space(u[b])) ++b;
  while (e > b && space(u[e - 1])) --e;
  if (b == e) return {};
  return std::string(s.substr(u[b].off, u[e - 1].off + u[e - 1].len - u[b].off));
}

// Every quoted string literal in the template, with Python-style escapes resolved.
std::vector<std::string> string_literals(std::string_view t) {
  std::vector<std::string> out;
  for (size_t i = 0; i < t.size(); ++i) {
    const char q = t[i];
    if (q != '\'' && q != '"') continue;
    std::string lit;
    size_t j = i + 1;
    for (; j < t.size() && t[j] != q; ++j) {
      if (t[j] == '\\' && j + 1 < t.size()) {
        const char c = t[++j];
        lit += c == 'n' ? '\n' : c == 't' ? '\t' : c == 'r' ? '\r' : c;
      } else {
        lit += t[j];
      }
    }
    out.push_back(std::move(lit));
    i = j;
  }
  return out;
}

// ChatML templates that add a system turn when the conversation lacks one spell it as a
// single literal "<|im_start|>system\n...<|im_end|>".
std::string chatml_default_system(std::string_view t) {
  const std::string head = "<|im_start|>system\n";
  for (const std::string& lit : string_literals(t)) {
    if (lit.rfind(head, 0) != 0) continue;
    const size_t end = lit.find("<|im_end|>");
    if (end == std::string::npos) continue;
    return lit.substr(head.size(), end - head.size());
  }
  return {};
}

}  // namespace

ChatTemplate ChatTemplate::chatml() { return ChatTemplate(); }

ChatTemplate ChatTemplate::from_text(std::string_view t, bool strict) {
  ChatTemplate ct;
  if (has(t, "<|im_start|>")) {
    ct.family_ = Family::kChatML;
    ct.name_ = "chatml";
    ct.default_system_ = chatml_default_system(t);
  } else if (has(t, "<|start_header_id|>") && has(t, "<|end_header_id|>")) {
    ct.family_ = Family::kLlama3;
    ct.name_ = "llama3";
  } else if (has(t, "<start_of_turn>")) {
    ct.family_ = Family::kGemma;
    ct.name_ = "gemma";
  } else if (has(t, "<|assistant|>") && has(t, "<|end|>")) {
    // The first Phi-3 release appended the assistant header after every user turn.
    if (has(t, "'<|end|>' + '\\n' + '<|assistant|>'") ||
        has(t, "'<|end|>' + '\n' + '<|assistant|>'")) {
      ct.family_ = Family::kPhi3Legacy;
      ct.name_ = "phi3-legacy";
    } else {
      ct.family_ = Family::kPhi3;
      ct.name_ = "phi3";
      ct.eos_without_prompt_ = has(t, "eos_token");
    }
  } else if (has(t, "[INST]")) {
    if (has(t, "<<SYS>>")) {
      ct.family_ = Family::kLlama2;
      ct.name_ = "llama2";
    } else {
      ct.family_ = Family::kMistral;
      ct.name_ = "mistral";
    }
  } else if (t.empty()) {
    ct.name_ = "chatml";
  } else {
    if (strict) {
      std::string head(t.substr(0, 60));
      for (char& c : head) if (c == '\n') c = ' ';
      fail("unrecognised chat template: '{}...'", head);
    }
    ct.name_ = "chatml-fallback";
  }
  return ct;
}

ChatTemplate ChatTemplate::from_gguf(const GgufFile& f, bool strict) {
  ChatTemplate ct = from_text(f.get_string_opt("tokenizer.chat_template").value_or(""), strict);
  if (f.has("tokenizer.ggml.tokens")) {
    const auto& toks = f.get_string_array("tokenizer.ggml.tokens");
    auto text = [&](const char* key, const std::string& dflt) {
      const int64_t id = f.get_int(key, -1);
      return (id >= 0 && static_cast<size_t>(id) < toks.size()) ? std::string(toks[id]) : dflt;
    };
    ct.set_special_text(text("tokenizer.ggml.bos_token_id", ct.bos_),
                        text("tokenizer.ggml.eos_token_id", ct.eos_));
  }
  return ct;
}

std::string ChatTemplate::render(const std::vector<ChatMessage>& msgs, bool gen) const {
  std::string out;
  switch (family_) {
    case Family::kChatML: {
      for (size_t i = 0; i < msgs.size(); ++i) {
        if (i == 0 && msgs[0].role != "system" && !default_system_.empty())
          out += "<|im_start|>system\n" + default_system_ + "<|im_end|>\n";
        out += "<|im_start|>" + msgs[i].role + "\n" + msgs[i].content + "<|im_end|>\n";
      }
      if (gen) out += "<|im_start|>assistant\n";
      break;
    }
    case Family::kLlama3: {
      for (const auto& m : msgs)
        out += "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n" + trim(m.content) +
               "<|eot_id|>";
      if (gen) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
      break;
    }
    case Family::kLlama2: {
      // Llama-2-chat: the system prompt goes into the first user turn inside <<SYS>>; each
      // user turn opens with BOS, each assistant turn closes with EOS.
      size_t i = 0;
      std::string system;
      if (!msgs.empty() && msgs[0].role == "system") system = msgs[i++].content;
      bool first = true;
      for (; i < msgs.size(); ++i, first = false) {
        std::string content = msgs[i].content;
        if (first && !system.empty())
          content = "<<SYS>>\n" + system + "\n<</SYS>>\n\n" + content;
        if (msgs[i].role == "user")  // the leading BOS is left to the tokenizer
          out += (out.empty() ? std::string() : bos_) + "[INST] " + trim(content) + " [/INST]";
        else if (msgs[i].role == "assistant") out += " " + trim(content) + " " + eos_;
      }
      break;
    }
    case Family::kMistral: {
      // No system role in the template: a system prompt is put before the first user turn.
      std::string system;
      for (const auto& m : msgs) {
        if (m.role == "system") {
          system += (system.empty() ? "" : "\n\n") + m.content;
        } else if (m.role == "user") {
          out += "[INST] " + (system.empty() ? m.content : system + "\n\n" + m.content) + " [/INST]";
          system.clear();
        } else if (m.role == "assistant") {
          out += m.content + eos_;
        }
      }
      break;
    }
    case Family::kGemma: {
      // No system role either; it is put in front of the first user turn.
      std::string system;
      for (const auto& m : msgs) {
        if (m.role == "system") {
          system += (system.empty() ? "" : "\n\n") + trim(m.content);
          continue;
        }
        const std::string role = m.role == "assistant" ? "model" : m.role;
        std::string content = trim(m.content);
        if (!system.empty() && role == "user") {
          content = system + "\n\n" + content;
          system.clear();
        }
        out += "<start_of_turn>" + role + "\n" + content + "<end_of_turn>\n";
      }
      if (gen) out += "<start_of_turn>model\n";
      break;
    }
    case Family::kPhi3: {
      for (const auto& m : msgs)
        if (m.role == "system" || m.role == "user" || m.role == "assistant")
          out += "<|" + m.role + "|>\n" + m.content + "<|end|>\n";
      if (gen) out += "<|assistant|>\n";
      else if (eos_without_prompt_) out += eos_;
      break;
    }
    case Family::kPhi3Legacy: {
      // System turns are dropped by this template; the assistant header follows every user
      // turn whatever add_generation_prompt says.
      for (const auto& m : msgs) {
        if (m.role == "user") out += "<|user|>\n" + m.content + "<|end|>\n<|assistant|>\n";
        else if (m.role == "assistant") out += m.content + "<|end|>\n";
      }
      break;
    }
  }
  return out;
}

}  // namespace glimpse
