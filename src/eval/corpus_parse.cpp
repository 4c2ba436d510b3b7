// Cleaning of the corpus packages' HTML and text files into paragraphs (text_corpus.h):
// entity decoding, tag stripping, whitespace collapsing, and one parser per package.
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <sstream>

#include "eval/text_corpus.h"

namespace glimpse::eval {
namespace {

void append_utf8(std::string& out, uint32_t cp) {
  if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) cp = 0xFFFD;
  if (cp < 0x80) {
    out += (char)cp;
  } else if (cp < 0x800) {
    out += (char)(0xC0 | (cp >> 6));
    out += (char)(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += (char)(0xE0 | (cp >> 12));
    out += (char)(0x80 | ((cp >> 6) & 0x3F));
    out += (char)(0x80 | (cp & 0x3F));
  } else {
    out += (char)(0xF0 | (cp >> 18));
    out += (char)(0x80 | ((cp >> 12) & 0x3F));
    out += (char)(0x80 | ((cp >> 6) & 0x3F));
    out += (char)(0x80 | (cp & 0x3F));
  }
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f'; }

// Value of attribute-free element <tag ...>TEXT</tag>: first occurrence, raw.
std::string element_text(std::string_view html, std::string_view tag) {
  const size_t a = html.find(fmt::format("<{}", tag));
  if (a == std::string_view::npos) return "";
  const size_t b = html.find('>', a);
  const size_t c = html.find(fmt::format("</{}>", tag), b);
  if (b == std::string_view::npos || c == std::string_view::npos) return "";
  return std::string(html.substr(b + 1, c - b - 1));
}

// "6.2. aptitude ..." -> "aptitude ...", "Chapter 6. Maintenance" -> "Maintenance".
std::string strip_numbering(std::string t) {
  if (t.rfind("Chapter ", 0) == 0 || t.rfind("Appendix ", 0) == 0) t = t.substr(t.find(' ') + 1);
  size_t i = 0;
  while (i < t.size() && (std::isdigit((unsigned char)t[i]) || t[i] == '.' ||
                          (std::isupper((unsigned char)t[i]) && i + 1 < t.size() && t[i + 1] == '.')))
    ++i;
  while (i < t.size() && t[i] == ' ') ++i;
  return i < t.size() ? t.substr(i) : t;
}

// Share of bytes that are letters, digits, spaces or sentence punctuation (or non-ASCII).
double prose_ratio(std::string_view s) {
  if (s.empty()) return 0;
  size_t ok = 0;
  for (unsigned char c : s)
    ok += std::isalnum(c) || c == ' ' || c >= 0x80 || std::strchr(".,;:!?'\"()-", c) != nullptr;
  return (double)ok / s.size();
}

}  // namespace

std::string decode_html_entities(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '&') {
      out += s[i];
      continue;
    }
    const size_t semi = s.find(';', i);
    if (semi == std::string_view::npos || semi - i > 10) {
      out += '&';
      continue;
    }
    const std::string_view name = s.substr(i + 1, semi - i - 1);
    uint32_t cp = 0;
    if (name == "amp") cp = '&';
    else if (name == "lt") cp = '<';
    else if (name == "gt") cp = '>';
    else if (name == "quot") cp = '"';
    else if (name == "apos") cp = '\'';
    else if (name == "nbsp") cp = ' ';
    else if (name.size() > 1 && name[0] == '#') {
      const bool hex = name[1] == 'x' || name[1] == 'X';
      const std::string digits(name.substr(hex ? 2 : 1));
      char* end = nullptr;
      const unsigned long v = std::strtoul(digits.c_str(), &end, hex ? 16 : 10);
      if (!digits.empty() && end && *end == 0) cp = (uint32_t)std::min(v, 0x10FFFFul);
    }
    if (cp == 0) {
      out += '&';  // unknown entity: keep the text as it is
      continue;
    }
    append_utf8(out, cp);
    i = semi;
  }
  return out;
}

std::string strip_html_tags(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '<') {
      const size_t e = s.find('>', i);
      if (e == std::string_view::npos) break;
      i = e;
      continue;
    }
    out += s[i];
  }
  return decode_html_entities(out);
}

std::string collapse_whitespace(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  bool space = false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const bool nbsp = c == '\xC2' && i + 1 < s.size() && s[i + 1] == '\xA0';  // U+00A0
    if (nbsp) ++i;
    if (nbsp || is_space(c)) {
      space = !out.empty();
      continue;
    }
    if (space) out += ' ';
    space = false;
    out += c;
  }
  return out;
}

