#include "tools/spec_args.h"

#include <fmt/format.h>

#include "util/error.h"

namespace glimpse {

void add_spec_args(ArgParser& ap, SpecFlags& f, bool with_mode) {
  if (with_mode)
    ap.add({"--spec"}, "MODE",
         "lossless speculative decoding (greedy with --temp 0, speculative sampling otherwise): views (compressed views of the model itself, "
         "--spec-views), ngram (prompt lookup), draft (-md), tabed (ensemble of every "
         "--spec-views source) (default: off)",
         [&f](const std::string& v) {
           if (v != "views" && v != "ngram" && v != "draft" && v != "tabed")
             fail("--spec: '{}' is not one of views, ngram, draft, tabed", v);
           f.mode = v;
         });
  if (with_mode)
    ap.add({"--spec-views"}, "LIST",
         "draft sources, comma-separated: POLICY@BUDGET (a compressed view, e.g. snapkv@128, "
         "lookahead@256; --kv-* knobs apply), ngram, draft (default: views: snapkv@256; tabed: "
         "snapkv@256,ngram, plus draft with -md)",
         [&f](const std::string& v) { f.sources = v; });
  ap.add({"--spec-weights"}, "RULE",
         "ensemble weights from the verified history: kl, tvd, grid, uniform (default: kl)",
         [&f](const std::string& v) {
           parse_weight_rule(v);
           f.weights = v;
         });
  ap.add({"--draft-max", "--draft", "--draft-n"}, "N", "draft tokens per round at most (default: 16)",
         [&f](const std::string& v) { f.draft_max = parse_int("--draft-max", v, 0, 256); });
  ap.add({"--draft-min", "--draft-n-min"}, "N",
         "floor of the adaptive draft length; 0 lets rounds fall back to plain decoding where "
         "drafts keep failing or (greedy) drafting is slower than plain decoding, probing again "
         "every 8 (default: 0)",
         [&f](const std::string& v) { f.draft_min = parse_int("--draft-min", v, 0, 256); });
  ap.flag({"--no-draft-cost"},
          "keep drafting where it is slower than plain decoding (measures draft quality: "
          "tokens per target forward without cost fallbacks)",
          [&f] { f.cost_aware = false; });
  ap.add({"--draft-p-min"}, "P",
         "end a draft after a token whose ensemble probability is below P (default: 0.75)",
         [&f](const std::string& v) { f.p_min = parse_float("--draft-p-min", v); });
  ap.add({"-md", "--model-draft"}, "FNAME",
         "draft model for --spec draft or the 'draft' source (same vocabulary as -m)",
         [&f](const std::string& v) { f.draft_model = v; });
}

namespace {

std::string default_sources(const SpecFlags& f) {
  if (f.mode == "ngram") return "ngram";
  if (f.mode == "draft") return "draft";
  if (f.mode == "views") return "snapkv@256";
  return f.draft_model.empty() ? "snapkv@256,ngram" : "snapkv@256,ngram,draft";
}

}  // namespace

std::optional<SpecParams> resolve_spec_flags(const SpecFlags& f, const GenerateParams& gp) {
  if (f.mode.empty()) {
    if (!f.sources.empty()) fail("--spec-views needs --spec views or --spec tabed");
    if (!f.draft_model.empty()) fail("-md needs --spec draft or --spec tabed");
    return std::nullopt;
  }
  if (!f.sources.empty() && (f.mode == "ngram" || f.mode == "draft"))
    fail("--spec-views goes with --spec views or --spec tabed (--spec {} has one source)", f.mode);
  SpecParams sp;
  sp.mode = f.mode;
  sp.draft_max = f.draft_max;
  sp.draft_min = f.draft_min;
  sp.cost_aware = f.cost_aware;
  sp.draft.p_min = f.p_min;
  sp.draft.weights = parse_weight_rule(f.weights);
  sp.draft.draft_path = f.draft_model;
  const std::string list = f.sources.empty() ? default_sources(f) : f.sources;
  sp.draft.sources = parse_draft_specs(list, gp.kv);
  bool wants_draft = false;
  for (const DraftSpec& d : sp.draft.sources) {
    if (f.mode == "views" && d.kind != DraftKind::View)
      fail("--spec views takes POLICY@BUDGET entries only; '{}' goes with --spec tabed", d.name);
    wants_draft |= d.kind == DraftKind::Model;
  }
  if (wants_draft && f.draft_model.empty()) fail("draft source 'draft' needs a draft model (-md FNAME)");
  if (!wants_draft && !f.draft_model.empty())
    fail("-md is given but no source uses it (add 'draft' to --spec-views)");
  check_speculative(gp, sp);
  return sp;
}

std::vector<SpecRow> parse_spec_rows(const std::string& rows, const SpecFlags& base,
                                     const GenerateParams& gp) {
  std::vector<SpecRow> out;
  size_t at = 0;
  while (at <= rows.size()) {
    size_t end = rows.find(';', at);
    if (end == std::string::npos) end = rows.size();
    const std::string item = rows.substr(at, end - at);
    at = end + 1;
    if (item.empty()) continue;
    SpecRow row;
    row.flags = base;
    const size_t colon = item.find(':');
    std::string mode = item.substr(0, colon);
    row.flags.sources = colon == std::string::npos ? "" : item.substr(colon + 1);
    if (const size_t slash = mode.find('/'); slash != std::string::npos) {
      row.flags.weights = mode.substr(slash + 1);
      mode.resize(slash);
      parse_weight_rule(row.flags.weights);
    }
    if (mode != "views" && mode != "ngram" && mode != "draft" && mode != "tabed")
      fail("--spec row '{}': mode '{}' is not one of views, ngram, draft, tabed", item, mode);
    row.flags.mode = mode;
    const std::string& src = row.flags.sources;
    const bool uses_draft = mode == "draft" || ("," + src + ",").find(",draft,") != std::string::npos ||
                            (mode == "tabed" && src.empty());
    if (!uses_draft) row.flags.draft_model.clear();  // -md serves the rows that name it
    row.spec = *resolve_spec_flags(row.flags, gp);
    std::string names;
    for (const DraftSpec& d : row.spec.draft.sources) names += (names.empty() ? "" : ",") + d.name;
    const bool several = row.spec.draft.sources.size() > 1;
    row.label = fmt::format("{}{}({})", mode, several ? "/" + row.flags.weights : "", names);
    out.push_back(std::move(row));
  }
  if (out.empty()) fail("--spec: no rows in '{}'", rows);
  return out;
}

std::vector<SpecRow> resolve_spec_rows(const std::string& rows, const SpecFlags& base,
                                       const GenerateParams& gp, const EngineParams& target) {
  std::vector<SpecRow> out = parse_spec_rows(rows, base, gp);
  std::shared_ptr<const Engine> draft;
  for (SpecRow& r : out)
    if (!r.flags.draft_model.empty()) {
      bool uses = false;
      for (const DraftSpec& d : r.spec.draft.sources) uses |= d.kind == DraftKind::Model;
      if (!uses) continue;
      if (!draft) draft = load_draft_engine(target, r.flags.draft_model);
      r.spec.draft.draft_engine = draft;
    }
  return out;
}

std::shared_ptr<const Engine> load_draft_engine(const EngineParams& target, const std::string& path) {
  EngineParams p = target;
  p.model_path = path;
  p.n_threads = 1;
  return Engine::load(p);
}

}  // namespace glimpse
