// glimpse tokenize: token ids of a text as a JSON array (loads only the vocabulary); with
// --batch, of every string of a JSON array at once (tests/parity compares thousands).
#include <cstdio>

#include <nlohmann/json.hpp>

#include "gguf/gguf_file.h"
#include "tokenizer/tokenizer.h"
#include "tools/commands.h"
#include "util/error.h"

namespace glimpse {

int cmd_tokenize(int argc, char** argv, int first) {
  std::string model, text;
  bool have_text = false, no_bos = false, special = false, pieces = false;
  ArgParser ap("tokenize", "Print the token ids of a text as a JSON array.");
  ap.add({"-m", "--model"}, "FNAME", "model path (default: the default model)",
         [&](const std::string& v) { model = v; });
  ap.add({"-p", "--prompt"}, "TEXT", "text to tokenize", [&](const std::string& v) {
    text = v;
    have_text = true;
  });
  ap.add({"-f", "--file"}, "FNAME", "file to tokenize", [&](const std::string& v) {
    text = read_text_file(v);
    have_text = true;
  });
  ap.flag({"--no-bos"}, "do not add the BOS token even if the model asks for it",
          [&] { no_bos = true; });
  ap.flag({"--special"}, "recognise special-token text such as <|im_start|>",
          [&] { special = true; });
  ap.flag({"--pieces"}, "print [id, piece] pairs instead of bare ids", [&] { pieces = true; });
  std::string batch_path;
  ap.add({"--batch"}, "FNAME",
         "JSON array of strings: print a JSON array of their id arrays (one per line)",
         [&](const std::string& v) { batch_path = v; });
  if (!ap.parse(argc, argv, first)) return 0;
  if (!have_text && batch_path.empty()) fail("no text given (use -p TEXT, -f FILE or --batch FILE)");
  if (model.empty()) model = default_model_path();
  const GgufFile f = GgufFile::open(model);
  const Tokenizer tok = Tokenizer::from_gguf(f);
  if (!batch_path.empty()) {
    std::vector<std::string> texts;
    try {
      texts = nlohmann::json::parse(read_text_file(batch_path)).get<std::vector<std::string>>();
    } catch (const nlohmann::json::exception& e) {
      fail("{}: not a JSON array of strings ({})", batch_path, e.what());
    }
    std::puts("[");
    for (size_t i = 0; i < texts.size(); ++i) {
      const nlohmann::json ids = tok.encode(texts[i], tok.add_bos() && !no_bos, special);
      std::printf("%s%s\n", ids.dump().c_str(), i + 1 < texts.size() ? "," : "");
    }
    std::puts("]");
    return 0;
  }
  const std::vector<int32_t> ids = tok.encode(text, tok.add_bos() && !no_bos, special);
  nlohmann::json out = nlohmann::json::array();
  for (int32_t id : ids) {
    if (pieces) {
      out.push_back({id, nlohmann::json(tok.token_to_piece(id)).dump(-1, ' ', false,
                                                                       nlohmann::json::error_handler_t::replace)});
    } else {
      out.push_back(id);
    }
  }
  std::puts(out.dump().c_str());
  return 0;
}

}  // namespace glimpse