HandbookPage parse_handbook_page(std::string_view html) {
  HandbookPage page;
  page.title = strip_numbering(collapse_whitespace(strip_html_tags(element_text(html, "title"))));
  const std::string_view kMeta = "<meta name=\"keywords\" content=\"";
  if (size_t k = html.find(kMeta); k != std::string_view::npos) {
    const size_t a = k + kMeta.size(), b = html.find('"', a);
    std::string list = decode_html_entities(html.substr(a, b - a));
    std::stringstream ss(list);
    for (std::string kw; std::getline(ss, kw, ',');) {
      kw = collapse_whitespace(kw);
      if (!kw.empty()) page.keywords.push_back(kw);
    }
  }
  // <div class="para"> ... </div>, skipping over nested divs (lists, notes).
  const std::string_view kPara = "<div class=\"para\">";
  for (size_t pos = html.find(kPara); pos != std::string_view::npos; pos = html.find(kPara, pos)) {
    const size_t body = pos + kPara.size();
    size_t j = body;
    int depth = 1;
    while (depth > 0) {
      const size_t open = html.find("<div", j), close = html.find("</div>", j);
      if (close == std::string_view::npos) return page;  // malformed tail: stop
      if (open < close) {
        ++depth;
        j = open + 4;
      } else {
        --depth;
        j = close + 6;
      }
    }
    const std::string_view raw = html.substr(body, j - 6 - body);
    pos = j;
    if (raw.find("<pre") != std::string_view::npos) continue;  // code listings
    std::string text = collapse_whitespace(strip_html_tags(raw));
    if (text.size() < 80 || prose_ratio(text) < 0.95) continue;
    page.paragraphs.push_back(std::move(text));
  }
  return page;
}

// Sections of a Debian Reference chapter. Headings look like
//   <h2 class="title"><a id="_package_dependencies"/>2.1.6. Package dependencies</h2>
// and paragraphs are plain <p>…</p> (table captions are <p class="title">, not taken).
std::vector<ReferenceSection> parse_reference_chapter(std::string_view html) {
  std::vector<ReferenceSection> out;
  const std::string_view kH1 = "<h1 class=\"title\">", kH2 = "<h2 class=\"title\">", kP = "<p>";
  size_t pos = 0;
  while (true) {
    const size_t h = std::min(html.find(kH1, pos), html.find(kH2, pos));
    const size_t p = html.find(kP, pos);
    if (h == std::string_view::npos && p == std::string_view::npos) break;
    if (h < p) {  // a new section: <hN class="title"><a id="ID"/>TITLE</hN>
      const size_t close = html.find("</h", h);
      if (close == std::string_view::npos) break;
      const std::string_view head = html.substr(h, close - h);
      ReferenceSection sec;
      if (size_t a = head.find("id=\""); a != std::string_view::npos) {
        a += 4;
        sec.anchor = std::string(head.substr(a, head.find('"', a) - a));
      }
      sec.title = strip_numbering(collapse_whitespace(strip_html_tags(head.substr(kH1.size()))));
      out.push_back(std::move(sec));
      pos = close + 3;
      continue;
    }
    const size_t end = html.find("</p>", p);
    if (end == std::string_view::npos) break;
    const std::string_view raw = html.substr(p + kP.size(), end - p - kP.size());
    pos = end + 4;
    if (out.empty() || raw.find("<pre") != std::string_view::npos) continue;  // before any heading; code
    std::string text = collapse_whitespace(strip_html_tags(raw));
    if (text.size() < 80 || prose_ratio(text) < 0.95) continue;
    out.back().paragraphs.push_back(std::move(text));
  }
  return out;
}

std::vector<std::string> split_fortunes(std::string_view text) {
  std::vector<std::string> out;
  std::string entry;
  auto flush = [&] {
    std::string t = collapse_whitespace(entry);
    entry.clear();
    // Letters must dominate (drops ASCII art); 40..1200 bytes keeps quips, not essays of
    // indented verse or bare one-liners.
    if (t.size() >= 40 && t.size() <= 1200 && prose_ratio(t) >= 0.97) out.push_back(std::move(t));
  };
  size_t i = 0;
  while (i <= text.size()) {
    size_t e = text.find('\n', i);
    if (e == std::string_view::npos) e = text.size();
    const std::string_view line = text.substr(i, e - i);
    if (line == "%") flush();
    else entry.append(line).push_back('\n');
    i = e + 1;
  }
  flush();
  return out;
}

}  // namespace glimpse::eval
