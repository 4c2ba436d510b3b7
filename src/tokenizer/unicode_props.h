// Code point decoding and the few Unicode properties the pre-tokenizers ask about.
//
// Text is cut into "units": one well-formed UTF-8 sequence each, or a single byte that
// does not start one. Units keep their byte extent, so every split made on units maps back
// onto the input bytes exactly (tokenizing never rewrites the text, even invalid UTF-8).
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace glimpse::unicode {

// Property bits of a code point (several may be set: U+0085 is Control and White_Space).
enum : uint8_t {
  kLetter = 1 << 0,      // \p{L}
  kNumber = 1 << 1,      // \p{N}
  kWhitespace = 1 << 2,  // Unicode White_Space (what \s means in the reference regexes)
  kPunct = 1 << 3,       // \p{P}
  kSymbol = 1 << 4,      // \p{S}
  kMark = 1 << 5,        // \p{M}
  kOther = 1 << 6,       // anything else (controls, format, separators, unassigned)
};

uint8_t props(uint32_t cp);  // props of a code point; out-of-range values count as kOther

struct Unit {
  uint32_t cp;     // decoded code point (0xFFFD for a stray byte)
  uint32_t off;    // byte offset in the text
  uint8_t len;     // bytes (1..4)
  uint8_t props;   // props(cp)
};

// Decodes with the same leniency as the reference tokenizer: a lead byte followed by the
// right number of continuation bytes is a code point (overlong forms and surrogates are not
// rejected); any other byte becomes a unit of its own.
void decode(std::string_view text, std::vector<Unit>& out);

// Number of bytes a UTF-8 sequence starting with lead byte b claims (1 for stray bytes).
inline int seq_len(uint8_t b) {
  if (b < 0x80) return 1;
  if (b < 0xC0) return 1;
  if (b < 0xE0) return 2;
  if (b < 0xF0) return 3;
  if (b < 0xF8) return 4;
  return 1;
}

// Length of the longest prefix of s that does not end inside an incomplete (but so far
// well-formed) multi-byte sequence. Invalid bytes count as complete: they are never held.
size_t complete_prefix(std::string_view s);

}  // namespace glimpse::unicode
