// Cleaning of the natural-text sources, the missing-package message, and (when the
// packages are installed) loading them.
#include <gtest/gtest.h>

#include "eval/tasks_internal.h"
#include "eval/text_corpus.h"
#include "util/error.h"

namespace glimpse::eval {
namespace {

TEST(EvalCorpus, EntitiesTagsAndWhitespace) {
  EXPECT_EQ(decode_html_entities("a &amp; b &lt;c&gt; &#8212; &#x41;&quot; &bogus; & x"),
            "a & b <c> \xE2\x80\x94 A\" &bogus; & x");
  EXPECT_EQ(strip_html_tags("<p>Use <code class=\"command\">apt&#45;get</code> now</p>"),
            "Use apt-get now");
  EXPECT_EQ(collapse_whitespace("\n\t two   words \n"), "two words");
}

TEST(EvalCorpus, HandbookPageParagraphs) {
  const std::string long_text(100, 'w');
  const std::string html =
      "<html><head><title xmlns:d=\"x\">6.2. aptitude, apt-get, and apt Commands</title>"
      "<meta name=\"keywords\" content=\"apt, apt-get , sources.list\" /></head><body>"
      "<div class=\"para\">\n\t\tThe <acronym>APT</acronym> tools are " + long_text +
      " &amp; more.\n</div>"
      "<div class=\"para\">Too short.</div>"
      "<div class=\"para\">Lists: <div class=\"itemizedlist\"><ul><li><div class=\"para\">one "
      "item</div></li></ul></div> and the rest of a paragraph long enough to keep, about packages.</div>"
      "<div class=\"para\">Code follows <pre class=\"screen\">apt update</pre> and more words "
      "to be long enough for the filter to consider it at all.</div>"
      "</body></html>";
  const HandbookPage p = parse_handbook_page(html);
  EXPECT_EQ(p.title, "aptitude, apt-get, and apt Commands");
  EXPECT_EQ(p.keywords, (std::vector<std::string>{"apt", "apt-get", "sources.list"}));
  ASSERT_EQ(p.paragraphs.size(), 2u);
  EXPECT_EQ(p.paragraphs[0], "The APT tools are " + long_text + " & more.");
  EXPECT_EQ(p.paragraphs[1],
            "Lists: one item and the rest of a paragraph long enough to keep, about packages.");
  EXPECT_EQ(parse_handbook_page("<title>Chapter 6. Maintenance</title>").title, "Maintenance");
}

TEST(EvalCorpus, FortuneEntries) {
  const std::string text =
      "A day for firm decisions!!!!!  Or is it?  Perhaps tomorrow, then.\n%\n"
      "Short.\n%\n"
      "  ___\n /   \\\n|  o  |   _/\\_/\\_/\\_  ####  ~~~~ |||| ++++ ====\n%\n"
      "Two lines of\n\twisdom, with an attribution to follow.\n\t\t-- Someone\n";
  const auto e = split_fortunes(text);
  ASSERT_EQ(e.size(), 2u);
  EXPECT_EQ(e[0], "A day for firm decisions!!!!! Or is it? Perhaps tomorrow, then.");
  EXPECT_EQ(e[1], "Two lines of wisdom, with an attribution to follow. -- Someone");
}

TEST(EvalCorpus, MissingPackageNamesIt) {
  try {
    TextCorpus::load(CorpusSource::kHandbook, "/nonexistent/glimpse-corpus");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("apt-get install debian-handbook"), std::string::npos)
        << e.what();
  }
  try {
    TextCorpus::load(CorpusSource::kFortunes, "/nonexistent/glimpse-corpus");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'fortunes'"), std::string::npos) << e.what();
  }
  EXPECT_EQ(parse_corpus_source("fortunes"), CorpusSource::kFortunes);
  EXPECT_THROW(parse_corpus_source("wikipedia"), Error);
}

TEST(EvalCorpus, PassagesAreDeterministicAndWrap) {
  const TextCorpus c = TextCorpus::from_paragraphs({"alpha one.", "beta two.", "gamma three."});
  const auto a = c.passage(5, 100), b = c.passage(5, 100);
  EXPECT_EQ(a, b);
  ASSERT_GE(a.size(), 8u);  // 100 bytes from 3 short paragraphs: wraps around
  for (size_t i = 1; i < a.size(); ++i) EXPECT_EQ(a[i], (a[i - 1] + 1) % 3);
  EXPECT_EQ(c.doc_of(2).name, "custom");
}

TEST(EvalCorpus, SentenceSegmentsKeepTheText) {
  const std::vector<std::string> paras = {"First one. Second, e.g. with an abbreviation! Third?",
                                          "Next paragraph"};
  const auto segs = detail::split_sentences(paras);
  ASSERT_EQ(segs.size(), 4u);
  EXPECT_EQ(segs[0], "First one. ");
  EXPECT_EQ(segs[1], "Second, e.g. with an abbreviation! ");
  EXPECT_EQ(segs[2], "Third?\n\n");
  EXPECT_EQ(segs[3], "Next paragraph\n\n");
  EXPECT_EQ(detail::join_with_inserts(segs, 2, {{0.5, "NEEDLE."}, {0.0, "START."}}),
            "START. First one. NEEDLE. Second, e.g. with an abbreviation!");
}

TEST(EvalCorpus, InstalledPackages) {
  for (CorpusSource src : {CorpusSource::kHandbook, CorpusSource::kFortunes}) {
    TextCorpus c = TextCorpus::from_paragraphs({"x"});
    try {
      c = TextCorpus::load(src);
    } catch (const Error& e) {
      std::printf("[ skipped  ] %s\n", e.what());
      continue;
    }
    std::printf("[ corpus   ] %s\n", c.describe().c_str());
    EXPECT_GT(c.paragraphs().size(), 1000u);
    EXPECT_GT(c.total_bytes(), 300000u);
    for (const auto& p : c.paragraphs()) {
      ASSERT_EQ(p.find("<div"), std::string::npos) << p;  // no markup left
      ASSERT_EQ(p.find("class=\""), std::string::npos) << p;
      ASSERT_EQ(p.find('\n'), std::string::npos);
    }
    EXPECT_EQ(c.passage(1, 20000, true), c.passage(1, 20000, true));
    EXPECT_NE(c.passage(1, 20000), c.passage(2, 20000));
  }
}

}  // namespace
}  // namespace glimpse::eval
