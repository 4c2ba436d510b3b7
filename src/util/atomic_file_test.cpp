#include "util/atomic_file.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include <fmt/format.h>

#include "util/error.h"

namespace glimpse {
namespace {
namespace fs = std::filesystem;

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

class AtomicFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / fmt::format("glimpse-atomic-{}", getpid());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  size_t n_files() const {
    return (size_t)std::distance(fs::directory_iterator(dir_), fs::directory_iterator());
  }
  fs::path dir_;
};

TEST_F(AtomicFileTest, CommitReplacesTheFile) {
  const fs::path p = dir_ / "a.bin";
  std::ofstream(p) << "old contents";
  {
    AtomicFile f(p.string());
    EXPECT_EQ(f.tmp_path(), fmt::format("{}.tmp.{}", p.string(), getpid()));
    f.write("new ", 4);
    f.write(std::string_view("data"));
    EXPECT_EQ(read(p), "old contents");  // untouched until commit
    f.commit();
  }
  EXPECT_EQ(read(p), "new data");
  EXPECT_EQ(n_files(), 1u);  // no temporary left
}

TEST_F(AtomicFileTest, NoCommitLeavesTheOldFile) {
  const fs::path p = dir_ / "a.bin";
  std::ofstream(p) << "old";
  try {
    AtomicFile f(p.string());
    f.write("partial", 7);
    throw Error("interrupted");
  } catch (const Error&) {
  }
  EXPECT_EQ(read(p), "old");
  EXPECT_EQ(n_files(), 1u);
}

TEST_F(AtomicFileTest, Helpers) {
  const fs::path p = dir_ / "b.bin";
  write_file_atomic(p.string(), "xyz", 3);
  EXPECT_EQ(read(p), "xyz");
  EXPECT_THROW(AtomicFile((dir_ / "missing" / "c.bin").string()), Error);
}

}  // namespace
}  // namespace glimpse
