// Cleaning of the natural-text sources, the missing-package message, the training /
// evaluation split, and (when the packages are installed) loading them.
#include <gtest/gtest.h>

#include <set>

#include "eval/span_index.h"
#include "eval/tasks_internal.h"
#include "eval/text_corpus.h"
#include "util/error.h"
#include "util/hash.h"

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
    TextCorpus::load(CorpusSource::kHandbook, CorpusSide::kTrain, "/nonexistent/glimpse-corpus");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("apt-get install debian-handbook"), std::string::npos)
        << e.what();
  }
  try {
    TextCorpus::load(CorpusSource::kFortunes, CorpusSide::kTrain, "/nonexistent/glimpse-corpus");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'fortunes'"), std::string::npos) << e.what();
  }
  try {
    TextCorpus::load(CorpusSource::kReference, CorpusSide::kTrain, "/nonexistent/glimpse-corpus");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("held out for evaluation"), std::string::npos) << e.what();
  }
  EXPECT_THROW(TextCorpus::load(CorpusSource::kFortunes, CorpusSide::kEval), Error);
  EXPECT_EQ(parse_corpus_source("fortunes"), CorpusSource::kFortunes);
  EXPECT_EQ(parse_corpus_source("reference"), CorpusSource::kReference);
  EXPECT_THROW(parse_corpus_source("wikipedia"), Error);
}

