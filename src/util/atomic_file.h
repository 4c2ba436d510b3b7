// Whole-file writes that never leave a torn file: the bytes go to "<path>.tmp.<pid>" in the
// same directory and are renamed over path by commit() (a rename within one directory is
// atomic on POSIX). Without commit() (an exception, an early return) the destructor removes
// the temporary. No fsync: a power cut may lose the new file, but a crash or Ctrl-C never
// leaves half of one, and readers see either the old file or the new one.
#pragma once

#include <cstddef>
#include <cstdio>
#include <string>
#include <string_view>

namespace glimpse {

class AtomicFile {
 public:
  explicit AtomicFile(std::string path);  // throws Error if the temporary cannot be created
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* p, size_t n);
  void write(std::string_view s) { write(s.data(), s.size()); }
  // Flushes, closes and renames the temporary over path; throws Error on failure.
  void commit();

  const std::string& path() const { return path_; }
  const std::string& tmp_path() const { return tmp_; }

 private:
  std::string path_, tmp_;
  std::FILE* f_ = nullptr;
};

// Writes n bytes to path through an AtomicFile.
void write_file_atomic(const std::string& path, const void* data, size_t n);

}  // namespace glimpse
