// GGUF reader (versions 2 and 3): metadata, tensor table, tensor data via mmap.
//
// Every count, length and offset read from the file is checked against the bytes that are
// really there before it is used, so a truncated or hostile file fails with one Error that
// names the problem; nothing is allocated in proportion to an unchecked count.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "gguf/ggml_types.h"

namespace glimpse {

enum class GgufValueType : uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, BOOL = 7, STRING = 8,
  ARRAY = 9, U64 = 10, I64 = 11, F64 = 12,
};
std::string_view gguf_value_type_name(GgufValueType t);

// One metadata value. Scalars keep their raw little-endian bits; arrays of scalars point at
// the packed elements inside the mapped file (no per-element allocation).
struct GgufValue {
  GgufValueType type{};
  uint64_t bits = 0;        // scalar payload, zero-extended raw bits
  std::string_view str;     // STRING
  GgufValueType elem_type{};  // ARRAY: element type
  uint64_t count = 0;         // ARRAY: element count
  const uint8_t* raw = nullptr;           // ARRAY of scalars: packed elements
  std::vector<std::string_view> strings;  // ARRAY of STRING
  std::vector<GgufValue> arrays;          // ARRAY of ARRAY

  bool is_integer() const;
  bool is_float() const { return type == GgufValueType::F32 || type == GgufValueType::F64; }
  int64_t as_int() const;   // any integer or bool type
  double as_float() const;  // any numeric type
  // Element i of an array of numbers, converted.
  int64_t array_int(uint64_t i) const;
  double array_float(uint64_t i) const;
};

struct GgufTensor {
  std::string name;
  GgmlType type{};
  int n_dims = 0;
  int64_t ne[4] = {1, 1, 1, 1};  // ne[0] is the contiguous (row) dimension
  uint64_t offset = 0;           // relative to the data section
  const uint8_t* data = nullptr;
  size_t nbytes = 0;

  int64_t n_elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
  int64_t n_rows() const { return ne[1] * ne[2] * ne[3]; }
  std::string shape_string() const;
};

class GgufFile {
 public:
  // Memory-maps the file and parses it. Throws Error on any problem.
  static GgufFile open(const std::string& path);
  // Parses a buffer the caller keeps alive (tests, fuzzing). Throws Error.
  static GgufFile parse(const uint8_t* data, size_t size, const std::string& source_name);

  uint32_t version() const { return version_; }
  const std::string& source() const { return source_; }
  size_t alignment() const { return alignment_; }
  size_t file_size() const { return size_; }

  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return kv_; }
  const GgufValue* find(std::string_view key) const;
  bool has(std::string_view key) const { return find(key) != nullptr; }

  // Typed getters: fail naming the key when it is missing (no default) or has a wrong type.
  std::string_view get_string(std::string_view key) const;
  std::optional<std::string_view> get_string_opt(std::string_view key) const;
  int64_t get_int(std::string_view key) const;
  int64_t get_int(std::string_view key, int64_t dflt) const;
  double get_float(std::string_view key, double dflt) const;
  bool get_bool(std::string_view key, bool dflt) const;
  const std::vector<std::string_view>& get_string_array(std::string_view key) const;
  std::vector<float> get_f32_array(std::string_view key) const;
  std::vector<int32_t> get_i32_array(std::string_view key) const;

  const std::vector<GgufTensor>& tensors() const { return tensors_; }
  const GgufTensor* find_tensor(std::string_view name) const;

 private:
  struct Mapping;
  std::shared_ptr<Mapping> mapping_;  // keeps the mmap alive (null for parse())
  std::string source_;
  uint32_t version_ = 0;
  size_t alignment_ = 32;
  size_t size_ = 0;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::unordered_map<std::string, size_t> kv_index_;
  std::vector<GgufTensor> tensors_;
  std::unordered_map<std::string, size_t> tensor_index_;
};

}  // namespace glimpse
