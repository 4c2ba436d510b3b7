#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <queue>
#include <unordered_map>

#include "gguf/gguf_file.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/unicode_props.h"
#include "util/error.h"

namespace glimpse {

namespace {

// GPT-2's reversible byte <-> code point map: printable Latin-1 bytes stand for themselves,
// the other 68 bytes (controls, space, 0x7F-0xA0, 0xAD) are moved to U+0100 upwards so that
// every byte has a visible, non-space character in the vocabulary's strings.
struct ByteMap {
  std::array<uint32_t, 256> to_cp{};
  std::array<int16_t, 324> to_byte{};  // -1: code point is not an image of any byte
  ByteMap() {
    to_byte.fill(-1);
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
      to_cp[b] = keep ? static_cast<uint32_t>(b) : next++;
      to_byte[to_cp[b]] = static_cast<int16_t>(b);
    }
  }
};
const ByteMap& byte_map() {
  static const ByteMap m;
  return m;
}

void append_utf8(std::string& s, uint32_t cp) {
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else if (cp < 0x800) {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    s += static_cast<char>(0xE0 | (cp >> 12));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    s += static_cast<char>(0xF0 | (cp >> 18));
    s += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// Vocabulary string in GPT-2 byte encoding -> the raw bytes; false if some character is
// not a byte image (such tokens, e.g. literal spaces, can never come out of BPE).
bool unmap_bytes(std::string_view text, std::string& raw) {
  raw.clear();
  std::vector<unicode::Unit> u;
  unicode::decode(text, u);
  const ByteMap& m = byte_map();
  for (const auto& x : u) {
    if (x.len == 1 && x.cp == 0xFFFD) return false;
    if (x.cp >= m.to_byte.size() || m.to_byte[x.cp] < 0) return false;
    raw += static_cast<char>(m.to_byte[x.cp]);
  }
  return true;
}

const std::string kSpmSpace = "\xE2\x96\x81";  // U+2581, SentencePiece's visible space

// Lead-byte length as the reference's SentencePiece splitter counts it.
size_t spm_char_len(uint8_t b) {
  static constexpr uint8_t k[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return k[b >> 4];
}

bool name_in(std::string_view s, std::initializer_list<std::string_view> names) {
  for (auto n : names)
    if (s == n) return true;
  return false;
}

}  // namespace

struct Tokenizer::Impl {
  enum class Model { kBpe, kSpm };
  Model model = Model::kBpe;
  std::string model_name, pre_name;
  std::vector<std::string> text;
  std::vector<TokenType> type;
  std::vector<std::string> piece;
  std::vector<float> score;
  std::unordered_map<std::string, int32_t> text_to_id;
  int32_t bos = -1, eos = -1, unk = -1;
  bool add_bos = false, add_eos = false, add_space_prefix = false;
  std::vector<int32_t> eog;
  std::vector<uint8_t> eog_flag;

  struct Special {
    std::string_view text;
    int32_t id;
    TokenType type;
    bool lstrip, rstrip;
  };
  std::vector<Special> specials;  // longest text first

  // Byte-level BPE. Symbols are byte strings: every token that is a valid byte encoding,
  // plus extra ids (>= n_vocab) for strings that only appear inside merge rules.
  PreTokenizer pre;
  bool ignore_merges = false;  // a word that is itself a token is taken whole
  std::unordered_map<std::string, int32_t> raw_to_sym;
  std::vector<int32_t> sym_token;    // symbol -> token id, -1 if it is no token
  std::vector<std::string> sym_raw;  // symbol -> bytes
  std::array<int32_t, 256> byte_sym{};
  struct Merge {
    int32_t rank, result;
  };
  std::unordered_map<uint64_t, Merge> merges;

  int32_t n_vocab() const { return static_cast<int32_t>(text.size()); }
  int32_t symbol(const std::string& raw);
  void load_bpe(const GgufFile& f);
  void load_specials(const GgufFile& f);
  void bpe_text(std::string_view s, std::vector<int32_t>& out) const;
  void bpe_word(std::string_view w, std::vector<int32_t>& out) const;
  void emit_symbol(int32_t sym, std::vector<int32_t>& out) const;
  void spm_text(std::string_view s, std::vector<int32_t>& out) const;
  int32_t spm_byte(uint8_t b) const;
};

int32_t Tokenizer::Impl::symbol(const std::string& raw) {
  auto [it, inserted] = raw_to_sym.try_emplace(raw, static_cast<int32_t>(sym_token.size()));
  if (inserted) {
    sym_token.push_back(-1);
    sym_raw.push_back(raw);
  }
  return it->second;
}

void Tokenizer::Impl::load_bpe(const GgufFile& f) {
  const int32_t n = n_vocab();
  sym_token.assign(n, -1);
  sym_raw.assign(n, std::string());
  std::string raw;
  for (int32_t id = 0; id < n; ++id) {
    if (!unmap_bytes(text[id], raw) || raw.empty()) continue;
    raw_to_sym[raw] = id;  // a repeated string resolves to its last id, as in the reference
  }
  for (const auto& [r, id] : raw_to_sym) {
    sym_token[id] = id;
    sym_raw[id] = r;
  }
  for (int b = 0; b < 256; ++b) byte_sym[b] = symbol(std::string(1, static_cast<char>(b)));

  if (!f.has("tokenizer.ggml.merges")) fail("tokenizer: BPE vocabulary has no merges");
  const auto& ms = f.get_string_array("tokenizer.ggml.merges");
  merges.reserve(ms.size());
  std::string left, right;
  for (size_t rank = 0; rank < ms.size(); ++rank) {
    const std::string_view m = ms[rank];
    const size_t sp = m.find(' ', 1);
    if (sp == std::string_view::npos) fail("tokenizer: malformed merge #{}: '{}'", rank, m);
    if (!unmap_bytes(m.substr(0, sp), left) || !unmap_bytes(m.substr(sp + 1), right) ||
        left.empty() || right.empty())
      continue;  // a rule over non-byte characters can never apply
    const int32_t a = symbol(left), b = symbol(right), c = symbol(left + right);
    const uint64_t key = (static_cast<uint64_t>(a) << 32) | static_cast<uint32_t>(b);
    merges.try_emplace(key, Merge{static_cast<int32_t>(rank), c});  // first rule wins
  }
}

void Tokenizer::Impl::load_specials(const GgufFile& f) {
  const int32_t n = n_vocab();
  auto key_id = [&](const char* key) -> int32_t {
    const int64_t v = f.get_int(key, -1);
    return (v >= 0 && v < n) ? static_cast<int32_t>(v) : -1;
  };
  auto first_of = [&](std::initializer_list<std::string_view> names) -> int32_t {
    for (auto nm : names) {
      auto it = text_to_id.find(std::string(nm));
      if (it != text_to_id.end()) return it->second;
    }
    return -1;
  };
  auto make_control = [&](int32_t id) {
    if (id >= 0) type[id] = TokenType::kControl;
  };
  // Tokens that end a turn are found by their text (the reference does the same; GGUF
  // files rarely name them), and are treated as control tokens whatever their stored type.
  int32_t eot = key_id("tokenizer.ggml.eot_token_id");
  if (eot < 0)
    eot = first_of({"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
                    "<|end_of_text|>", "<EOT>", "_<EOT>", "<\xEF\xBD\x9C" "end\xE2\x96\x81of"
                    "\xE2\x96\x81sentence\xEF\xBD\x9C>", "<end_of_utterance>"});
  int32_t eom = key_id("tokenizer.ggml.eom_token_id");
  if (eom < 0) eom = first_of({"<|eom_id|>"});
  auto fim = [&](const char* key, std::initializer_list<std::string_view> names) {
    int32_t id = key_id(key);
    if (id < 0) id = first_of(names);
    make_control(id);
    return id;
  };
  fim("tokenizer.ggml.fim_pre_token_id", {"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>",
      "<\xEF\xBD\x9C" "fim\xE2\x96\x81" "begin\xEF\xBD\x9C>", "<PRE>", "\xE2\x96\x81<PRE>"});
  fim("tokenizer.ggml.fim_suf_token_id", {"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>",
      "<\xEF\xBD\x9C" "fim\xE2\x96\x81hole\xEF\xBD\x9C>", "<SUF>", "\xE2\x96\x81<SUF>"});
  fim("tokenizer.ggml.fim_mid_token_id", {"<|fim_middle|>", "<fim-middle>", "<fim_middle>",
      "<\xEF\xBD\x9C" "fim\xE2\x96\x81" "end\xEF\xBD\x9C>", "<MID>", "\xE2\x96\x81<MID>"});
  const int32_t fim_pad = fim("tokenizer.ggml.fim_pad_token_id",
                              {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>"});
  const int32_t fim_rep = fim("tokenizer.ggml.fim_rep_token_id",
                              {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>",
                               "<reponame>"});
  const int32_t fim_sep = fim("tokenizer.ggml.fim_sep_token_id", {"<|file_sep|>", "<FILE_SEP>"});
  make_control(eot);
  make_control(eom);

  eog_flag.assign(n, 0);
  auto add_eog = [&](int32_t id) {
    if (id >= 0 && !eog_flag[id]) {
      eog_flag[id] = 1;
      eog.push_back(id);
    }
  };
  for (std::string_view nm : {"<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>",
                              "<end_of_turn>", "<|endoftext|>", "<|eom_id|>", "<EOT>", "_<EOT>",
                              "<|end_of_text|>", "<end_of_utterance>", "</s>"}) {
    auto it = text_to_id.find(std::string(nm));
    if (it == text_to_id.end()) continue;
    make_control(it->second);
    add_eog(it->second);
  }
  for (int32_t id : {fim_pad, fim_rep, fim_sep, eos, eot, eom}) add_eog(id);
  std::sort(eog.begin(), eog.end());

  // Text that is split out before pre-tokenizing.
  for (int32_t id = 0; id < n; ++id) {
    const TokenType t = type[id];
    if ((t == TokenType::kControl || t == TokenType::kUserDefined || t == TokenType::kUnknown) &&
        !text[id].empty())
      specials.push_back(Special{text[id], id, t, false, false});
  }
  std::stable_sort(specials.begin(), specials.end(), [](const Special& a, const Special& b) {
    return a.text.size() > b.text.size();
  });
  // Phi-3 models strip whitespace after most of their special tokens (reference quirk).
  std::string lname(f.get_string_opt("general.name").value_or(""));
  for (char& c : lname) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lname.find("phi-3") != std::string::npos || lname.find("phi3") != std::string::npos) {
    for (Special& s : specials)
      s.rstrip = !name_in(s.text, {"<unk>", "<s>", "<|endoftext|>"});
  }
}

Tokenizer Tokenizer::from_gguf(const GgufFile& f) {
  auto impl = std::make_shared<Impl>();
  Impl& t = *impl;
  t.model_name = std::string(f.get_string_opt("tokenizer.ggml.model").value_or(""));
  if (t.model_name == "gpt2") {
    t.model = Impl::Model::kBpe;
  } else if (t.model_name == "llama") {
    t.model = Impl::Model::kSpm;
  } else {
    fail("unsupported tokenizer model '{}' (supported: gpt2, llama)", t.model_name);
  }
  const auto& toks = f.get_string_array("tokenizer.ggml.tokens");
  if (toks.empty()) fail("tokenizer: empty vocabulary");
  if (toks.size() > 0x7FFFFFF) fail("tokenizer: vocabulary too large ({})", toks.size());
  const int32_t n = static_cast<int32_t>(toks.size());
  t.text.reserve(n);
  for (int32_t i = 0; i < n; ++i) {
    // Empty strings get a placeholder so that every token has a distinct name.
    t.text.emplace_back(toks[i].empty() ? fmt::format("[EMPTY_{}]", i) : std::string(toks[i]));
    t.text_to_id[t.text.back()] = i;
  }
  t.type.assign(n, TokenType::kNormal);
  if (f.has("tokenizer.ggml.token_type")) {
    const auto types = f.get_i32_array("tokenizer.ggml.token_type");
    if (types.size() != toks.size()) fail("tokenizer: token_type has {} entries, tokens {}",
                                          types.size(), toks.size());
    for (int32_t i = 0; i < n; ++i)
      t.type[i] = (types[i] >= 0 && types[i] <= 6) ? static_cast<TokenType>(types[i])
                                                   : TokenType::kUndefined;
  }
  t.score.assign(n, 0.0f);
  if (f.has("tokenizer.ggml.scores")) {
    const auto sc = f.get_f32_array("tokenizer.ggml.scores");
    if (sc.size() != toks.size()) fail("tokenizer: scores has {} entries, tokens {}",
                                       sc.size(), toks.size());
    t.score = sc;
  }

  // Defaults per model, then whatever the file states.
  if (t.model == Impl::Model::kSpm) {
    t.bos = 1, t.eos = 2, t.unk = 0;
    t.add_bos = true;
    t.add_space_prefix = true;
  } else {
    t.pre_name = std::string(f.get_string_opt("tokenizer.ggml.pre").value_or("default"));
    if (!PreTokenizer::from_name(t.pre_name, t.pre))
      fail("unsupported pre-tokenizer '{}' for BPE vocabulary", t.pre_name);
    t.bos = 11, t.eos = 11;
    if (name_in(t.pre_name, {"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral",
                             "midm-2.0", "lfm2"})) {
      t.ignore_merges = true;
      t.add_bos = true;
    }
  }
  auto id_key = [&](const char* key, int32_t& id) {
    const int64_t v = f.get_int(key, -2);
    if (v >= 0 && v < n) id = static_cast<int32_t>(v);
    else if (v == -1) id = -1;
  };
  id_key("tokenizer.ggml.bos_token_id", t.bos);
  id_key("tokenizer.ggml.eos_token_id", t.eos);
  id_key("tokenizer.ggml.unknown_token_id", t.unk);
  if (t.bos >= n) t.bos = -1;
  if (t.eos >= n) t.eos = -1;
  if (t.unk >= n) t.unk = -1;
  t.add_bos = f.get_bool("tokenizer.ggml.add_bos_token", t.add_bos);
  t.add_eos = f.get_bool("tokenizer.ggml.add_eos_token", t.add_eos);
  t.add_space_prefix = f.get_bool("tokenizer.ggml.add_space_prefix", t.add_space_prefix);
  if (t.model != Impl::Model::kSpm) t.add_space_prefix = false;

  t.load_specials(f);
  if (t.model == Impl::Model::kBpe) t.load_bpe(f);

  // What each token decodes to.
  t.piece.resize(n);
  std::string raw;
  for (int32_t id = 0; id < n; ++id) {
    const std::string& s = t.text[id];
    const TokenType ty = t.type[id];
    std::string& p = t.piece[id];
    if (t.model == Impl::Model::kBpe) {
      p = (ty == TokenType::kNormal || ty == TokenType::kUndefined) && unmap_bytes(s, raw) ? raw : s;
    } else if (ty == TokenType::kByte && s.size() == 6 && s.starts_with("<0x")) {
      p = std::string(1, static_cast<char>(std::stoi(s.substr(3, 2), nullptr, 16)));
    } else if (ty == TokenType::kNormal || ty == TokenType::kUndefined) {
      for (size_t i = 0; i < s.size();) {
        if (s.compare(i, kSpmSpace.size(), kSpmSpace) == 0) {
          p += ' ';
          i += kSpmSpace.size();
        } else {
          p += s[i++];
        }
      }
    } else {
      p = s;
    }
  }
  return Tokenizer(std::move(impl));
}

// ---- byte-level BPE ----

void Tokenizer::Impl::emit_symbol(int32_t sym, std::vector<int32_t>& out) const {
  if (sym_token[sym] >= 0) {
    out.push_back(sym_token[sym]);
    return;
  }
  // Not a token: the reference falls back to the single characters of the byte-encoded
  // string that are tokens themselves and silently drops the rest.
  std::string enc;
  for (unsigned char b : sym_raw[sym]) append_utf8(enc, byte_map().to_cp[b]);
  for (char c : enc) {
    auto it = text_to_id.find(std::string(1, c));
    if (it != text_to_id.end()) out.push_back(it->second);
  }
}

void Tokenizer::Impl::bpe_word(std::string_view w, std::vector<int32_t>& out) const {
  if (w.size() == 1) return emit_symbol(byte_sym[static_cast<uint8_t>(w[0])], out);
  if (ignore_merges) {
    auto it = raw_to_sym.find(std::string(w));
    if (it != raw_to_sym.end() && sym_token[it->second] >= 0) {
      out.push_back(sym_token[it->second]);
      return;
    }
  }
  // Symbols form a linked list over the word's bytes; a heap holds candidate merges of
  // neighbours ordered by (rank, position). A popped candidate whose symbols have changed
  // since it was pushed is stale and skipped, so each merge costs O(log n).
  struct Sym {
    int32_t sym, prev, next;
  };
  struct Cand {
    int32_t rank, left, right, lsym, rsym, result;
    bool operator<(const Cand& o) const {  // priority_queue pops the "largest"
      return rank != o.rank ? rank > o.rank : left > o.left;
    }
  };
  const int32_t n = static_cast<int32_t>(w.size());
  std::vector<Sym> syms(n);
  for (int32_t i = 0; i < n; ++i)
    syms[i] = Sym{byte_sym[static_cast<uint8_t>(w[i])], i - 1, i + 1 < n ? i + 1 : -1};
  std::vector<Cand> heap_store;
  heap_store.reserve(n);
  std::priority_queue<Cand> heap(std::less<Cand>(), std::move(heap_store));
  auto try_add = [&](int32_t l, int32_t r) {
    if (l < 0 || r < 0) return;
    const uint64_t key =
        (static_cast<uint64_t>(syms[l].sym) << 32) | static_cast<uint32_t>(syms[r].sym);
    auto it = merges.find(key);
    if (it != merges.end())
      heap.push(Cand{it->second.rank, l, r, syms[l].sym, syms[r].sym, it->second.result});
  };
  for (int32_t i = 1; i < n; ++i) try_add(i - 1, i);
  while (!heap.empty()) {
    const Cand c = heap.top();
    heap.pop();
    Sym& l = syms[c.left];
    Sym& r = syms[c.right];
    if (l.sym != c.lsym || r.sym != c.rsym || l.next != c.right) continue;
    l.sym = c.result;
    l.next = r.next;
    if (r.next >= 0) syms[r.next].prev = c.left;
    r.sym = -1;
    r.next = -2;
    try_add(l.prev, c.left);
    try_add(c.left, l.next);
  }
  for (int32_t i = 0; i >= 0; i = syms[i].next) emit_symbol(syms[i].sym, out);
}

void Tokenizer::Impl::bpe_text(std::string_view s, std::vector<int32_t>& out) const {
  std::vector<unicode::Unit> units;
  std::vector<PreTokenizer::Range> words, scratch;
  unicode::decode(s, units);
  pre.split(units, words, scratch);
  for (const auto& r : words) {
    const size_t b = units[r.b].off;
    const size_t e = units[r.e - 1].off + units[r.e - 1].len;
    bpe_word(s.substr(b, e - b), out);
  }
}

// ---- SentencePiece-style BPE: merge the adjacent pair whose union has the best score ----

int32_t Tokenizer::Impl::spm_byte(uint8_t b) const {
  auto it = text_to_id.find(fmt::format("<0x{:02X}>", b));
  if (it != text_to_id.end()) return it->second;
  it = text_to_id.find(std::string(1, static_cast<char>(b)));
  return it != text_to_id.end() ? it->second : unk;
}

void Tokenizer::Impl::spm_text(std::string_view s, std::vector<int32_t>& out) const {
  struct Sym {
    uint32_t off, n;
    int32_t prev, next;
  };
  struct Cand {
    float score;
    int32_t left, right;
    uint32_t size;
    bool operator<(const Cand& o) const {
      return score != o.score ? score < o.score : left > o.left;
    }
  };
  std::vector<Sym> syms;
  for (size_t off = 0; off < s.size();) {
    const uint32_t len =
        static_cast<uint32_t>(std::min(spm_char_len(static_cast<uint8_t>(s[off])), s.size() - off));
    const int32_t idx = static_cast<int32_t>(syms.size());
    syms.push_back(Sym{static_cast<uint32_t>(off), len, idx - 1,
                       off + len == s.size() ? -1 : idx + 1});
    off += len;
  }
  if (syms.empty()) return;
  std::priority_queue<Cand> heap;
  std::string key;
  auto try_add = [&](int32_t l, int32_t r) {
    if (l < 0 || r < 0) return;
    key.assign(s.substr(syms[l].off, syms[l].n + syms[r].n));
    auto it = text_to_id.find(key);
    if (it == text_to_id.end()) return;
    heap.push(Cand{score[it->second], l, r, static_cast<uint32_t>(key.size())});
  };
  for (int32_t i = 1; i < static_cast<int32_t>(syms.size()); ++i) try_add(i - 1, i);
  while (!heap.empty()) {
    const Cand c = heap.top();
    heap.pop();
    Sym& l = syms[c.left];
    Sym& r = syms[c.right];
    if (l.n == 0 || r.n == 0 || l.n + r.n != c.size) continue;
    l.n += r.n;
    r.n = 0;
    l.next = r.next;
    if (r.next >= 0) syms[r.next].prev = c.left;
    try_add(l.prev, c.left);
    try_add(c.left, l.next);
  }
  for (int32_t i = 0; i >= 0; i = syms[i].next) {
    key.assign(s.substr(syms[i].off, syms[i].n));
    auto it = text_to_id.find(key);
    if (it != text_to_id.end()) {
      out.push_back(it->second);
      continue;
    }
    for (char c : key) {
      const int32_t id = spm_byte(static_cast<uint8_t>(c));
      if (id >= 0) out.push_back(id);
    }
  }
}

// ---- public interface ----

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_bos, bool parse_special) const {
  const Impl& t = *impl_;
  std::vector<int32_t> out;
  if (add_bos && t.add_bos && t.bos >= 0) out.push_back(t.bos);

  // Fragments: either a special token or a stretch of plain text [off, off+len).
  struct Frag {
    int32_t id;  // -1: text
    size_t off, len;
  };
  std::vector<Frag> frags, next;
  if (!text.empty()) frags.push_back(Frag{-1, 0, text.size()});
  for (const Impl::Special& sp : t.specials) {
    if (!parse_special && sp.type != TokenType::kUserDefined) continue;
    if (text.find(sp.text) == std::string_view::npos) continue;
    next.clear();
    for (const Frag& fr : frags) {
      if (fr.id >= 0) {
        next.push_back(fr);
        continue;
      }
      size_t off = fr.off, len = fr.len;
      while (len > 0) {
        const size_t m = text.substr(0, off + len).find(sp.text, off);
        if (m == std::string_view::npos) {
          next.push_back(Frag{-1, off, len});
          break;
        }
        size_t llen = m - off;
        if (sp.lstrip)
          while (llen > 0 && std::isspace(static_cast<unsigned char>(text[off + llen - 1]))) --llen;
        if (llen > 0) next.push_back(Frag{-1, off, llen});
        next.push_back(Frag{sp.id, 0, 0});
        size_t roff = m + sp.text.size();
        size_t rlen = off + len - roff;
        if (sp.rstrip)
          while (rlen > 0 && std::isspace(static_cast<unsigned char>(text[roff]))) ++roff, --rlen;
        off = roff;
        len = rlen;
      }
    }
    std::swap(frags, next);
  }

  if (t.model == Impl::Model::kBpe) {
    for (const Frag& fr : frags) {
      if (fr.id >= 0) out.push_back(fr.id);
      else t.bpe_text(text.substr(fr.off, fr.len), out);
    }
  } else {
    bool prev_special = true;  // a space goes in front of the first word and after specials
    std::string buf;
    for (const Frag& fr : frags) {
      if (fr.id >= 0) {
        out.push_back(fr.id);
        prev_special = true;
        continue;
      }
      buf.clear();
      if (t.add_space_prefix && prev_special) buf += kSpmSpace;
      for (char c : text.substr(fr.off, fr.len)) {
        if (c == ' ') buf += kSpmSpace;
        else buf += c;
      }
      t.spm_text(buf, out);
      prev_special = false;
    }
  }
  if (add_bos && t.add_eos && t.eos >= 0) out.push_back(t.eos);
  return out;
}

std::string Tokenizer::token_to_piece(int32_t id) const {
  if (id < 0 || id >= impl_->n_vocab()) fail("token id {} out of range [0, {})", id, impl_->n_vocab());
  return impl_->piece[id];
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string s;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= impl_->n_vocab())
      fail("token id {} out of range [0, {})", ids[i], impl_->n_vocab());
    const std::string& p = impl_->piece[ids[i]];
    if (i == 0 && impl_->add_space_prefix && !p.empty() && p[0] == ' ') s.append(p, 1);
    else s += p;
  }
  return s;
}

int32_t Tokenizer::n_vocab() const { return impl_->n_vocab(); }
int32_t Tokenizer::bos() const { return impl_->bos; }
int32_t Tokenizer::eos() const { return impl_->eos; }
bool Tokenizer::is_eog(int32_t id) const {
  return id >= 0 && id < impl_->n_vocab() && impl_->eog_flag[id];
}
const std::vector<int32_t>& Tokenizer::eog_ids() const { return impl_->eog; }
bool Tokenizer::add_bos() const { return impl_->add_bos; }
bool Tokenizer::add_eos() const { return impl_->add_eos; }
int32_t Tokenizer::token_id(std::string_view text) const {
  auto it = impl_->text_to_id.find(std::string(text));
  return it == impl_->text_to_id.end() ? -1 : it->second;
}
bool Tokenizer::can_encode_byte(uint8_t b) const {
  const std::string one(1, static_cast<char>(b));
  const auto ids = encode(one, false, false);
  return decode(ids) == one;
}
std::string_view Tokenizer::token_text(int32_t id) const {
  if (id < 0 || id >= impl_->n_vocab()) fail("token id {} out of range [0, {})", id, impl_->n_vocab());
  return impl_->text[id];
}
TokenType Tokenizer::token_type(int32_t id) const {
  if (id < 0 || id >= impl_->n_vocab()) fail("token id {} out of range [0, {})", id, impl_->n_vocab());
  return impl_->type[id];
}
std::string_view Tokenizer::model_name() const { return impl_->model_name; }
std::string_view Tokenizer::pre_name() const { return impl_->pre_name; }

std::string StreamDecoder::push(int32_t id) {
  pending_ += first_ ? tok_->decode({id}) : tok_->token_to_piece(id);
  first_ = false;
  const size_t k = unicode::complete_prefix(pending_);
  std::string out = pending_.substr(0, k);
  pending_.erase(0, k);
  return out;
}

std::string StreamDecoder::flush() {
  std::string out;
  out.swap(pending_);
  return out;
}

}  // namespace glimpse
