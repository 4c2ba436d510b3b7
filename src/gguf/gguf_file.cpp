#include "gguf/gguf_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "util/error.h"

namespace glimpse {

namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" little-endian
constexpr int kMaxArrayDepth = 4;
constexpr uint64_t kMaxNestedArrayElems = 1u << 20;
constexpr uint64_t kMaxNameLength = 1u << 16;

size_t scalar_size(GgufValueType t) {
  switch (t) {
    case GgufValueType::U8: case GgufValueType::I8: case GgufValueType::BOOL: return 1;
    case GgufValueType::U16: case GgufValueType::I16: return 2;
    case GgufValueType::U32: case GgufValueType::I32: case GgufValueType::F32: return 4;
    case GgufValueType::U64: case GgufValueType::I64: case GgufValueType::F64: return 8;
    default: return 0;
  }
}

bool valid_value_type(uint32_t t) { return t <= (uint32_t)GgufValueType::F64; }

// Bounds-checked little-endian reader over the file bytes.
class Cursor {
 public:
  Cursor(const uint8_t* data, size_t size, const std::string& source)
      : data_(data), size_(size), source_(source) {}

  size_t pos() const { return pos_; }
  size_t remaining() const { return size_ - pos_; }

  void need(uint64_t n, const char* what) const {
    if (n > remaining())
      fail("{}: file truncated: {} needs {} bytes at offset {}, only {} left", source_, what, n,
           pos_, remaining());
  }
  template <typename T>
  T read(const char* what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string_view read_string(const char* what) {
    const uint64_t n = read<uint64_t>(what);
    need(n, what);
    std::string_view s(reinterpret_cast<const char*>(data_ + pos_), n);
    pos_ += n;
    return s;
  }
  const uint8_t* take(uint64_t n, const char* what) {
    need(n, what);
    const uint8_t* p = data_ + pos_;
    pos_ += n;
    return p;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  const std::string& source_;
};

GgufValue read_value(Cursor& c, GgufValueType type, int depth, const std::string& key,
                     const std::string& source) {
  GgufValue v;
  v.type = type;
  if (type == GgufValueType::STRING) {
    v.str = c.read_string("string value");
    return v;
  }
  if (type != GgufValueType::ARRAY) {
    const size_t n = scalar_size(type);
    const uint8_t* p = c.take(n, "scalar value");
    std::memcpy(&v.bits, p, n);
    return v;
  }
  if (depth >= kMaxArrayDepth) fail("{}: key '{}': arrays nested too deeply", source, key);
  const uint32_t et = c.read<uint32_t>("array element type");
  if (!valid_value_type(et)) fail("{}: key '{}': unknown array element type {}", source, key, et);
  v.elem_type = (GgufValueType)et;
  v.count = c.read<uint64_t>("array length");
  if (v.elem_type == GgufValueType::STRING) {
    // Each string costs at least its 8-byte length field.
    if (v.count > c.remaining() / 8)
      fail("{}: key '{}': array of {} strings cannot fit in the {} bytes left", source, key,
           v.count, c.remaining());
    v.strings.reserve(v.count);
    for (uint64_t i = 0; i < v.count; ++i) v.strings.push_back(c.read_string("array string"));
  } else if (v.elem_type == GgufValueType::ARRAY) {
    if (v.count > kMaxNestedArrayElems || v.count > c.remaining() / 12)
      fail("{}: key '{}': nested array of {} elements is too large", source, key, v.count);
    v.arrays.reserve(v.count);
    for (uint64_t i = 0; i < v.count; ++i)
      v.arrays.push_back(read_value(c, GgufValueType::ARRAY, depth + 1, key, source));
  } else {
    const size_t es = scalar_size(v.elem_type);
    if (v.count > c.remaining() / es)
      fail("{}: key '{}': array of {} elements cannot fit in the {} bytes left", source, key,
           v.count, c.remaining());
    v.raw = c.take(v.count * es, "array data");
  }
  return v;
}

int64_t scalar_to_int(GgufValueType t, uint64_t bits) {
  switch (t) {
    case GgufValueType::U8: return (uint8_t)bits;
    case GgufValueType::I8: return (int8_t)(uint8_t)bits;
    case GgufValueType::U16: return (uint16_t)bits;
    case GgufValueType::I16: return (int16_t)(uint16_t)bits;
    case GgufValueType::U32: return (uint32_t)bits;
    case GgufValueType::I32: return (int32_t)(uint32_t)bits;
    case GgufValueType::U64: return (int64_t)bits;
    case GgufValueType::I64: return (int64_t)bits;
    case GgufValueType::BOOL: return bits != 0;
    default: fail("value of type {} is not an integer", gguf_value_type_name(t));
  }
}

double scalar_to_float(GgufValueType t, uint64_t bits) {
  if (t == GgufValueType::F32) {
    float f;
    uint32_t b = (uint32_t)bits;
    std::memcpy(&f, &b, 4);
    return f;
  }
  if (t == GgufValueType::F64) {
    double d;
    std::memcpy(&d, &bits, 8);
    return d;
  }
  return (double)scalar_to_int(t, bits);
}

uint64_t load_elem_bits(const GgufValue& v, uint64_t i) {
  if (i >= v.count || !v.raw) fail("array index {} out of range", i);
  const size_t es = scalar_size(v.elem_type);
  uint64_t bits = 0;
  std::memcpy(&bits, v.raw + i * es, es);
  return bits;
}

}  // namespace

std::string_view gguf_value_type_name(GgufValueType t) {
  static constexpr std::string_view names[] = {"u8",  "i8",   "u16",    "i16",   "u32",
                                               "i32", "f32",  "bool",   "string", "array",
                                               "u64", "i64",  "f64"};
  const auto i = (uint32_t)t;
  return i < std::size(names) ? names[i] : "unknown";
}

bool GgufValue::is_integer() const {
  return scalar_size(type) != 0 && !is_float();
}
int64_t GgufValue::as_int() const { return scalar_to_int(type, bits); }
double GgufValue::as_float() const { return scalar_to_float(type, bits); }
int64_t GgufValue::array_int(uint64_t i) const {
  return scalar_to_int(elem_type, load_elem_bits(*this, i));
}
double GgufValue::array_float(uint64_t i) const {
  return scalar_to_float(elem_type, load_elem_bits(*this, i));
}

std::string GgufTensor::shape_string() const {
  std::string s = "[";
  for (int i = 0; i < n_dims; ++i) s += (i ? ", " : "") + std::to_string(ne[i]);
  return s + "]";
}

struct GgufFile::Mapping {
  void* addr = nullptr;
  size_t size = 0;
  ~Mapping() {
    if (addr) munmap(addr, size);
  }
};

GgufFile GgufFile::open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("cannot open model file '{}': {}", path, std::strerror(errno));
  struct stat st{};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail("'{}' is not a regular file", path);
  }
  auto m = std::make_shared<Mapping>();
  m->size = (size_t)st.st_size;
  if (m->size == 0) {
    ::close(fd);
    fail("'{}' is empty, not a GGUF file", path);
  }
  m->addr = mmap(nullptr, m->size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (m->addr == MAP_FAILED) {
    m->addr = nullptr;
    fail("cannot map '{}': {}", path, std::strerror(errno));
  }
  GgufFile f = parse(static_cast<const uint8_t*>(m->addr), m->size, path);
  f.mapping_ = std::move(m);
  return f;
}

GgufFile GgufFile::parse(const uint8_t* data, size_t size, const std::string& source_name) {
  GgufFile f;
  f.source_ = source_name;
  f.size_ = size;
  Cursor c(data, size, f.source_);
  if (size < 4) fail("{}: not a GGUF file (only {} bytes)", source_name, size);
  const uint32_t magic = c.read<uint32_t>("magic");
  if (magic != kMagic) fail("{}: not a GGUF file (bad magic)", source_name);
  f.version_ = c.read<uint32_t>("version");
  if (f.version_ == 1) fail("{}: GGUF version 1 is not supported (convert to v3)", source_name);
  if (f.version_ != 2 && f.version_ != 3) {
    if ((f.version_ & 0xffff) == 0)
      fail("{}: big-endian GGUF files are not supported", source_name);
    fail("{}: unsupported GGUF version {}", source_name, f.version_);
  }
  const uint64_t n_tensors = c.read<uint64_t>("tensor count");
  const uint64_t n_kv = c.read<uint64_t>("metadata count");
  // Smallest possible key/value: 8-byte key length + 4-byte type + 1-byte value.
  if (n_kv > c.remaining() / 13)
    fail("{}: file truncated or corrupt: metadata count {} cannot fit in the file", source_name,
         n_kv);
  // Smallest possible tensor info: name length 8, n_dims 4, type 4, offset 8.
  if (n_tensors > c.remaining() / 24)
    fail("{}: file truncated or corrupt: tensor count {} cannot fit in the file", source_name,
         n_tensors);

  f.kv_.reserve(n_kv);
  for (uint64_t i = 0; i < n_kv; ++i) {
    const std::string key(c.read_string("metadata key"));
    if (key.size() > kMaxNameLength) fail("{}: metadata key too long", source_name);
    const uint32_t t = c.read<uint32_t>("metadata type");
    if (!valid_value_type(t)) fail("{}: key '{}': unknown value type {}", source_name, key, t);
    GgufValue v = read_value(c, (GgufValueType)t, 0, key, source_name);
    if (!f.kv_index_.emplace(key, f.kv_.size()).second)
      fail("{}: duplicate metadata key '{}'", source_name, key);
    f.kv_.emplace_back(key, std::move(v));
  }

  if (const GgufValue* a = f.find("general.alignment")) {
    if (!a->is_integer()) fail("{}: general.alignment is not an integer", source_name);
    const int64_t al = a->as_int();
    if (al <= 0 || al > (1 << 20) || (al & (al - 1)) != 0)
      fail("{}: general.alignment {} is not a power of two", source_name, al);
    f.alignment_ = (size_t)al;
  }

  f.tensors_.reserve(n_tensors);
  for (uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensor t;
    t.name = std::string(c.read_string("tensor name"));
    if (t.name.size() > kMaxNameLength) fail("{}: tensor name too long", source_name);
    const uint32_t nd = c.read<uint32_t>("tensor dimension count");
    if (nd == 0 || nd > 4)
      fail("{}: tensor '{}' has {} dimensions (1 to 4 allowed)", source_name, t.name, nd);
    t.n_dims = (int)nd;
    for (uint32_t d = 0; d < nd; ++d) {
      const uint64_t ne = c.read<uint64_t>("tensor dimension");
      if (ne == 0 || ne > (1ull << 40))
        fail("{}: tensor '{}' has invalid dimension {}", source_name, t.name, ne);
      t.ne[d] = (int64_t)ne;
    }
    const uint32_t type = c.read<uint32_t>("tensor type");
    const GgmlTypeInfo* info = ggml_type_info(type);
    if (!info) fail("{}: tensor '{}' has unknown type {}", source_name, t.name, type);
    t.type = (GgmlType)type;
    t.offset = c.read<uint64_t>("tensor offset");
    // Element count without overflow: every dim <= 2^40, check the running product.
    unsigned __int128 n = 1;
    for (int d = 0; d < 4; ++d) n *= (unsigned __int128)t.ne[d];
    if (n > ((unsigned __int128)1 << 50))
      fail("{}: tensor '{}' is impossibly large", source_name, t.name);
    if (t.ne[0] % info->block_elems != 0)
      fail("{}: tensor '{}' row length {} is not a multiple of the {} block size {}",
           source_name, t.name, t.ne[0], info->name, info->block_elems);
    t.nbytes = (size_t)((uint64_t)n / info->block_elems * info->block_bytes);
    if (t.offset % f.alignment_ != 0)
      fail("{}: tensor '{}' offset {} is not aligned to {}", source_name, t.name, t.offset,
           f.alignment_);
    if (!f.tensor_index_.emplace(t.name, f.tensors_.size()).second)
      fail("{}: duplicate tensor '{}'", source_name, t.name);
    f.tensors_.push_back(std::move(t));
  }

  const size_t data_start = (c.pos() + f.alignment_ - 1) / f.alignment_ * f.alignment_;
  if (n_tensors > 0 && data_start > size)
    fail("{}: file truncated before the tensor data section", source_name);
  const uint64_t data_size = n_tensors > 0 ? size - data_start : 0;
  for (auto& t : f.tensors_) {
    if (t.offset > data_size || t.nbytes > data_size - t.offset)
      fail("{}: tensor '{}' ({} bytes at offset {}) extends past the end of the file "
           "(data section holds {} bytes); the file is truncated or corrupt",
           source_name, t.name, t.nbytes, t.offset, data_size);
    t.data = data + data_start + t.offset;
  }
  return f;
}

const GgufValue* GgufFile::find(std::string_view key) const {
  auto it = kv_index_.find(std::string(key));
  return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

std::optional<std::string_view> GgufFile::get_string_opt(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != GgufValueType::STRING)
    fail("{}: key '{}' is a {}, expected a string", source_, key, gguf_value_type_name(v->type));
  return v->str;
}

std::string_view GgufFile::get_string(std::string_view key) const {
  auto s = get_string_opt(key);
  if (!s) fail("{}: missing metadata key '{}'", source_, key);
  return *s;
}

int64_t GgufFile::get_int(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) fail("{}: missing metadata key '{}'", source_, key);
  if (!v->is_integer())
    fail("{}: key '{}' is a {}, expected an integer", source_, key, gguf_value_type_name(v->type));
  return v->as_int();
}

