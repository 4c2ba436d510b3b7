// On-disk layout of an evaluation run, and the per-sample result cache that lets an
// interrupted run resume.
//
// Run directory (RunDir):
//   config.json        what was run (models, tasks, lengths, seeds, policies, budgets, ...)
//   predictions.jsonl  one JSON object per line and per (sample, policy, budget), appended
//                      and flushed as results come in
//   metrics.json       aggregated metrics
//   metrics.csv        the same as a flat table
//   *.svg, *.md        plots and report tables (write_text)
//
// Result cache (ResultCache): an append-only JSONL file, one line per finished sample:
//   {"key": {"task":..,"length":..,"seed":..,"policy":..,"budget":..,"model":..,
//            "settings":..}, "result": {...}}
// Lines written before keys had "settings" still load (with settings "") but match no key
// of a current run, so their results are recomputed, not reused.
// Opening it re-reads every line (a later line for the same key wins). A crash can leave
// the last line cut short: it is dropped and the file truncated to the last complete line,
// so the next append starts cleanly. Other malformed lines are skipped and counted.
#pragma once

#include <cstdint>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

namespace glimpse::eval {

class RunDir {
 public:
  // Creates the directory (with parents) if needed.
  explicit RunDir(std::string dir);
  const std::string& dir() const { return dir_; }
  std::string path(std::string_view name) const;  // dir/name

  void write_config(const nlohmann::json& config);    // config.json, pretty-printed
  void append_prediction(const nlohmann::json& row);  // one line of predictions.jsonl
  void write_metrics(const nlohmann::json& metrics);  // metrics.json
  void write_metrics_csv(const std::vector<std::string>& header,
                         const std::vector<std::vector<std::string>>& rows);  // metrics.csv
  void write_text(std::string_view name, const std::string& text);

  // "<base>/<prefix>-YYYYmmdd-HHMMSS" in local time, for a fresh run directory name.
  static std::string timestamped(const std::string& base, const std::string& prefix);

 private:
  std::string dir_;
  std::ofstream predictions_;
};

struct CacheKey {
  std::string task;
  int64_t length = 0;  // target tokens
  uint64_t seed = 0;
  std::string policy;  // e.g. "full", "snapkv"
  int64_t budget = 0;  // KV entries kept per head (0 for the full cache)
  std::string model;   // file_fingerprint() of the model file
  // settings_fingerprint() (runner.h): the knobs every branch shares and the version of
  // the eval's semantics; "" in lines of older caches.
  std::string settings;

  std::string str() const;  // "task|length|seed|policy|budget|model|settings"
  nlohmann::json to_json() const;
  static CacheKey from_json(const nlohmann::json& j);
};

class ResultCache {
 public:
  // Opens (creating if absent) the cache file and loads what it holds.
  explicit ResultCache(std::string path);

  std::optional<nlohmann::json> find(const CacheKey& key) const;
  bool contains(const CacheKey& key) const { return map_.count(key.str()) != 0; }
  // Appends one line and flushes; the entry is visible to find() at once.
  void put(const CacheKey& key, const nlohmann::json& result);

  size_t size() const { return map_.size(); }
  size_t skipped_lines() const { return skipped_; }   // malformed lines ignored on load
  bool dropped_partial_line() const { return dropped_tail_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::unordered_map<std::string, nlohmann::json> map_;
  size_t skipped_ = 0;
  bool dropped_tail_ = false;
  std::ofstream out_;
};

// Identity of a file (a model, a LookaheadKV module) for cache keys, without hashing
// gigabytes: its size and an FNV-1a hash (util/hash.h) of the decimal size, the first MiB
// and the last MiB after it, as "<size>-<16 hex digits>". Stored in result caches, so the
// value is fixed. Not lookahead's weights_fingerprint(), which hashes the parsed tensors.
// Throws Error if the file cannot be read.
std::string file_fingerprint(const std::string& path);

}  // namespace glimpse::eval
