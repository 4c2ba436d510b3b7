// Loading the corpus packages into one side of the training/evaluation split
// (text_corpus.h), and the passage picker the tasks draw from.
#include "eval/text_corpus.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <unordered_set>

#include "eval/rng.h"
#include "eval/span_index.h"
#include "util/error.h"
#include "util/hash.h"

namespace glimpse::eval {
namespace fs = std::filesystem;

namespace {

// Evaluation paragraphs sharing a window this long with the training side are dropped.
constexpr size_t kSharedSpanBytes = 64;
// A window that crosses a paragraph break ("\n\n") holds 62 bytes of text, at least 31 of
// them on one side: an evaluation paragraph that opens or ends with the same 31 bytes as a
// training paragraph (two pages citing the same section: "... (see Section 9.1.1, “The
// systemd init system”).") is dropped too.
constexpr size_t kEdgeBytes = (kSharedSpanBytes - 2) / 2;
std::string_view head(std::string_view p) { return p.substr(0, kEdgeBytes); }
std::string_view tail(std::string_view p) { return p.substr(p.size() - std::min(p.size(), kEdgeBytes)); }

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) fail("cannot read {}", p.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// One document as parsed, before it joins a corpus.
struct ParsedDoc {
  CorpusDoc doc;  // first/count unset
  std::vector<std::string> paragraphs;
};

bool is_source_file(CorpusSource source, const fs::path& p) {
  switch (source) {
    case CorpusSource::kHandbook: return p.extension() == ".html";
    case CorpusSource::kReference: return p.string().ends_with(".en.html");
    case CorpusSource::kFortunes: return !p.has_extension();
  }
  return false;
}

void parse_file(CorpusSource source, const fs::path& p, std::vector<ParsedDoc>& out) {
  const std::string file = p.filename().string();
  if (source == CorpusSource::kHandbook) {
    HandbookPage page = parse_handbook_page(read_all(p));
    out.push_back({{file, std::move(page.title), std::move(page.keywords)}, std::move(page.paragraphs)});
  } else if (source == CorpusSource::kReference) {
    for (ReferenceSection& s : parse_reference_chapter(read_all(p)))
      out.push_back({{file + "#" + s.anchor, std::move(s.title), {}}, std::move(s.paragraphs)});
  } else {
    out.push_back({{file, "", {}}, split_fortunes(read_all(p))});
  }
}

// Every document of a source on `side`, in file-name order (empty ones dropped).
std::vector<ParsedDoc> read_source(CorpusSource source, CorpusSide side, const std::string& root_in) {
  const std::string root = root_in.empty() ? TextCorpus::default_root(source) : root_in;
  const std::string_view pkg = source == CorpusSource::kReference ? "debian-reference-en"
                                                                   : corpus_source_name(source);
  std::error_code ec;
  if (!fs::is_directory(root, ec))
    fail("text corpus not found: {} is missing (install the Debian package '{}': "
         "apt-get install {}, or run scripts/setup-deps.sh)", root, pkg, pkg);
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(root, ec)) {
    // Symlinks are skipped: fortunes installs "x.u8 -> x" aliases.
    if (e.is_regular_file() && !e.is_symlink() && is_source_file(source, e.path()))
      files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  std::vector<ParsedDoc> docs;
  for (const fs::path& p : files)
    if (document_side(source, p.filename().string()) == side) parse_file(source, p, docs);
  std::erase_if(docs, [](const ParsedDoc& d) { return d.paragraphs.empty(); });
  if (docs.empty())
    fail("text corpus {} holds no usable text (reinstall the Debian package '{}')", root, pkg);
  return docs;
}

// The training side's paragraphs (every source that has a training side), kept alive for
// the span index built over them.
struct TrainingText {
  std::vector<std::vector<ParsedDoc>> parts;
  std::unique_ptr<SpanIndex> index;
  std::unordered_set<std::string_view> heads, tails;  // of every training paragraph

  // Whether an evaluation paragraph could share a 64-byte span with training text, within
  // it or across the break before or after it.
  bool shares(std::string_view p) const {
    return heads.count(head(p)) || tails.count(tail(p)) || index->first_shared(p).has_value();
  }
};

std::unique_ptr<TrainingText> training_text() {
  auto t = std::make_unique<TrainingText>();
  std::vector<std::string_view> views;
  for (CorpusSource s : {CorpusSource::kHandbook, CorpusSource::kFortunes}) {
    t->parts.push_back(read_source(s, CorpusSide::kTrain, ""));
    for (const ParsedDoc& d : t->parts.back())
      for (const std::string& p : d.paragraphs) {
        views.push_back(p);
        t->heads.insert(head(p));
        t->tails.insert(tail(p));
      }
  }
  t->index = std::make_unique<SpanIndex>(std::move(views), kSharedSpanBytes);
  return t;
}

bool has_side(CorpusSource source, CorpusSide side) {
  return source == CorpusSource::kHandbook ||
         (source == CorpusSource::kReference) == (side == CorpusSide::kEval);
}

}  // namespace

std::string_view corpus_source_name(CorpusSource s) {
  switch (s) {
    case CorpusSource::kHandbook: return "debian-handbook";
    case CorpusSource::kReference: return "debian-reference";
    case CorpusSource::kFortunes: return "fortunes";
  }
  return "?";
}

CorpusSource parse_corpus_source(std::string_view name) {
  if (name == "debian-handbook" || name == "handbook") return CorpusSource::kHandbook;
  if (name == "debian-reference" || name == "reference") return CorpusSource::kReference;
  if (name == "fortunes") return CorpusSource::kFortunes;
  fail("unknown text corpus '{}' (expected debian-handbook, debian-reference or fortunes)", name);
}

std::string_view corpus_side_name(CorpusSide s) { return s == CorpusSide::kTrain ? "train" : "eval"; }

CorpusSide document_side(CorpusSource source, std::string_view file_name) {
  switch (source) {
    case CorpusSource::kHandbook:
      return fnv1a(file_name) >> 63 ? CorpusSide::kEval : CorpusSide::kTrain;
    case CorpusSource::kReference: return CorpusSide::kEval;
    case CorpusSource::kFortunes: return CorpusSide::kTrain;
  }
  return CorpusSide::kEval;
}

std::string TextCorpus::default_root(CorpusSource source) {
  switch (source) {
    case CorpusSource::kHandbook: return "/usr/share/doc/debian-handbook/html/en-US";
    case CorpusSource::kReference: return "/usr/share/debian-reference";
    case CorpusSource::kFortunes: return "/usr/share/games/fortunes";
  }
  return "";
}

std::vector<CorpusSource> TextCorpus::default_sources(CorpusSide side) {
  if (side == CorpusSide::kTrain) return {CorpusSource::kHandbook};
  return {CorpusSource::kHandbook, CorpusSource::kReference};
}

TextCorpus TextCorpus::load(CorpusSource source, CorpusSide side, const std::string& root) {
  return load_impl({source}, side, root);
}

TextCorpus TextCorpus::load(const std::vector<CorpusSource>& sources, CorpusSide side) {
  return load_impl(sources, side, "");
}

TextCorpus TextCorpus::load_impl(const std::vector<CorpusSource>& sources, CorpusSide side,
                                 const std::string& root) {
  if (sources.empty()) fail("no text corpus named");
  for (CorpusSource s : sources)
    if (!has_side(s, side))
      fail("text corpus {} has no {} side: {}", corpus_source_name(s), corpus_side_name(side),
           side == CorpusSide::kEval ? "it is used for training only"
                                     : "it is held out for evaluation");
  std::vector<std::vector<ParsedDoc>> parts;
  for (CorpusSource s : sources) parts.push_back(read_source(s, side, root));
  // The evaluation side is checked against the whole training side, read once.
  const std::unique_ptr<TrainingText> train = side == CorpusSide::kEval ? training_text() : nullptr;
  TextCorpus c;
  c.side_ = side;
  c.doc_starts_ = true;
  for (size_t k = 0; k < sources.size(); ++k) {
    c.name_ += (k ? "+" : "") + std::string(corpus_source_name(sources[k]));
    c.doc_starts_ = c.doc_starts_ && sources[k] != CorpusSource::kFortunes;
    for (ParsedDoc& d : parts[k]) {
      if (train) {
        const size_t before = d.paragraphs.size();
        std::erase_if(d.paragraphs, [&](const std::string& p) { return train->shares(p); });
        c.dropped_ += before - d.paragraphs.size();
        if (d.paragraphs.empty()) continue;
      }
      d.doc.first = c.paragraphs_.size();
      d.doc.count = d.paragraphs.size();
      for (std::string& p : d.paragraphs) {
        c.paragraphs_.push_back(std::move(p));
        c.para_doc_.push_back(c.docs_.size());
      }
      c.docs_.push_back(std::move(d.doc));
    }
  }
  if (c.paragraphs_.empty()) fail("text corpus {}: no paragraphs left on the {} side", c.name_, corpus_side_name(side));
  return c;
}

TextCorpus TextCorpus::from_paragraphs(std::vector<std::string> paragraphs, CorpusSide side,
                                       std::string name) {
  if (paragraphs.empty()) fail("empty text corpus '{}'", name);
  TextCorpus c;
  c.side_ = side;
  c.name_ = name;
  CorpusDoc d;
  d.name = std::move(name);
  d.count = paragraphs.size();
  c.paragraphs_ = std::move(paragraphs);
  c.para_doc_.assign(c.paragraphs_.size(), 0);
  c.docs_.push_back(std::move(d));
  return c;
}

const CorpusDoc& TextCorpus::doc_of(size_t paragraph) const {
  return docs_.at(para_doc_.at(paragraph));
}

size_t TextCorpus::total_bytes() const {
  size_t n = 0;
  for (const auto& p : paragraphs_) n += p.size();
  return n;
}

std::string TextCorpus::describe() const {
  std::string s = fmt::format("{}, {} side ({} paragraphs in {} documents, {:.2f} MB", name_,
                              corpus_side_name(side_), paragraphs_.size(), docs_.size(),
                              total_bytes() / 1e6);
  if (side_ == CorpusSide::kEval) s += fmt::format(", {} dropped as shared with training", dropped_);
  return s + ")";
}

std::vector<size_t> TextCorpus::passage(uint64_t seed, size_t min_bytes, bool from_doc_start) const {
  Rng rng(mix64(seed ^ 0x7061737361676573ull));
  // Document starts only where documents are real (not fortune files).
  const bool docs = from_doc_start && doc_starts_ && docs_.size() > 1;
  size_t start = docs ? docs_[rng.below(docs_.size())].first : (size_t)rng.below(paragraphs_.size());
  std::vector<size_t> out;
  size_t bytes = 0;
  // Wrapping around the corpus is allowed (repeats text only for huge targets).
  for (size_t i = start; bytes < min_bytes; i = (i + 1) % paragraphs_.size()) {
    out.push_back(i);
    bytes += paragraphs_[i].size() + 2;
  }
  return out;
}

}  // namespace glimpse::eval
