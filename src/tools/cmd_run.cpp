// glimpse run: llama-cli-like generation. stdout carries only the generated text; the
// model summary, progress and timings go to stderr.
#include <cstdio>
#include <fstream>
#include <optional>

#include "ops/isa.h"
#include "runtime/context.h"
#include "runtime/generate.h"
#include "runtime/speculative.h"
#include "tools/commands.h"
#include "tools/spec_args.h"
#include "util/error.h"

namespace glimpse {

int cmd_run(int argc, char** argv, int first) {
  EngineParams sp;
  GenerateParams gp;
  std::string prompt, question, system, timings_json, dump_kept;
  bool have_prompt = false, chat = false, quiet = false;
  SpecFlags spec;
  ArgParser ap("run", "Generate text from a prompt with the model.");
  add_model_args(ap, sp);
  ap.add({"-p", "--prompt"}, "PROMPT", "prompt to start generation with", [&](const std::string& v) {
    prompt = v;
    have_prompt = true;
  });
  ap.add({"-f", "--file"}, "FNAME", "a file containing the prompt", [&](const std::string& v) {
    prompt = read_text_file(v);
    have_prompt = true;
  });
  ap.add({"--question"}, "TEXT", "a question appended to the prompt (after a blank line); with "
         "--query-agnostic the prompt is compressed before the question is read",
         [&](const std::string& v) { question = v; });
  add_kv_args(ap, gp.kv);
  ap.add({"-sys", "--system-prompt"}, "PROMPT", "system prompt for --chat (default: the template's)",
         [&](const std::string& v) { system = v; });
  ap.flag({"--chat"}, "apply the model's chat template, the prompt being one user turn",
          [&] { chat = true; });
  ap.add({"-n", "--n-predict"}, "N", "number of tokens to predict (default: -1, -1 = infinity)",
         [&](const std::string& v) { gp.n_predict = parse_int("-n", v, -1, 1 << 30); });
  add_sampling_args(ap, gp.sampling);
  ap.add({"-r", "--reverse-prompt", "--stop"}, "TEXT", "stop generating at TEXT (repeatable)",
         [&](const std::string& v) { gp.stop.push_back(v); });
  ap.flag({"--ignore-eos"}, "keep generating after the end-of-generation token",
          [&] { gp.ignore_eos = true; });
  ap.add({"--timings-json"}, "FNAME", "write the timings as JSON to FNAME",
         [&](const std::string& v) { timings_json = v; });
  ap.add({"--kv-dump-kept"}, "FNAME",
         "write the prompt's token ids and the prompt positions each layer and KV head kept "
         "(sorted) as JSON to FNAME",
         [&](const std::string& v) { dump_kept = v; });
  ap.flag({"-q", "--quiet"}, "print only the generated text (no timings)", [&] { quiet = true; });
  add_spec_args(ap, spec);
  if (!ap.parse(argc, argv, first)) return 0;
  if (!have_prompt) fail("no prompt given (use -p TEXT or -f FILE)");
  // SpecKV's draft writes as many tokens as the request asks for, unless told otherwise.
  if (gp.kv.draft_max_new < 0 && gp.n_predict > 0) gp.kv.draft_max_new = gp.n_predict;
  validate_policy_settings(gp.kv);
  const std::optional<SpecParams> spec_params = resolve_spec_flags(spec, gp);

  if (gp.kv.query_agnostic && question.empty()) fail("--query-agnostic needs --question TEXT");
  const std::shared_ptr<Engine> engine = Engine::load(sp);
  preload_drafts(gp.kv);
  std::optional<SpecParams> sparams = spec_params;
  if (sparams && !spec.draft_model.empty()) sparams->draft.draft_engine = load_draft_engine(sp, spec.draft_model);
  Context s(engine);
  const ModelConfig& c = s.model().config();
  const PromptTokens pt = engine->tokenize_prompt(prompt, question, system, chat);
  const std::vector<int32_t>& tokens = pt.tokens;
  gp.n_compress = pt.n_context;
  check_prompt_fits(s, tokens.size());
  if (!quiet)
    std::fprintf(stderr,
                 "glimpse: %s, isa = %s\nglimpse: n_ctx = %d, n_threads = %d, chat template = %s%s\n",
                 c.summary().c_str(), isa_level_name(isa_level()), s.n_ctx(), engine->n_threads(),
                 std::string(engine->chat_template().name()).c_str(),
                 chat ? "" : " (not applied: the prompt is raw text; --chat applies it)");
  const auto print = [](std::string_view t) {
    std::fwrite(t.data(), 1, t.size(), stdout);
    std::fflush(stdout);
  };
  GenerateResult r = sparams ? generate_speculative(s, tokens, gp, *sparams, print)
                             : generate(s, tokens, gp, print);
  std::fputc('\n', stdout);
  if (!quiet) {
    std::fprintf(stderr, "\nglimpse: seed = %u, stop reason = %s\n%s", r.seed,
                 r.stop_reason.c_str(), r.timings.report().c_str());
  }
  if (!timings_json.empty()) {
    std::ofstream out(timings_json);
    if (!out) fail("cannot write '{}'", timings_json);
    out << r.timings.to_json() << "\n";
  }
  if (!dump_kept.empty()) {
    // Decoding never evicts, so the cache after generation still shows the selection.
    std::ofstream out(dump_kept);
    if (!out) fail("cannot write '{}'", dump_kept);
    out << kept_positions_json(s.cache(), tokens, r.timings.kv) << "\n";
  }
  return 0;
}

}  // namespace glimpse
