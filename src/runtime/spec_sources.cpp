#include "runtime/spec_sources.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <set>

#include "util/error.h"

namespace glimpse {

DraftSpec parse_draft_spec(const std::string& entry, const KvPolicySettings& base) {
  DraftSpec d;
  d.name = entry;
  if (entry == "ngram") {
    d.kind = DraftKind::Ngram;
    return d;
  }
  if (entry == "draft") {
    d.kind = DraftKind::Model;
    return d;
  }
  const size_t at = entry.find('@');
  if (at == std::string::npos)
    fail("draft source '{}': expected POLICY@BUDGET (e.g. snapkv@128), ngram or draft", entry);
  const std::string policy = entry.substr(0, at), budget = entry.substr(at + 1);
  const PolicyInfo* info = nullptr;
  try {
    info = &kv_policy_info(policy);
  } catch (const Error& e) {  // the list of known policies, with the entry named
    fail("draft source '{}': {}", entry, e.what());
  }
  if (!info->make)
    fail("draft source '{}': policy 'none' keeps the whole cache (that is the target itself)", entry);
  errno = 0;
  char* end = nullptr;
  const long long b = std::strtoll(budget.c_str(), &end, 10);
  if (budget.empty() || *end != '\0' || errno == ERANGE || b < 1 || b > (1ll << 30))
    fail("draft source '{}': budget '{}' is not an integer in [1, {}]", entry, budget, 1 << 30);
  d.kind = DraftKind::View;
  d.kv = base;
  d.kv.name = policy;
  d.kv.budget = b;
  d.kv.ratio = -1;
  d.kv.query_agnostic = false;  // a view compresses the whole prompt, question included
  validate_policy_settings(d.kv);
  return d;
}

std::vector<DraftSpec> parse_draft_specs(const std::string& list, const KvPolicySettings& base) {
  std::vector<DraftSpec> out;
  std::set<std::string> seen;
  size_t b = 0;
  while (b <= list.size()) {
    const size_t e = std::min(list.find(',', b), list.size());
    const std::string entry = list.substr(b, e - b);
    if (entry.empty()) fail("draft source list '{}' has an empty entry", list);
    if (!seen.insert(entry).second) fail("draft source '{}' appears twice in '{}'", entry, list);
    out.push_back(parse_draft_spec(entry, base));
    b = e + 1;
  }
  if (out.size() > kMaxDraftSources)
    fail("draft source list '{}' has {} entries; at most {}", list, out.size(), kMaxDraftSources);
  return out;
}

int32_t ngram_lookup(const std::vector<int32_t>& seq, int n_max, int n_min) {
  const int64_t L = (int64_t)seq.size();
  for (int64_t n = std::min<int64_t>(n_max, L - 1); n >= n_min; --n) {
    const int32_t* suffix = seq.data() + (L - n);
    // An occurrence starting at i ends before the suffix starts or overlaps it; either way
    // seq[i + n] exists because i + n <= L - 1.
    for (int64_t i = L - n - 1; i >= 0; --i)
      if (seq[i] == suffix[0] && std::equal(suffix, suffix + n, seq.data() + i)) return seq[i + n];
  }
  return -1;
}

void check_same_vocab(const Tokenizer& target, const Tokenizer& draft, const std::string& draft_path) {
  if (draft.n_vocab() != target.n_vocab())
    fail("draft model '{}' has a vocabulary of {} tokens, the target {}; a draft must share the "
         "target's vocabulary",
         draft_path, draft.n_vocab(), target.n_vocab());
  for (int32_t id = 0; id < target.n_vocab(); ++id)
    if (draft.token_text(id) != target.token_text(id))
      fail("draft model '{}': token {} is '{}', the target's is '{}'; a draft must share the "
           "target's vocabulary",
           draft_path, id, draft.token_text(id), target.token_text(id));
}

}  // namespace glimpse
