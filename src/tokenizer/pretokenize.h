// Pre-tokenizers: split text into the words that BPE then merges independently.
//
// Each vocabulary names its splitting rule (tokenizer.ggml.pre). The rules are regular
// expressions in the reference implementation; here each one is a hand-written matcher over
// decoded units (see unicode_props.h) that reproduces the reference's matches exactly,
// including its quirks (e.g. "\s+(?!\S)" leaving one space to start the next word).
//
// A rule is a list of passes applied in order. A pass looks at each current piece, cuts
// out its matches and keeps the text between matches as pieces of their own, like a regex
// "split keeping delimiters and gaps".
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "tokenizer/unicode_props.h"

namespace glimpse {

enum class PrePass : uint8_t {
  kGpt2,          // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
  kLlama3,        // (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
                  //   ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
  kQwen2,         // the kLlama3 rule with \p{N} (one digit per word)
  kEachNumber,    // \p{N}
  kNumberRun,     // \p{N}+
  kAsciiDigits3,  // [0-9][0-9][0-9]
  kFalconPunct,   // [\p{P}\$\+<=>\^~\|`]+
  kDefaultPunct,  // [\p{P}\$\+<=>\^~\|]+
  kNewline,       // [\r\n]
  kSpaceLetters,  // \s?\p{L}+
  kSpacePunct,    // \s?\p{P}+
  kCjkRun,        // [一-龥ࠀ-一가-퟿]+
};

struct PreTokenizer {
  std::vector<PrePass> passes;

  // Looks up a tokenizer.ggml.pre name; returns false if unknown.
  static bool from_name(std::string_view name, PreTokenizer& out);

  // Splits units [0, n) into words; out gets [begin, end) unit ranges, in order, covering
  // every unit exactly once. scratch is reused between calls to avoid allocations.
  struct Range { uint32_t b, e; };
  void split(const std::vector<unicode::Unit>& u, std::vector<Range>& out,
             std::vector<Range>& scratch) const;
};

}  // namespace glimpse
