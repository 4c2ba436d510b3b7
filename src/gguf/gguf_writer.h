// Minimal GGUF v3 writer: metadata and tensors into a byte buffer or file. Used for module
// files (LookaheadKV adapters) and by tests to build well-formed and deliberately broken files.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "gguf/ggml_types.h"

namespace glimpse {

class GgufWriter {
 public:
  explicit GgufWriter(uint32_t alignment = 32) : alignment_(alignment) {}

  void add_u32(std::string_view key, uint32_t v);
  void add_i32(std::string_view key, int32_t v);
  void add_u64(std::string_view key, uint64_t v);
  void add_f32(std::string_view key, float v);
  void add_bool(std::string_view key, bool v);
  void add_string(std::string_view key, std::string_view v);
  void add_string_array(std::string_view key, const std::vector<std::string>& v);
  void add_f32_array(std::string_view key, const std::vector<float>& v);
  void add_i32_array(std::string_view key, const std::vector<int32_t>& v);

  // ne[0] is the row length; data must hold ggml_row_bytes(type, ne[0]) * rows bytes.
  void add_tensor(std::string_view name, GgmlType type, const std::vector<int64_t>& ne,
                  const void* data, size_t nbytes);

  std::vector<uint8_t> bytes() const;
  void write_file(const std::string& path) const;  // throws Error on I/O failure

 private:
  struct Tensor {
    std::string name;
    GgmlType type;
    std::vector<int64_t> ne;
    std::vector<uint8_t> data;
  };
  void key_header(std::string_view key, uint32_t type);

  uint32_t alignment_;
  uint64_t n_kv_ = 0;
  std::vector<uint8_t> kv_bytes_;
  std::vector<Tensor> tensors_;
};

}  // namespace glimpse
