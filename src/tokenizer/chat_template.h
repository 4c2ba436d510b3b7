// Chat prompt formatting for the common template families.
//
// GGUF files carry the model's Jinja template (tokenizer.chat_template). Rather than run
// Jinja, the template text is matched to a known family by its markers, and the family is
// rendered by hand here; tests/parity checks the output against Jinja itself for real
// templates. Details a family's template encodes as data (a default system prompt, the
// BOS/EOS text) are read from the template and the vocabulary.
//
// The output never starts with the BOS text: encode(..., add_bos=true, parse_special=true)
// adds BOS when the vocabulary asks for it. Special-token text inside the prompt (e.g.
// "<|im_start|>") is meant to be encoded with parse_special = true.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace glimpse {

class GgufFile;

struct ChatMessage {
  std::string role;  // "system", "user", "assistant" (others are passed through by ChatML)
  std::string content;
};

class ChatTemplate {
 public:
  enum class Family { kChatML, kLlama3, kLlama2, kMistral, kGemma, kPhi3, kPhi3Legacy };

  // Reads tokenizer.chat_template (ChatML when absent) and the BOS/EOS token text.
  // strict: throw Error for a template no family matches instead of falling back to ChatML.
  static ChatTemplate from_gguf(const GgufFile& f, bool strict = false);
  static ChatTemplate from_text(std::string_view jinja, bool strict = false);
  static ChatTemplate chatml();

  std::string render(const std::vector<ChatMessage>& msgs, bool add_generation_prompt) const;

  // Family name: "chatml", "llama3", "llama2", "mistral", "gemma", "phi3", "phi3-legacy";
  // "chatml-fallback" when the template was not recognised.
  std::string_view name() const { return name_; }
  Family family() const { return family_; }
  // System prompt used when the conversation has none (ChatML templates such as SmolLM2's
  // and Qwen2's inject one); empty if the template has none.
  const std::string& default_system() const { return default_system_; }

  void set_special_text(std::string bos, std::string eos) {
    bos_ = std::move(bos);
    eos_ = std::move(eos);
  }

 private:
  Family family_ = Family::kChatML;
  std::string name_ = "chatml";
  std::string default_system_;
  std::string bos_ = "<s>", eos_ = "</s>";
  bool eos_without_prompt_ = false;  // phi3: EOS text closes a prompt with no generation turn
};

}  // namespace glimpse
