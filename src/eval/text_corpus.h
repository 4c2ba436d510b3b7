// Natural-language text for the evaluation haystacks, the open-ended and document tasks,
// and the LookaheadKV training prompts, read from Debian packages installed by
// scripts/setup-deps.sh (never from the network at run time):
//
//   kHandbook:  The Debian Administrator's Handbook, package `debian-handbook`, English HTML
//               under /usr/share/doc/debian-handbook/html/en-US (by Raphaël Hertzog and
//               Roland Mas; GPL-2.0+ or CC-BY-SA-3.0, see /usr/share/doc/debian-handbook/
//               copyright). One page = one document; paragraphs are the <div class="para">
//               blocks, tags stripped. Pages also give a title and keywords (open_qa).
//   kReference: the Debian Reference, package `debian-reference-en`, one HTML file per
//               chapter under /usr/share/debian-reference (by Osamu Aoki; GPL-2.0+, see
//               /usr/share/doc/debian-reference-en/copyright). One top-level section of a
//               chapter = one document; paragraphs are the <p> elements.
//   kFortunes:  the fortune cookie database, package `fortunes` (text files under
//               /usr/share/games/fortunes, entries separated by lines holding "%"; BSD-style
//               licence, see /usr/share/doc/fortunes/copyright). One entry = one paragraph.
//
// The split. Training (LookaheadKV prompts) and evaluation never share a document:
//   - handbook pages go to a side by the top bit of FNV-1a-64 of the page file name
//     (0: training, 1: evaluation; 64 and 63 pages with debian-handbook 11.20220922);
//   - the Debian Reference is evaluation-only (a second author and writing style);
//   - fortunes are training-only.
// On top of that, when the evaluation side is loaded, an evaluation paragraph is dropped
// if it shares any 64-byte span with a training paragraph, or opens or ends with the same
// 31 bytes as one (a 64-byte window across a paragraph break holds at least 31 bytes of
// one side); cross-references quoting another page's section title are what this drops.
// So no 64-byte span of corpus text, within a paragraph or across a break, is on both
// sides (span_index.h; disjointness_test.cpp checks the generated prompts of both sides).
// Every corpus knows its side; the task generators refuse a corpus of the other side.
//
// Samples depend on the package versions installed (Debian 12: debian-handbook 11.x,
// debian-reference-en 2.100, fortunes 1.99.1), which the runner records.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace glimpse::eval {

enum class CorpusSource { kHandbook, kReference, kFortunes };
// "debian-handbook", "debian-reference", "fortunes"
std::string_view corpus_source_name(CorpusSource s);
// Also "handbook", "reference"; throws Error if unknown.
CorpusSource parse_corpus_source(std::string_view name);

enum class CorpusSide { kTrain, kEval };
std::string_view corpus_side_name(CorpusSide s);  // "train", "eval"

// The side a document of `source` belongs to, from its file name (see the header comment).
CorpusSide document_side(CorpusSource source, std::string_view file_name);

struct CorpusDoc {
  std::string name;                   // "sect.apt-get.html", "ch02.en.html#_package_dependencies"
  std::string title;                  // "aptitude, apt-get, and apt Commands" (may be empty)
  std::vector<std::string> keywords;  // from <meta name="keywords"> (may be empty)
  size_t first = 0, count = 0;        // its paragraphs: [first, first + count)
};

class TextCorpus {
 public:
  // The documents of `source` on `side`, read from `root` (default: the package's
  // directory, see above) in file-name order. Throws Error naming the package to install
  // when nothing is found, and when the source has no documents on that side (fortunes
  // for evaluation, the Debian Reference for training). Loading the evaluation side also
  // reads the training side (default directories) to drop shared spans.
  static TextCorpus load(CorpusSource source, CorpusSide side, const std::string& root = "");
  // Several sources' documents on `side` as one corpus, in the order given.
  static TextCorpus load(const std::vector<CorpusSource>& sources, CorpusSide side);
  // Each side's default natural text: training {handbook}; evaluation {handbook, reference}.
  static std::vector<CorpusSource> default_sources(CorpusSide side);
  static TextCorpus load_side(CorpusSide side) { return load(default_sources(side), side); }
  static std::string default_root(CorpusSource source);
  // A corpus from given paragraphs (one document) on a chosen side; for tests and custom text.
  static TextCorpus from_paragraphs(std::vector<std::string> paragraphs, CorpusSide side,
                                    std::string name = "custom");

  CorpusSide side() const { return side_; }
  const std::string& name() const { return name_; }  // "debian-handbook+debian-reference"
  const std::vector<std::string>& paragraphs() const { return paragraphs_; }
  const std::vector<CorpusDoc>& docs() const { return docs_; }
  const CorpusDoc& doc_of(size_t paragraph) const;
  size_t total_bytes() const;
  size_t dropped() const { return dropped_; }  // evaluation paragraphs dropped as shared (above)
  // "debian-handbook+debian-reference, eval side (3012 paragraphs in 160 documents, 0.7 MB,
  // 7 dropped as shared with training)"
  std::string describe() const;

  // Indices of consecutive paragraphs (wrapping at the end) from a start drawn from seed,
  // enough for at least min_bytes of text. With from_doc_start the start is the first
  // paragraph of a document (handbook page, reference section), so the passage opens one
  // (fortunes and custom text: any paragraph).
  std::vector<size_t> passage(uint64_t seed, size_t min_bytes, bool from_doc_start = false) const;

 private:
  CorpusSide side_ = CorpusSide::kEval;
  std::string name_;
  bool doc_starts_ = false;  // documents are real documents (not fortune files)
  size_t dropped_ = 0;
  std::vector<std::string> paragraphs_;
  std::vector<size_t> para_doc_;  // paragraph -> index into docs_
  std::vector<CorpusDoc> docs_;

  // root: the directory of the only source (empty: the packages' directories).
  static TextCorpus load_impl(const std::vector<CorpusSource>& sources, CorpusSide side,
                              const std::string& root);
};

// Cleaning steps and parsers, exposed for tests (corpus_parse.cpp).
std::string decode_html_entities(std::string_view s);  // &amp; &lt; &#8212; &#x2014; ...
std::string strip_html_tags(std::string_view s);        // drops <...>, then decodes entities
std::string collapse_whitespace(std::string_view s);    // runs (and U+00A0) -> one space, trimmed

struct HandbookPage {
  std::string title;
  std::vector<std::string> keywords;
  std::vector<std::string> paragraphs;  // cleaned; code listings and short ones dropped
};
HandbookPage parse_handbook_page(std::string_view html);

// One document of a Debian Reference chapter: the text under an <h1>/<h2> heading up to
// the next one (deeper headings stay inside), paragraphs cleaned like the handbook's.
struct ReferenceSection {
  std::string anchor;  // the heading's id, e.g. "_package_dependencies"
  std::string title;   // numbering stripped: "Package dependencies"
  std::vector<std::string> paragraphs;
};
std::vector<ReferenceSection> parse_reference_chapter(std::string_view html);

// Entries of one fortune file, whitespace collapsed; ASCII art, very short and very long
// entries dropped.
std::vector<std::string> split_fortunes(std::string_view text);

}  // namespace glimpse::eval
