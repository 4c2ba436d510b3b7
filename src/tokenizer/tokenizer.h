// Text <-> token ids for the vocabularies stored in GGUF files.
//
// Supported: byte-level BPE (tokenizer.ggml.model = "gpt2") with the pre-tokenizers listed
// in pretokenize.cpp, and SentencePiece-style BPE over scores (model = "llama"). The
// results match the reference implementation id for id; see tests/parity.
//
// Shape of encode():
//   text -> split out special-token text (always user-defined tokens; control tokens only
//   when parse_special) -> each remaining stretch: pre-tokenize into words -> BPE merges
//   per word (lowest merge rank first, leftmost on ties) -> ids.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace glimpse {

class GgufFile;

// tokenizer.ggml.token_type values.
enum class TokenType : uint8_t {
  kUndefined = 0, kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5,
  kByte = 6,
};

class Tokenizer {
 public:
  // Throws Error naming an unsupported tokenizer model or pre-tokenizer, or a malformed
  // vocabulary.
  static Tokenizer from_gguf(const GgufFile& f);

  // add_bos: add the special tokens the vocabulary asks for (BOS when
  // tokenizer.ggml.add_bos_token, EOS when tokenizer.ggml.add_eos_token), like the
  // reference's add_special. parse_special: recognise control-token text such as
  // "<|im_start|>" in the input; user-defined tokens are recognised either way.
  std::vector<int32_t> encode(std::string_view text, bool add_bos, bool parse_special) const;

  // Raw bytes the token stands for; control/user-defined/unknown tokens give their text.
  std::string token_to_piece(int32_t id) const;
  // Concatenated pieces (SentencePiece vocabularies drop the space added in front of the
  // first word). With a byte-level BPE vocabulary decode(encode(s)) == s for any bytes s
  // that can_encode_byte() accepts.
  std::string decode(const std::vector<int32_t>& ids) const;

  int32_t n_vocab() const;
  int32_t bos() const;  // -1 if none
  int32_t eos() const;  // -1 if none
  bool is_eog(int32_t id) const;
  const std::vector<int32_t>& eog_ids() const;
  bool add_bos() const;
  bool add_eos() const;
  int32_t token_id(std::string_view text) const;  // -1 if not a token
  // Whether a lone byte b survives encode(). Byte-level vocabularies may lack bytes that
  // never occur in UTF-8 (0xC0, 0xC1, 0xF5..0xFF); like the reference, encode() drops them.
  bool can_encode_byte(uint8_t b) const;
  std::string_view token_text(int32_t id) const;  // as stored in the vocabulary
  TokenType token_type(int32_t id) const;
  std::string_view model_name() const;  // "gpt2" or "llama"
  std::string_view pre_name() const;

  struct Impl;

 private:
  explicit Tokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;  // immutable once built; copies share it
};

// Streaming detokenizer: push(id) returns the bytes that form complete UTF-8 so far; an
// incomplete multi-byte sequence at the end is held back until the next piece completes it
// (bytes that can never become valid are passed through). flush() returns what is held.
// The concatenation of all push() results and flush() equals decode(ids).
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tok) : tok_(&tok) {}
  std::string push(int32_t id);
  std::string flush();

 private:
  const Tokenizer* tok_;
  std::string pending_;
  bool first_ = true;
};

}  // namespace glimpse