int64_t GgufFile::get_int(std::string_view key, int64_t dflt) const {
  return has(key) ? get_int(key) : dflt;
}

double GgufFile::get_float(std::string_view key, double dflt) const {
  const GgufValue* v = find(key);
  if (!v) return dflt;
  if (!v->is_integer() && !v->is_float())
    fail("{}: key '{}' is a {}, expected a number", source_, key, gguf_value_type_name(v->type));
  return v->as_float();
}

bool GgufFile::get_bool(std::string_view key, bool dflt) const {
  const GgufValue* v = find(key);
  if (!v) return dflt;
  if (!v->is_integer())
    fail("{}: key '{}' is a {}, expected a bool", source_, key, gguf_value_type_name(v->type));
  return v->as_int() != 0;
}

const std::vector<std::string_view>& GgufFile::get_string_array(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) fail("{}: missing metadata key '{}'", source_, key);
  if (v->type != GgufValueType::ARRAY || v->elem_type != GgufValueType::STRING)
    fail("{}: key '{}' is not an array of strings", source_, key);
  return v->strings;
}

std::vector<float> GgufFile::get_f32_array(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) fail("{}: missing metadata key '{}'", source_, key);
  if (v->type != GgufValueType::ARRAY || !v->raw)
    fail("{}: key '{}' is not an array of numbers", source_, key);
  std::vector<float> out(v->count);
  for (uint64_t i = 0; i < v->count; ++i) out[i] = (float)v->array_float(i);
  return out;
}

std::vector<int32_t> GgufFile::get_i32_array(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v) fail("{}: missing metadata key '{}'", source_, key);
  if (v->type != GgufValueType::ARRAY || !v->raw ||
      v->elem_type == GgufValueType::F32 || v->elem_type == GgufValueType::F64)
    fail("{}: key '{}' is not an array of integers", source_, key);
  std::vector<int32_t> out(v->count);
  for (uint64_t i = 0; i < v->count; ++i) out[i] = (int32_t)v->array_int(i);
  return out;
}

const GgufTensor* GgufFile::find_tensor(std::string_view name) const {
  auto it = tensor_index_.find(std::string(name));
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

}  // namespace glimpse
