#include "gguf/gguf_writer.h"

#include <cstring>

#include "util/atomic_file.h"

namespace glimpse {

namespace {
template <typename T>
void put(std::vector<uint8_t>& out, T v) {
  const size_t n = out.size();
  out.resize(n + sizeof(T));
  std::memcpy(out.data() + n, &v, sizeof(T));
}
void put_str(std::vector<uint8_t>& out, std::string_view s) {
  put<uint64_t>(out, s.size());
  out.insert(out.end(), s.begin(), s.end());
}
}  // namespace

void GgufWriter::key_header(std::string_view key, uint32_t type) {
  put_str(kv_bytes_, key);
  put<uint32_t>(kv_bytes_, type);
  ++n_kv_;
}

void GgufWriter::add_u32(std::string_view k, uint32_t v) { key_header(k, 4); put(kv_bytes_, v); }
void GgufWriter::add_i32(std::string_view k, int32_t v) { key_header(k, 5); put(kv_bytes_, v); }
void GgufWriter::add_u64(std::string_view k, uint64_t v) { key_header(k, 10); put(kv_bytes_, v); }
void GgufWriter::add_f32(std::string_view k, float v) { key_header(k, 6); put(kv_bytes_, v); }
void GgufWriter::add_bool(std::string_view k, bool v) {
  key_header(k, 7);
  put<uint8_t>(kv_bytes_, v ? 1 : 0);
}
void GgufWriter::add_string(std::string_view k, std::string_view v) {
  key_header(k, 8);
  put_str(kv_bytes_, v);
}
void GgufWriter::add_string_array(std::string_view k, const std::vector<std::string>& v) {
  key_header(k, 9);
  put<uint32_t>(kv_bytes_, 8);
  put<uint64_t>(kv_bytes_, v.size());
  for (const auto& s : v) put_str(kv_bytes_, s);
}
void GgufWriter::add_f32_array(std::string_view k, const std::vector<float>& v) {
  key_header(k, 9);
  put<uint32_t>(kv_bytes_, 6);
  put<uint64_t>(kv_bytes_, v.size());
  for (float x : v) put(kv_bytes_, x);
}
void GgufWriter::add_i32_array(std::string_view k, const std::vector<int32_t>& v) {
  key_header(k, 9);
  put<uint32_t>(kv_bytes_, 5);
  put<uint64_t>(kv_bytes_, v.size());
  for (int32_t x : v) put(kv_bytes_, x);
}

void GgufWriter::add_tensor(std::string_view name, GgmlType type, const std::vector<int64_t>& ne,
                            const void* data, size_t nbytes) {
  Tensor t{std::string(name), type, ne, {}};
  t.data.assign((const uint8_t*)data, (const uint8_t*)data + nbytes);
  tensors_.push_back(std::move(t));
}

std::vector<uint8_t> GgufWriter::bytes() const {
  std::vector<uint8_t> out;
  put<uint32_t>(out, 0x46554747);
  put<uint32_t>(out, 3);
  put<uint64_t>(out, tensors_.size());
  put<uint64_t>(out, n_kv_ + (alignment_ != 32 ? 1 : 0));
  out.insert(out.end(), kv_bytes_.begin(), kv_bytes_.end());
  if (alignment_ != 32) {
    put_str(out, "general.alignment");
    put<uint32_t>(out, 4);
    put<uint32_t>(out, alignment_);
  }
  uint64_t offset = 0;
  std::vector<uint64_t> offsets;
  for (const auto& t : tensors_) {
    put_str(out, t.name);
    put<uint32_t>(out, (uint32_t)t.ne.size());
    for (int64_t d : t.ne) put<uint64_t>(out, (uint64_t)d);
    put<uint32_t>(out, (uint32_t)t.type);
    put<uint64_t>(out, offset);
    offsets.push_back(offset);
    offset += (t.data.size() + alignment_ - 1) / alignment_ * alignment_;
  }
  out.resize((out.size() + alignment_ - 1) / alignment_ * alignment_, 0);
  const size_t base = out.size();
  for (size_t i = 0; i < tensors_.size(); ++i) {
    out.resize(base + offsets[i], 0);
    out.insert(out.end(), tensors_[i].data.begin(), tensors_[i].data.end());
  }
  if (!tensors_.empty()) out.resize(base + offset, 0);
  return out;
}

void GgufWriter::write_file(const std::string& path) const {
  const std::vector<uint8_t> b = bytes();
  write_file_atomic(path, b.data(), b.size());
}

}  // namespace glimpse
