#include "tokenizer/unicode_props.h"

#include <unicode/uchar.h>

#include <memory>

namespace glimpse::unicode {
namespace {

constexpr uint32_t kMaxCp = 0x110000;

uint8_t compute(uint32_t cp) {
  uint8_t p = 0;
  switch (u_charType(static_cast<UChar32>(cp))) {
    case U_UPPERCASE_LETTER: case U_LOWERCASE_LETTER: case U_TITLECASE_LETTER:
    case U_MODIFIER_LETTER: case U_OTHER_LETTER:
      p = kLetter; break;
    case U_DECIMAL_DIGIT_NUMBER: case U_LETTER_NUMBER: case U_OTHER_NUMBER:
      p = kNumber; break;
    case U_CONNECTOR_PUNCTUATION: case U_DASH_PUNCTUATION: case U_START_PUNCTUATION:
    case U_END_PUNCTUATION: case U_INITIAL_PUNCTUATION: case U_FINAL_PUNCTUATION:
    case U_OTHER_PUNCTUATION:
      p = kPunct; break;
    case U_MATH_SYMBOL: case U_CURRENCY_SYMBOL: case U_MODIFIER_SYMBOL: case U_OTHER_SYMBOL:
      p = kSymbol; break;
    case U_NON_SPACING_MARK: case U_ENCLOSING_MARK: case U_COMBINING_SPACING_MARK:
      p = kMark; break;
    default:
      p = kOther; break;
  }
  if (u_isUWhiteSpace(static_cast<UChar32>(cp))) p |= kWhitespace;
  return p;
}

// One byte per code point (1.1 MB), filled once; lookups are then branch-free table reads.
const uint8_t* table() {
  static const std::unique_ptr<uint8_t[]> t = [] {
    auto a = std::make_unique<uint8_t[]>(kMaxCp);
    for (uint32_t cp = 0; cp < kMaxCp; ++cp) a[cp] = compute(cp);
    return a;
  }();
  return t.get();
}

}  // namespace

uint8_t props(uint32_t cp) { return cp < kMaxCp ? table()[cp] : (uint8_t)kOther; }

void decode(std::string_view text, std::vector<Unit>& out) {
  out.clear();
  out.reserve(text.size());
  const uint8_t* tab = table();
  const auto* s = reinterpret_cast<const uint8_t*>(text.data());
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    const uint8_t b = s[i];
    uint32_t cp = b;
    int len = seq_len(b);
    if (b >= 0x80) {
      if (len == 1 || i + len > n) {
        len = 1;
        cp = 0xFFFD;
      } else {
        cp = len == 2 ? (b & 0x1F) : len == 3 ? (b & 0x0F) : (b & 0x07);
        for (int k = 1; k < len; ++k) {
          if ((s[i + k] & 0xC0) != 0x80) { len = 1; break; }
          cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (len == 1) cp = 0xFFFD;
      }
    }
    out.push_back(Unit{cp, static_cast<uint32_t>(i), static_cast<uint8_t>(len),
                       cp < kMaxCp ? tab[cp] : static_cast<uint8_t>(kOther)});
    i += len;
  }
}

size_t complete_prefix(std::string_view s) {
  const size_t n = s.size();
  // Look back at most 3 bytes for a lead byte whose sequence runs past the end.
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    const auto b = static_cast<uint8_t>(s[n - back]);
    if ((b & 0xC0) == 0x80) continue;  // continuation byte: keep looking for the lead
    const int need = seq_len(b);
    if (need > static_cast<int>(back)) {
      // Hold back only if everything after the lead really is a continuation byte.
      for (size_t k = n - back + 1; k < n; ++k)
        if ((static_cast<uint8_t>(s[k]) & 0xC0) != 0x80) return n;
      return n - back;
    }
    return n;
  }
  return n;
}

}  // namespace glimpse::unicode
