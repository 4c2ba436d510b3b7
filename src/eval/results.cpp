#include "eval/results.h"

#include <fmt/format.h>

#include <ctime>
#include <filesystem>
#include <sstream>

#include "eval/svg_plot.h"
#include "eval/tables.h"
#include "util/error.h"
#include "util/hash.h"

namespace glimpse::eval {
namespace fs = std::filesystem;

RunDir::RunDir(std::string dir) : dir_(std::move(dir)) {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec || !fs::is_directory(dir_)) fail("cannot create run directory {}: {}", dir_, ec.message());
}

std::string RunDir::path(std::string_view name) const {
  return (fs::path(dir_) / fs::path(name)).string();
}

void RunDir::write_config(const nlohmann::json& config) {
  write_text_file(path("config.json"), config.dump(2) + "\n");
}

void RunDir::append_prediction(const nlohmann::json& row) {
  if (!predictions_.is_open()) {
    predictions_.open(path("predictions.jsonl"), std::ios::binary | std::ios::app);
    if (!predictions_) fail("cannot write {}", path("predictions.jsonl"));
  }
  // Invalid UTF-8 in generated text (a tiny model can emit half a character) is replaced
  // rather than throwing.
  predictions_ << row.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
  if (!predictions_.flush()) fail("cannot write {}", path("predictions.jsonl"));
}

void RunDir::write_metrics(const nlohmann::json& metrics) {
  write_text_file(path("metrics.json"), metrics.dump(2) + "\n");
}

void RunDir::write_metrics_csv(const std::vector<std::string>& header,
                               const std::vector<std::vector<std::string>>& rows) {
  std::string s = csv_line(header);
  for (const auto& r : rows) s += csv_line(r);
  write_text_file(path("metrics.csv"), s);
}

void RunDir::write_text(std::string_view name, const std::string& text) {
  write_text_file(path(name), text);
}

std::string RunDir::timestamped(const std::string& base, const std::string& prefix) {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%d-%H%M%S", &tm);
  return (fs::path(base) / fmt::format("{}-{}", prefix, buf)).string();
}

std::string CacheKey::str() const {
  return fmt::format("{}|{}|{}|{}|{}|{}|{}", task, length, seed, policy, budget, model, settings);
}

nlohmann::json CacheKey::to_json() const {
  return {{"task", task}, {"length", length}, {"seed", seed},
          {"policy", policy}, {"budget", budget}, {"model", model}, {"settings", settings}};
}

CacheKey CacheKey::from_json(const nlohmann::json& j) {
  CacheKey k;
  k.task = j.at("task").get<std::string>();
  k.length = j.at("length").get<int64_t>();
  k.seed = j.at("seed").get<uint64_t>();
  k.policy = j.at("policy").get<std::string>();
  k.budget = j.at("budget").get<int64_t>();
  k.model = j.at("model").get<std::string>();
  k.settings = j.value("settings", std::string());  // absent before settings fingerprints
  return k;
}

ResultCache::ResultCache(std::string path) : path_(std::move(path)) {
  if (const fs::path parent = fs::path(path_).parent_path(); !parent.empty()) {
    std::error_code ec;
    fs::create_directories(parent, ec);
  }
  std::string text;
  if (fs::exists(path_)) {
    std::ifstream in(path_, std::ios::binary);
    if (!in) fail("cannot read result cache {}", path_);
    std::ostringstream ss;
    ss << in.rdbuf();
    text = ss.str();
  }
  // Only newline-terminated lines are complete; a tail without one is a write cut short.
  const size_t complete = text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1;
  if (complete < text.size()) {
    dropped_tail_ = true;
    fs::resize_file(path_, complete);
  }
  size_t pos = 0;
  while (pos < complete) {
    const size_t e = text.find('\n', pos);
    const std::string_view line(text.data() + pos, e - pos);
    pos = e + 1;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    try {
      const nlohmann::json j = nlohmann::json::parse(line);
      map_[CacheKey::from_json(j.at("key")).str()] = j.at("result");
    } catch (const nlohmann::json::exception&) {
      ++skipped_;
    }
  }
  out_.open(path_, std::ios::binary | std::ios::app);
  if (!out_) fail("cannot write result cache {}", path_);
}

std::optional<nlohmann::json> ResultCache::find(const CacheKey& key) const {
  if (auto it = map_.find(key.str()); it != map_.end()) return it->second;
  return std::nullopt;
}

void ResultCache::put(const CacheKey& key, const nlohmann::json& result) {
  const nlohmann::json line = {{"key", key.to_json()}, {"result", result}};
  out_ << line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
  if (!out_.flush()) fail("cannot write result cache {}", path_);
  map_[key.str()] = result;
}

std::string file_fingerprint(const std::string& path) {
  std::error_code ec;
  const uint64_t size = fs::file_size(path, ec);
  if (ec) fail("cannot read model file {}: {}", path, ec.message());
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot read model file {}", path);
  constexpr uint64_t kChunk = 1 << 20;
  std::string buf;
  uint64_t h = fnv1a(fmt::format("{}", size));
  auto hash_range = [&](uint64_t off, uint64_t n) {
    buf.resize(n);
    in.seekg((std::streamoff)off);
    if (!in.read(buf.data(), (std::streamsize)n)) fail("cannot read model file {}", path);
    h = fnv1a(buf, h);
  };
  hash_range(0, std::min(size, kChunk));
  if (size > kChunk) hash_range(size - std::min(size - kChunk, kChunk), std::min(size - kChunk, kChunk));
  return fmt::format("{}-{:016x}", size, h);
}

}  // namespace glimpse::eval
