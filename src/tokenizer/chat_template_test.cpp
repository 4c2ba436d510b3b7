#include "tokenizer/chat_template.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "gguf/gguf_file.h"
#include "gguf/gguf_writer.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_test_util.h"
#include "util/error.h"

namespace glimpse {
namespace {

const std::vector<ChatMessage> kConv = {
    {"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello."}, {"user", "2+2?"}};
const std::vector<ChatMessage> kNoSystem = {{"user", "Hi"}, {"assistant", "Hello."}, {"user", "2+2?"}};

TEST(ChatTemplate, ChatMLIsTheFallback) {
  const ChatTemplate ct = ChatTemplate::from_text("");
  EXPECT_EQ(ct.name(), "chatml");
  EXPECT_EQ(ct.render(kConv, true),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
            "<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n"
            "<|im_start|>assistant\n");
  const ChatTemplate odd = ChatTemplate::from_text("{{ messages | tojson }}");
  EXPECT_EQ(odd.name(), "chatml-fallback");
  EXPECT_THROW(ChatTemplate::from_text("{{ messages | tojson }}", true), Error);
}

TEST(ChatTemplate, ChatMLWithDefaultSystemPrompt) {
  const ChatTemplate ct = ChatTemplate::from_text(
      "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
      "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
      "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
      "{% endfor %}");
  EXPECT_EQ(ct.default_system(), "You are a helpful assistant.");
  EXPECT_EQ(ct.render({{"user", "Hi"}}, true),
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(ct.render(kConv, false).rfind("<|im_start|>system\nBe brief.", 0), 0u);
}

TEST(ChatTemplate, Llama3) {
  const ChatTemplate ct = ChatTemplate::from_text(
      "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' }}");
  EXPECT_EQ(ct.name(), "llama3");
  EXPECT_EQ(ct.render({{"system", " S "}, {"user", "Hi\n"}}, true),
            "<|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

TEST(ChatTemplate, Llama2AndMistral) {
  const ChatTemplate l2 = ChatTemplate::from_text("[INST] <<SYS>>\\n content.strip()");
  EXPECT_EQ(l2.name(), "llama2");
  EXPECT_EQ(l2.render(kConv, true),
            "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello. </s><s>[INST] 2+2? [/INST]");
  const ChatTemplate mi = ChatTemplate::from_text("{{ '[INST] ' + message['content'] + ' [/INST]' }}");
  EXPECT_EQ(mi.name(), "mistral");
  EXPECT_EQ(mi.render(kNoSystem, true), "[INST] Hi [/INST]Hello.</s>[INST] 2+2? [/INST]");
  EXPECT_EQ(mi.render(kConv, true), "[INST] Be brief.\n\nHi [/INST]Hello.</s>[INST] 2+2? [/INST]");
}

TEST(ChatTemplate, GemmaAndPhi3) {
  const ChatTemplate g = ChatTemplate::from_text("{{ '<start_of_turn>' + role + '\n' }}");
  EXPECT_EQ(g.name(), "gemma");
  EXPECT_EQ(g.render(kConv, true),
            "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello."
            "<end_of_turn>\n<start_of_turn>user\n2+2?<end_of_turn>\n<start_of_turn>model\n");
  ChatTemplate p = ChatTemplate::from_text(
      "{{'<|user|>\n' + message['content'] + '<|end|>\n'}}{{ '<|assistant|>\n' }}{{ eos_token }}");
  EXPECT_EQ(p.name(), "phi3");
  p.set_special_text("<s>", "<|endoftext|>");
  EXPECT_EQ(p.render({{"user", "Hi"}}, false), "<|user|>\nHi<|end|>\n<|endoftext|>");
  EXPECT_EQ(p.render({{"system", "S"}, {"user", "Hi"}}, true),
            "<|system|>\nS<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\n");
}

TEST(ChatTemplate, FromGgufReadsTemplateAndSpecialText) {
  GgufWriter w;
  w.add_string("tokenizer.chat_template", "[INST] <<SYS>>");
  w.add_string_array("tokenizer.ggml.tokens", {"<unk>", "<S>", "</S>"});
  w.add_u32("tokenizer.ggml.bos_token_id", 1);
  w.add_u32("tokenizer.ggml.eos_token_id", 2);
  const auto b = w.bytes();
  const GgufFile f = GgufFile::parse(b.data(), b.size(), "mem");
  const ChatTemplate ct = ChatTemplate::from_gguf(f);
  EXPECT_EQ(ct.name(), "llama2");
  EXPECT_EQ(ct.render(kNoSystem, false), "[INST] Hi [/INST] Hello. </S><S>[INST] 2+2? [/INST]");
}

TEST(ChatTemplateParity, MatchesJinja) {
  const std::string path = testing::source_dir() + "/tests/parity/tokenizer_chat_reference.json";
  ASSERT_TRUE(testing::exists(path)) << path;
  const auto cases = nlohmann::json::parse(testing::read_file(path));
  ASSERT_GE(cases.size(), 40u);
  size_t pass = 0;
  for (const auto& c : cases) {
    ChatTemplate ct = ChatTemplate::from_text(c.at("template").get<std::string>(), true);
    ct.set_special_text(c.at("bos").get<std::string>(), c.at("eos").get<std::string>());
    std::vector<ChatMessage> msgs;
    for (const auto& m : c.at("messages"))
      msgs.push_back({m.at("role").get<std::string>(), m.at("content").get<std::string>()});
    EXPECT_EQ(ct.name(), c.at("family").get<std::string>());
    const std::string got = ct.render(msgs, c.at("add_generation_prompt").get<bool>());
    const std::string want = c.at("expected").get<std::string>();
    if (got == want) ++pass;
    else ADD_FAILURE() << c.at("family") << " " << c.at("messages").dump() << "\n got  "
                       << ::testing::PrintToString(got) << "\n want " << ::testing::PrintToString(want);
  }
  std::printf("[ chat     ] %zu/%zu renderings match Jinja\n", pass, cases.size());
}

TEST(ChatTemplateParity, SmolLM2FromModelFile) {
  if (!testing::exists(testing::model_path())) GTEST_SKIP() << "model not found";
  const GgufFile f = GgufFile::open(testing::model_path());
  const ChatTemplate ct = ChatTemplate::from_gguf(f, true);
  EXPECT_EQ(ct.name(), "chatml");
  EXPECT_EQ(ct.default_system(), "You are a helpful AI assistant named SmolLM, trained by Hugging Face");
  const std::string prompt = ct.render({{"user", "Hi"}}, true);
  EXPECT_EQ(prompt,
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
            "Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  const Tokenizer tok = Tokenizer::from_gguf(f);
  const auto ids = tok.encode(prompt, true, true);
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids.front(), tok.token_id("<|im_start|>"));  // no BOS for this model
  EXPECT_EQ(std::count(ids.begin(), ids.end(), tok.token_id("<|im_end|>")), 2);
  EXPECT_EQ(tok.decode(ids), prompt);
}

}  // namespace
}  // namespace glimpse
