#include "eval/tables.h"

#include <algorithm>

#include "util/error.h"

namespace glimpse::eval {

std::string markdown_table(const std::vector<std::string>& header,
                           const std::vector<std::vector<std::string>>& rows,
                           const std::vector<Align>& align) {
  auto cell = [](std::string_view s) {
    std::string out;
    for (char c : s) {
      if (c == '|') out += "\\|";
      else if (c == '\n' || c == '\r') out += ' ';
      else out += c;
    }
    return out;
  };
  const size_t nc = header.size();
  std::vector<size_t> width(nc, 3);
  for (size_t c = 0; c < nc; ++c) width[c] = std::max(width[c], cell(header[c]).size());
  for (const auto& r : rows)
    for (size_t c = 0; c < nc && c < r.size(); ++c) width[c] = std::max(width[c], cell(r[c]).size());
  auto line = [&](const std::vector<std::string>& r) {
    std::string s = "|";
    for (size_t c = 0; c < nc; ++c) {
      const std::string v = c < r.size() ? cell(r[c]) : "";
      const bool right = c < align.size() && align[c] == Align::kRight;
      const std::string pad(width[c] - v.size(), ' ');
      s += " " + (right ? pad + v : v + pad) + " |";
    }
    return s + "\n";
  };
  std::string out = line(header) + "|";
  for (size_t c = 0; c < nc; ++c) {
    const bool right = c < align.size() && align[c] == Align::kRight;
    out += right ? " " + std::string(width[c] - 1, '-') + ": |" : " " + std::string(width[c], '-') + " |";
  }
  out += "\n";
  for (const auto& r : rows) out += line(r);
  return out;
}

std::string csv_field(std::string_view s) {
  const bool quote = s.find_first_of(",\"\r\n") != std::string_view::npos ||
                     (!s.empty() && (s.front() == ' ' || s.back() == ' '));
  if (!quote) return std::string(s);
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::string csv_line(const std::vector<std::string>& fields) {
  std::string s;
  for (size_t i = 0; i < fields.size(); ++i) {
    if (i) s += ',';
    s += csv_field(fields[i]);
  }
  return s + "\n";
}

CsvWriter::CsvWriter(const std::string& path, bool append)
    : path_(path), out_(path, std::ios::binary | (append ? std::ios::app : std::ios::trunc)) {
  if (!out_) fail("cannot write {}", path);
}

void CsvWriter::row(const std::vector<std::string>& fields) {
  out_ << csv_line(fields);
  if (!out_.flush()) fail("cannot write {}", path_);
}

std::vector<std::vector<std::string>> parse_csv(std::string_view text) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row;
  std::string field;
  bool quoted = false, any = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') field += '"', ++i;
      else if (c == '"') quoted = false;
      else field += c;
      continue;
    }
    any = true;
    if (c == '"') quoted = true;
    else if (c == ',') row.push_back(std::move(field)), field.clear();
    else if (c == '\n') {
      row.push_back(std::move(field));
      field.clear();
      rows.push_back(std::move(row));
      row.clear();
      any = false;
    } else if (c != '\r') field += c;
  }
  if (any || !field.empty() || !row.empty()) {
    row.push_back(std::move(field));
    rows.push_back(std::move(row));
  }
  return rows;
}

}  // namespace glimpse::eval
