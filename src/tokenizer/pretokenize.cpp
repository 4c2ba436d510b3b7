#include "tokenizer/pretokenize.h"

#include <utility>

namespace glimpse {

using unicode::kLetter;
using unicode::kNumber;
using unicode::kPunct;
using unicode::kWhitespace;
using unicode::Unit;
using Range = PreTokenizer::Range;

bool PreTokenizer::from_name(std::string_view name, PreTokenizer& out) {
  using P = PrePass;
  auto is = [&](std::initializer_list<std::string_view> names) {
    for (auto n : names)
      if (n == name) return true;
    return false;
  };
  // Names follow the reference's table; several models share one rule.
  if (is({"gpt-2", "phi-2", "mpt", "olmo", "jais", "roberta-bpe", "jina-v1-en",
          "jina-v2-code", "jina-es", "jina-de", "jina-v2-es", "jina-v2-de"})) {
    out.passes = {P::kGpt2};
  } else if (is({"starcoder", "smollm", "refact", "command-r", "codeshell", "exaone",
                 "minerva-7b"})) {
    out.passes = {P::kEachNumber, P::kGpt2};
  } else if (is({"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral",
                 "midm-2.0", "lfm2", "dbrx", "smaug-bpe"})) {
    out.passes = {P::kLlama3};
  } else if (is({"qwen2", "stablelm2", "deepseek-r1-qwen", "megrez"})) {
    out.passes = {P::kQwen2};
  } else if (is({"falcon"})) {
    out.passes = {P::kFalconPunct, P::kGpt2, P::kAsciiDigits3};
  } else if (is({"deepseek-coder"})) {
    out.passes = {P::kNewline, P::kSpaceLetters, P::kSpacePunct, P::kCjkRun, P::kEachNumber};
  } else if (is({"default", ""})) {
    out.passes = {P::kDefaultPunct, P::kGpt2, P::kNumberRun, P::kAsciiDigits3};
  } else {
    return false;
  }
  return true;
}

namespace {

constexpr uint32_t kEnd = 0xFFFFFFFFu;

// View of one piece [b, e): props and code points read as 0 / kEnd past its end, so
// matchers never look across a boundary an earlier pass made.
struct Piece {
  const Unit* u;
  uint32_t b, e;
  uint8_t p(uint32_t i) const { return i < e ? u[i].props : 0; }
  uint32_t c(uint32_t i) const { return i < e ? u[i].cp : kEnd; }
  bool ws(uint32_t i) const { return p(i) & kWhitespace; }
};

inline uint32_t ascii_lower(uint32_t c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }

// Length of a contraction ('s 't 're 've 'm 'll 'd) at i, 0 if none.
uint32_t contraction(const Piece& s, uint32_t i, bool any_case) {
  if (s.c(i) != '\'' || i + 1 >= s.e) return 0;
  auto low = [&](uint32_t c) { return any_case ? ascii_lower(c) : c; };
  const uint32_t a = low(s.c(i + 1));
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
  if (i + 2 >= s.e) return 0;
  const uint32_t b = low(s.c(i + 2));
  if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
  return 0;
}

// Whitespace run handling shared by the GPT-2 and Llama 3 rules: "\s+(?!\S)" backs off one
// code point when more text follows, so that the last space can prefix the next word;
// "\s+" takes a lone whitespace.
uint32_t whitespace_run(const Piece& s, uint32_t pos) {
  uint32_t n = 0;
  while (s.ws(pos + n)) ++n;
  if (n > 1 && pos + n < s.e) return pos + n - 1;
  if (n > 0) return pos + n;
  return pos + 1;  // nothing matched: the code point stands alone
}

void split_gpt2(const Piece& s, std::vector<Range>& out) {
  constexpr uint8_t kWLN = kWhitespace | kLetter | kNumber;
  uint32_t pos = s.b;
  while (pos < s.e) {
    const uint32_t start = pos;
    if (uint32_t n = contraction(s, pos, false)) {
      out.push_back({start, pos + n});
      pos += n;
      continue;
    }
    const uint32_t c = s.c(pos);
    const uint8_t f2 = c == ' ' ? s.p(pos + 1) : s.p(pos);  // class after an optional space
    if (f2 & kLetter) {
      pos += c == ' ';
      while (s.p(pos) & kLetter) ++pos;
    } else if (f2 & kNumber) {
      pos += c == ' ';
      while (s.p(pos) & kNumber) ++pos;
    } else if (f2 != 0 && !(f2 & kWLN)) {
      pos += c == ' ';
      while (s.p(pos) != 0 && !(s.p(pos) & kWLN)) ++pos;
    } else {
      pos = whitespace_run(s, pos);
    }
    out.push_back({start, pos});
  }
}

void split_llama3(const Piece& s, uint32_t max_digits, std::vector<Range>& out) {
  constexpr uint8_t kWLN = kWhitespace | kLetter | kNumber;
  uint32_t pos = s.b;
  while (pos < s.e) {
    const uint32_t start = pos;
    if (uint32_t n = contraction(s, pos, true)) {
      out.push_back({start, pos + n});
      pos += n;
      continue;
    }
    const uint32_t c = s.c(pos);
    const uint8_t f = s.p(pos);
    // [^\r\n\p{L}\p{N}]?\p{L}+
    if (c != '\r' && c != '\n' && !(f & kNumber) && ((f & kLetter) || (s.p(pos + 1) & kLetter))) {
      ++pos;
      while (s.p(pos) & kLetter) ++pos;
      out.push_back({start, pos});
      continue;
    }
    // \p{N}{1,max_digits}
    if (f & kNumber) {
      uint32_t ini = pos;
      while (s.p(pos) & kNumber) {
        if (++pos - ini >= max_digits) {
          out.push_back({ini, pos});
          ini = pos;
        }
      }
      if (pos > ini) out.push_back({ini, pos});
      continue;
    }
    // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
    const uint8_t f2 = c == ' ' ? s.p(pos + 1) : f;
    if (!(f2 & kWLN) && f != 0) {
      pos += c == ' ';
      while (s.p(pos) != 0 && !(s.p(pos) & kWLN)) ++pos;
      while (s.c(pos) == '\r' || s.c(pos) == '\n') ++pos;
      out.push_back({start, pos});
      continue;
    }
    // \s*[\r\n]+ : the whitespace run up to and including its last line break
    uint32_t n = 0, last_nl = 0;
    while (s.ws(pos + n)) {
      const uint32_t cc = s.c(pos + n);
      if (cc == '\r' || cc == '\n') last_nl = pos + n + 1;
      ++n;
    }
    pos = last_nl > 0 ? last_nl : whitespace_run(s, pos);
    out.push_back({start, pos});
  }
}

// Search-and-split for one simple pattern: match(i) gives the match length at i (0: none).
// Matches become pieces, and so does each stretch of text between them.
template <typename Match>
void split_search(const Piece& s, Match match, std::vector<Range>& out) {
  uint32_t gap = s.b, pos = s.b;
  while (pos < s.e) {
    const uint32_t n = match(pos);
    if (n == 0) {
      ++pos;
      continue;
    }
    if (pos > gap) out.push_back({gap, pos});
    out.push_back({pos, pos + n});
    pos += n;
    gap = pos;
  }
  if (s.e > gap) out.push_back({gap, s.e});
}

// Length of the run of code points from i that satisfy pred.
template <typename Pred>
uint32_t run(const Piece& s, uint32_t i, Pred pred) {
  uint32_t n = 0;
  while (i + n < s.e && pred(i + n)) ++n;
  return n;
}

bool ascii_in(uint32_t c, std::string_view set) {
  return c < 128 && set.find(static_cast<char>(c)) != std::string_view::npos;
}

void apply(PrePass pass, const Piece& s, std::vector<Range>& out) {
  switch (pass) {
    case PrePass::kGpt2: return split_gpt2(s, out);
    case PrePass::kLlama3: return split_llama3(s, 3, out);
    case PrePass::kQwen2: return split_llama3(s, 1, out);
    case PrePass::kEachNumber:
      return split_search(s, [&](uint32_t i) -> uint32_t { return (s.p(i) & kNumber) ? 1 : 0; },
                          out);
    case PrePass::kNumberRun:
      return split_search(s, [&](uint32_t i) { return run(s, i, [&](uint32_t k) {
                            return (s.p(k) & kNumber) != 0; }); }, out);
    case PrePass::kAsciiDigits3:
      return split_search(s, [&](uint32_t i) -> uint32_t {
        for (uint32_t k = 0; k < 3; ++k)
          if (s.c(i + k) < '0' || s.c(i + k) > '9') return 0;
        return 3;
      }, out);
    case PrePass::kFalconPunct:
    case PrePass::kDefaultPunct: {
      const std::string_view extra = pass == PrePass::kFalconPunct ? "$+<=>^~|`" : "$+<=>^~|";
      return split_search(s, [&](uint32_t i) { return run(s, i, [&](uint32_t k) {
                            return (s.p(k) & kPunct) || ascii_in(s.c(k), extra); }); }, out);
    }
    case PrePass::kNewline:
      return split_search(s, [&](uint32_t i) -> uint32_t {
        return (s.c(i) == '\r' || s.c(i) == '\n') ? 1 : 0; }, out);
    case PrePass::kSpaceLetters:
    case PrePass::kSpacePunct: {
      const uint8_t cls = pass == PrePass::kSpaceLetters ? kLetter : kPunct;
      return split_search(s, [&](uint32_t i) -> uint32_t {
        const uint32_t lead = (s.ws(i) && (s.p(i + 1) & cls)) ? 1 : 0;
        const uint32_t n = run(s, i + lead, [&](uint32_t k) { return (s.p(k) & cls) != 0; });
        return n ? lead + n : 0;
      }, out);
    }
    case PrePass::kCjkRun:
      // The reference matches this one on raw code points, with non-ASCII whitespace
      // (U+3000 lies inside the range) replaced first, so whitespace never matches.
      return split_search(s, [&](uint32_t i) { return run(s, i, [&](uint32_t k) {
        const uint32_t c = s.c(k);
        const bool in = (c >= 0x4E00 && c <= 0x9FA5) || (c >= 0x0800 && c <= 0x4E00) ||
                        (c >= 0xAC00 && c <= 0xD7FF);
        return in && !s.ws(k); }); }, out);
  }
}

}  // namespace

void PreTokenizer::split(const std::vector<Unit>& u, std::vector<Range>& out,
                         std::vector<Range>& scratch) const {
  out.clear();
  if (u.empty()) return;
  out.push_back({0, static_cast<uint32_t>(u.size())});
  for (PrePass pass : passes) {
    scratch.clear();
    for (const Range& r : out) apply(pass, Piece{u.data(), r.b, r.e}, scratch);
    std::swap(out, scratch);
  }
}

}  // namespace glimpse
