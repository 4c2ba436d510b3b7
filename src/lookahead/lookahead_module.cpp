#include "lookahead/lookahead_module.h"

#include <cmath>
#include <cstring>
#include <random>

#include "gguf/gguf_file.h"
#include "gguf/gguf_writer.h"
#include "model/model.h"
#include "util/error.h"
#include "util/hash.h"

namespace glimpse {

namespace {

constexpr const char* kKind = "lookahead-kv";
constexpr uint32_t kVersion = 1;

// Input and output width of a slot's frozen linear.
std::pair<int, int> slot_dims(int slot, const LookaheadBaseInfo& b) {
  const int q_dim = b.n_head * b.head_dim, kv_dim = b.n_kv_head * b.head_dim;
  switch ((LoraSlot)slot) {
    case LoraSlot::Q: return {b.n_embd, q_dim};
    case LoraSlot::K:
    case LoraSlot::V: return {b.n_embd, kv_dim};
    case LoraSlot::O: return {q_dim, b.n_embd};
    case LoraSlot::Gate:
    case LoraSlot::Up: return {b.n_embd, b.n_ff};
    case LoraSlot::Down: return {b.n_ff, b.n_embd};
  }
  return {0, 0};
}

bool slot_active(int layer, int slot, int n_layer) {
  return layer < n_layer - 1 || slot == (int)LoraSlot::Q || slot == (int)LoraSlot::K;
}

std::string key(const char* k) { return std::string("lookahead.") + k; }

}  // namespace

const char* lora_slot_name(int slot) {
  static const char* names[kLoraSlots] = {"q", "k", "v", "o", "gate", "up", "down"};
  return slot >= 0 && slot < kLoraSlots ? names[slot] : "?";
}

uint64_t weights_fingerprint(const Model& m) {
  Fnv1a h;
  for (const GgufTensor& t : m.gguf().tensors()) {
    h.bytes(t.name.data(), t.name.size());
    h.value((uint32_t)t.type);
    for (int i = 0; i < 4; ++i) h.value(t.ne[i]);
    const size_t n = std::min<size_t>(64, t.nbytes);
    h.bytes(t.data, n);
    h.bytes(t.data + t.nbytes / 2 - std::min(t.nbytes / 2, n / 2), n);
    h.bytes(t.data + t.nbytes - n, n);
  }
  return h.digest();
}

LookaheadBaseInfo lookahead_base_info(const Model& m) {
  const ModelConfig& c = m.config();
  LookaheadBaseInfo b;
  b.arch = c.arch;
  b.n_layer = c.n_layer;
  b.n_embd = c.n_embd;
  b.n_head = c.n_head;
  b.n_kv_head = c.n_kv_head;
  b.head_dim = c.head_dim;
  b.n_ff = c.n_ff;
  b.n_vocab = c.n_vocab;
  b.fingerprint = weights_fingerprint(m);
  return b;
}

void LookaheadModule::allocate() {
  const LookaheadBaseInfo& b = base_;
  P_.assign((size_t)hyper_.n_lookahead * b.n_embd, 0.0f);
  lora_.assign(b.n_layer, {});
  for (int l = 0; l < b.n_layer; ++l)
    for (int s = 0; s < kLoraSlots; ++s) {
      if (!slot_active(l, s, b.n_layer)) continue;
      auto [in, out] = slot_dims(s, b);
      LoraAdapter& a = lora_[l][s];
      a.in = in;
      a.out = out;
      a.A.assign((size_t)hyper_.rank * in, 0.0f);
      a.B.assign((size_t)out * hyper_.rank, 0.0f);
    }
}

LookaheadModule LookaheadModule::create(const Model& m, const LookaheadHyper& h, uint64_t seed) {
  if (h.n_lookahead < 1 || h.rank < 1) fail("lookahead module: n_lookahead and rank must be >= 1");
  LookaheadModule mod;
  mod.hyper_ = h;
  mod.base_ = lookahead_base_info(m);
  mod.allocate();
  std::mt19937_64 rng(seed);
  auto uniform = [&](float a) {
    return ((float)(rng() >> 40) / (float)(1u << 24) * 2.0f - 1.0f) * a;
  };
  for (auto& layer : mod.lora_)
    for (LoraAdapter& a : layer)
      if (a.present())
        for (float& x : a.A) x = uniform(1.0f / std::sqrt((float)a.in));
  // Mean token embedding and the embedding's RMS (sets the noise scale).
  const int E = m.config().n_embd, V = m.config().n_vocab;
  std::vector<double> mean(E, 0.0);
  std::vector<float> row(E);
  double sq = 0;
  for (int t = 0; t < V; ++t) {
    m.embed(t, row.data());
    for (int i = 0; i < E; ++i) {
      mean[i] += row[i];
      sq += (double)row[i] * row[i];
    }
  }
  const float rms = (float)std::sqrt(sq / ((double)V * E));
  std::normal_distribution<float> noise(0.0f, 0.02f * rms);
  for (int r = 0; r < h.n_lookahead; ++r)
    for (int i = 0; i < E; ++i) mod.P_[(size_t)r * E + i] = (float)(mean[i] / V) + noise(rng);
  return mod;
}

LookaheadModule LookaheadModule::zeros_like() const {
  LookaheadModule z;
  z.hyper_ = hyper_;
  z.base_ = base_;
  z.allocate();
  return z;
}

int64_t LookaheadModule::n_params() const {
  int64_t n = 0;
  for (const auto* t : tensors()) n += (int64_t)t->size();
  return n;
}

std::vector<std::vector<float>*> LookaheadModule::tensors() {
  std::vector<std::vector<float>*> out{&P_};
  for (auto& layer : lora_)
    for (LoraAdapter& a : layer)
      if (a.present()) {
        out.push_back(&a.A);
        out.push_back(&a.B);
      }
  return out;
}

std::vector<const std::vector<float>*> LookaheadModule::tensors() const {
  std::vector<const std::vector<float>*> out;
  for (auto* t : const_cast<LookaheadModule*>(this)->tensors()) out.push_back(t);
  return out;
}

std::vector<std::string> LookaheadModule::tensor_names() const {
  std::vector<std::string> out{"lookahead.embd"};
  for (int l = 0; l < (int)lora_.size(); ++l)
    for (int s = 0; s < kLoraSlots; ++s)
      if (lora_[l][s].present()) {
        const std::string p = "blk." + std::to_string(l) + "." + lora_slot_name(s);
        out.push_back(p + ".lora_a");
        out.push_back(p + ".lora_b");
      }
  return out;
}

void LookaheadModule::save(const std::string& path) const {
  GgufWriter w;
  w.add_string("general.architecture", "lookahead");
  w.add_string(key("kind"), kKind);
  w.add_u32(key("version"), kVersion);
  w.add_u32(key("n_lookahead"), hyper_.n_lookahead);
  w.add_u32(key("rank"), hyper_.rank);
  w.add_f32(key("alpha"), hyper_.alpha);
  w.add_string(key("base.architecture"), base_.arch);
  w.add_u32(key("base.n_layer"), base_.n_layer);
  w.add_u32(key("base.n_embd"), base_.n_embd);
  w.add_u32(key("base.n_head"), base_.n_head);
  w.add_u32(key("base.n_kv_head"), base_.n_kv_head);
  w.add_u32(key("base.head_dim"), base_.head_dim);
  w.add_u32(key("base.n_ff"), base_.n_ff);
  w.add_u32(key("base.n_vocab"), base_.n_vocab);
  w.add_u64(key("base.fingerprint"), base_.fingerprint);
  w.add_tensor("lookahead.embd", GgmlType::F32, {base_.n_embd, hyper_.n_lookahead}, P_.data(),
               P_.size() * 4);
  for (int l = 0; l < (int)lora_.size(); ++l)
    for (int s = 0; s < kLoraSlots; ++s) {
      const LoraAdapter& a = lora_[l][s];
      if (!a.present()) continue;
      const std::string p = "blk." + std::to_string(l) + "." + lora_slot_name(s);
      w.add_tensor(p + ".lora_a", GgmlType::F32, {a.in, hyper_.rank}, a.A.data(), a.A.size() * 4);
      w.add_tensor(p + ".lora_b", GgmlType::F32, {hyper_.rank, a.out}, a.B.data(), a.B.size() * 4);
    }
  w.write_file(path);  // atomic: an interrupted save never leaves a torn file
}

LookaheadModule LookaheadModule::load(const std::string& path) {
  const GgufFile f = GgufFile::open(path);
  auto str = [&](const char* k) { return std::string(f.get_string(key(k))); };
  auto u32 = [&](const char* k, int64_t lo, int64_t hi) {
    const int64_t v = f.get_int(key(k));
    if (v < lo || v > hi) fail("{}: {} = {} is out of range", path, key(k), v);
    return (int)v;
  };
  if (!f.has(key("kind")) || str("kind") != kKind)
    fail("{}: not a LookaheadKV module (missing or wrong {})", path, key("kind"));
  const int64_t version = f.get_int(key("version"));
  if (version != kVersion)
    fail("{}: LookaheadKV module version {} (this build reads {})", path, version, kVersion);
  LookaheadModule m;
  m.hyper_.n_lookahead = u32("n_lookahead", 1, 4096);
  m.hyper_.rank = u32("rank", 1, 4096);
  m.hyper_.alpha = (float)f.get_float(key("alpha"), NAN);
  if (!std::isfinite(m.hyper_.alpha)) fail("{}: missing or bad {}", path, key("alpha"));
  LookaheadBaseInfo& b = m.base_;
  b.arch = str("base.architecture");
  b.n_layer = u32("base.n_layer", 1, 1 << 12);
  b.n_embd = u32("base.n_embd", 1, 1 << 16);
  b.n_head = u32("base.n_head", 1, 1 << 12);
  b.n_kv_head = u32("base.n_kv_head", 1, 1 << 12);
  b.head_dim = u32("base.head_dim", 1, 1 << 12);
  b.n_ff = u32("base.n_ff", 1, 1 << 20);
  b.n_vocab = u32("base.n_vocab", 1, 1 << 24);
  const GgufValue* fp = f.find(key("base.fingerprint"));
  if (!fp || fp->type != GgufValueType::U64) fail("{}: missing {}", path, key("base.fingerprint"));
  b.fingerprint = fp->bits;
  m.allocate();

  const std::vector<std::string> names = m.tensor_names();
  if (f.tensors().size() != names.size())
    fail("{}: {} tensors, a module of this shape has {}", path, f.tensors().size(), names.size());
  std::vector<std::vector<float>*> dst = m.tensors();
  for (size_t i = 0; i < names.size(); ++i) {
    const GgufTensor* t = f.find_tensor(names[i]);
    if (!t) fail("{}: missing tensor '{}'", path, names[i]);
    if (t->type != GgmlType::F32) fail("{}: tensor '{}' is not f32", path, names[i]);
    // Expected [ne0 = row length, ne1 = rows].
    int64_t ne0, ne1;
    if (i == 0) {
      ne0 = b.n_embd;
      ne1 = m.hyper_.n_lookahead;
    } else {
      const size_t k = (i - 1) / 2;  // adapter index in tensor order
      const bool is_a = (i - 1) % 2 == 0;
      const LoraAdapter* a = nullptr;
      size_t seen = 0;
      for (auto& layer : m.lora_)
        for (LoraAdapter& x : layer)
          if (x.present() && seen++ == k) a = &x;
      ne0 = is_a ? a->in : m.hyper_.rank;
      ne1 = is_a ? m.hyper_.rank : a->out;
    }
    if (t->ne[0] != ne0 || t->ne[1] != ne1 || t->ne[2] != 1 || t->ne[3] != 1)
      fail("{}: tensor '{}' has shape {}, expected [{}, {}]", path, names[i], t->shape_string(),
           ne0, ne1);
    std::memcpy(dst[i]->data(), t->data, dst[i]->size() * 4);
    for (float x : *dst[i])
      if (!std::isfinite(x)) fail("{}: tensor '{}' holds a non-finite value", path, names[i]);
  }
  return m;
}

LookaheadModule LookaheadModule::load(const std::string& path, const Model& model) {
  LookaheadModule m = load(path);
  m.check_compatible(model, path);
  return m;
}

void LookaheadModule::check_compatible(const Model& model, const std::string& what) const {
  const LookaheadBaseInfo b = lookahead_base_info(model);
  const LookaheadBaseInfo& a = base_;
  auto differs = [&](const char* field, int64_t x, int64_t y) {
    if (x != y)
      fail("{}: LookaheadKV module was trained for another model ({} {} here, {} in the module)",
           what, field, y, x);
  };
  if (a.arch != b.arch)
    fail("{}: LookaheadKV module was trained for another model (architecture {} here, {} in the module)",
         what, b.arch, a.arch);
  differs("n_layer", a.n_layer, b.n_layer);
  differs("n_embd", a.n_embd, b.n_embd);
  differs("n_head", a.n_head, b.n_head);
  differs("n_kv_head", a.n_kv_head, b.n_kv_head);
  differs("head_dim", a.head_dim, b.head_dim);
  differs("n_ff", a.n_ff, b.n_ff);
  differs("n_vocab", a.n_vocab, b.n_vocab);
  if (a.fingerprint != b.fingerprint)
    fail("{}: LookaheadKV module was trained for another model (weights fingerprint {:016x} here, "
         "{:016x} in the module)", what, b.fingerprint, a.fingerprint);
}

}  // namespace glimpse
