// Natural-language text for the evaluation haystacks and open-ended tasks, read from
// Debian packages installed by scripts/setup-deps.sh (never from the network at run time):
//
//   kHandbook: The Debian Administrator's Handbook, package `debian-handbook`, English HTML
//              under /usr/share/doc/debian-handbook/html/en-US (by Raphaël Hertzog and
//              Roland Mas; GPL-2.0+ or CC-BY-SA-3.0, see /usr/share/doc/debian-handbook/
//              copyright). Paragraphs are the <div class="para"> blocks, tags stripped.
//              Pages also give a title and keywords (open_qa asks about a keyword).
//   kFortunes: the fortune cookie database, package `fortunes` (text files under
//              /usr/share/games/fortunes, entries separated by lines holding "%"; BSD-style
//              licence, see /usr/share/doc/fortunes/copyright). One entry = one paragraph.
//
// The handbook is the default: its long expository paragraphs read like the essays RULER
// uses; fortunes are short quips. Samples depend on the package version installed
// (Debian 12: debian-handbook 11.x, fortunes 1.99.1), which the runner should record.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace glimpse::eval {

enum class CorpusSource { kHandbook, kFortunes };
std::string_view corpus_source_name(CorpusSource s);  // "debian-handbook", "fortunes"
CorpusSource parse_corpus_source(std::string_view name);  // throws Error if unknown

struct CorpusDoc {
  std::string name;                   // file name, e.g. "sect.apt-get.html"
  std::string title;                  // "aptitude, apt-get, and apt Commands" (may be empty)
  std::vector<std::string> keywords;  // from <meta name="keywords"> (may be empty)
  size_t first = 0, count = 0;        // its paragraphs: [first, first + count)
};

class TextCorpus {
 public:
  // Reads every document under `root` (default: the package's directory, see above) in
  // file-name order. Throws Error naming the package to install when nothing is found.
  static TextCorpus load(CorpusSource source, const std::string& root = "");
  static std::string default_root(CorpusSource source);
  // A corpus from given paragraphs (one document); for tests and custom text.
  static TextCorpus from_paragraphs(std::vector<std::string> paragraphs,
                                    std::string name = "custom");

  CorpusSource source() const { return source_; }
  const std::vector<std::string>& paragraphs() const { return paragraphs_; }
  const std::vector<CorpusDoc>& docs() const { return docs_; }
  const CorpusDoc& doc_of(size_t paragraph) const;
  size_t total_bytes() const;
  std::string describe() const;  // "debian-handbook (3012 paragraphs in 127 files, 1.6 MB)"

  // Indices of consecutive paragraphs (wrapping at the end) from a start drawn from seed,
  // enough for at least min_bytes of text. With from_doc_start the start is the first
  // paragraph of a handbook page, so the passage opens a page (other corpora: any paragraph).
  std::vector<size_t> passage(uint64_t seed, size_t min_bytes, bool from_doc_start = false) const;

 private:
  CorpusSource source_ = CorpusSource::kHandbook;
  std::vector<std::string> paragraphs_;
  std::vector<size_t> para_doc_;  // paragraph -> index into docs_
  std::vector<CorpusDoc> docs_;
};

// Cleaning steps, exposed for tests.
std::string decode_html_entities(std::string_view s);  // &amp; &lt; &#8212; &#x2014; ...
std::string strip_html_tags(std::string_view s);        // drops <...>, then decodes entities
std::string collapse_whitespace(std::string_view s);    // runs (and U+00A0) -> one space, trimmed

struct HandbookPage {
  std::string title;
  std::vector<std::string> keywords;
  std::vector<std::string> paragraphs;  // cleaned; code listings and short ones dropped
};
HandbookPage parse_handbook_page(std::string_view html);

// Entries of one fortune file, whitespace collapsed; ASCII art, very short and very long
// entries dropped.
std::vector<std::string> split_fortunes(std::string_view text);

}  // namespace glimpse::eval