TEST(EvalCorpus, PassagesAreDeterministicAndWrap) {
  const TextCorpus c =
      TextCorpus::from_paragraphs({"alpha one.", "beta two.", "gamma three."}, CorpusSide::kEval);
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

TEST(EvalCorpus, ReferenceChapterSections) {
  const std::string long_text(90, 'r');
  const std::string html =
      "<html><head><title>Chapter 2. Debian package management</title></head><body>"
      "<p><strong>Table of Contents</strong></p>"
      "<h1 class=\"title\"><a id=\"_debian_package_management\"/>Chapter 2. Debian package "
      "management</h1><p>The chapter opens with " + long_text + ".</p>"
      "<h2 class=\"title\"><a id=\"_prerequisites\"/>2.1. Debian package management "
      "prerequisites</h2><p>Short.</p>"
      "<h3 class=\"title\"><a id=\"_package_configuration\"/>2.1.1. Package configuration</h3>"
      "<ul><li><p> Each package comes with its own <code class=\"literal\">debconf</code>(7) "
      "script &amp; a standard interface for the initial installation.  </p></li></ul>"
      "<p class=\"title\"><strong>Table 2.1. A caption that is long enough to pass the length "
      "filter of the paragraphs</strong></p>"
      "<p>Listing <pre class=\"screen\">$ apt-get update</pre> with enough words around it to "
      "be long.</p></body></html>";
  const auto secs = parse_reference_chapter(html);
  ASSERT_EQ(secs.size(), 2u);
  EXPECT_EQ(secs[0].anchor, "_debian_package_management");
  EXPECT_EQ(secs[0].title, "Debian package management");
  EXPECT_EQ(secs[0].paragraphs, (std::vector<std::string>{"The chapter opens with " + long_text + "."}));
  EXPECT_EQ(secs[1].title, "Debian package management prerequisites");
  // The h3 subsection stays in its h2 section; the caption and the listing are not taken.
  EXPECT_EQ(secs[1].paragraphs,
            (std::vector<std::string>{"Each package comes with its own debconf(7) script & a "
                                      "standard interface for the initial installation."}));
}

TEST(EvalCorpus, HandbookPagesSplitByAFixedHash) {
  // Pinned: moving a page to the other side would silently change both sides.
  EXPECT_EQ(document_side(CorpusSource::kHandbook, "sect.apt-get.html"),
            fnv1a("sect.apt-get.html") >> 63 ? CorpusSide::kEval : CorpusSide::kTrain);
  int eval = 0;
  for (int i = 0; i < 1000; ++i)
    eval += document_side(CorpusSource::kHandbook, "page" + std::to_string(i) + ".html") == CorpusSide::kEval;
  EXPECT_NEAR(eval, 500, 60);
  EXPECT_EQ(document_side(CorpusSource::kReference, "ch01.en.html"), CorpusSide::kEval);
  EXPECT_EQ(document_side(CorpusSource::kFortunes, "computers"), CorpusSide::kTrain);
}

TEST(EvalCorpus, SidesOfTheInstalledPackages) {
  TextCorpus train = TextCorpus::from_paragraphs({"x"}, CorpusSide::kTrain);
  TextCorpus eval = TextCorpus::from_paragraphs({"x"}, CorpusSide::kEval);
  try {
    train = TextCorpus::load_side(CorpusSide::kTrain);
    eval = TextCorpus::load_side(CorpusSide::kEval);
  } catch (const Error& e) {
    GTEST_SKIP() << e.what();
  }
  std::printf("[ corpus   ] %s\n[ corpus   ] %s\n", train.describe().c_str(), eval.describe().c_str());
  EXPECT_EQ(train.side(), CorpusSide::kTrain);
  EXPECT_EQ(eval.side(), CorpusSide::kEval);
  EXPECT_EQ(eval.name(), "debian-handbook+debian-reference");
  std::set<std::string> train_docs;
  for (const CorpusDoc& d : train.docs()) {
    train_docs.insert(d.name);
    EXPECT_EQ(document_side(CorpusSource::kHandbook, d.name), CorpusSide::kTrain) << d.name;
  }
  size_t reference_docs = 0;
  for (const CorpusDoc& d : eval.docs()) {
    EXPECT_EQ(train_docs.count(d.name), 0u) << d.name;
    reference_docs += d.name.find(".en.html#") != std::string::npos;
  }
  EXPECT_GT(reference_docs, 50u);
  EXPECT_GT(train.total_bytes(), 300000u);
  EXPECT_GT(eval.total_bytes(), 500000u);
  // No evaluation paragraph shares a 64-byte span with a training paragraph.
  const TextCorpus fortunes = TextCorpus::load(CorpusSource::kFortunes, CorpusSide::kTrain);
  std::vector<std::string_view> views;
  for (const TextCorpus* c : std::initializer_list<const TextCorpus*>{&train, &fortunes})
    for (const std::string& p : c->paragraphs()) views.push_back(p);
  const SpanIndex index(views, 64);
  // Nor 31 opening or closing bytes (a window across a paragraph break holds 31 on one side).
  std::set<std::string_view> heads, tails;
  for (std::string_view v : views) heads.insert(v.substr(0, 31)), tails.insert(v.substr(v.size() - 31));
  for (const std::string& p : eval.paragraphs()) {
    const auto hit = index.first_shared(p);
    ASSERT_FALSE(hit.has_value()) << "shared: " << p.substr(hit->offset, 64);
    ASSERT_EQ(heads.count(std::string_view(p).substr(0, 31)), 0u) << p;
    ASSERT_EQ(tails.count(std::string_view(p).substr(p.size() - 31)), 0u) << p;
  }
}

TEST(EvalCorpus, InstalledPackages) {
  for (CorpusSource src : {CorpusSource::kHandbook, CorpusSource::kReference, CorpusSource::kFortunes}) {
    TextCorpus c = TextCorpus::from_paragraphs({"x"}, CorpusSide::kTrain);
    try {
      c = TextCorpus::load(src, src == CorpusSource::kFortunes ? CorpusSide::kTrain : CorpusSide::kEval);
    } catch (const Error& e) {
      std::printf("[ skipped  ] %s\n", e.what());
      continue;
    }
    std::printf("[ corpus   ] %s\n", c.describe().c_str());
    EXPECT_GT(c.paragraphs().size(), 1000u);
    EXPECT_GT(c.total_bytes(), 250000u);
    for (const auto& p : c.paragraphs()) {
      ASSERT_EQ(p.find("<div"), std::string::npos) << p;  // no markup left
      ASSERT_EQ(p.find("</p>"), std::string::npos) << p;
      ASSERT_EQ(p.find("class=\""), std::string::npos) << p;
      ASSERT_EQ(p.find('\n'), std::string::npos);
    }
    EXPECT_EQ(c.passage(1, 20000, true), c.passage(1, 20000, true));
    EXPECT_NE(c.passage(1, 20000), c.passage(2, 20000));
  }
}

}  // namespace
}  // namespace glimpse::eval
