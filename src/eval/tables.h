// Plain-text tables for evaluation reports: GitHub-flavoured markdown and CSV (RFC 4180).
#pragma once

#include <fstream>
#include <string>
#include <string_view>
#include <vector>

namespace glimpse::eval {

enum class Align { kLeft, kRight };

// A markdown table. Cells holding '|' get it escaped, newlines become spaces; short rows
// are padded with empty cells. `align` (optional, per column) sets the divider's colons.
std::string markdown_table(const std::vector<std::string>& header,
                           const std::vector<std::vector<std::string>>& rows,
                           const std::vector<Align>& align = {});

// One CSV field: quoted when it holds a comma, quote, CR/LF or leading/trailing space;
// quotes inside are doubled.
std::string csv_field(std::string_view s);
// A CSV line: fields joined by commas, ending in "\n" (RFC 4180 says CRLF; every CSV reader
// in use, Python's csv and spreadsheets included, accepts LF, and it diffs cleanly).
std::string csv_line(const std::vector<std::string>& fields);

// Appends rows to a CSV file (truncates first unless append). Flushes every row so an
// interrupted run leaves whole lines. Throws Error if the file cannot be written.
class CsvWriter {
 public:
  explicit CsvWriter(const std::string& path, bool append = false);
  void row(const std::vector<std::string>& fields);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::ofstream out_;
};

// Parses CSV text back into rows (quoted fields, doubled quotes, embedded newlines); for
// tests and for reading results back.
std::vector<std::vector<std::string>> parse_csv(std::string_view text);

}  // namespace glimpse::eval
