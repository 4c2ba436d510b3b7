# The layers of src/, lowest first, and the layers each may use (directly or below). One
# table for two uses: CMakeLists.txt builds one static library per layer linking only the
# layers listed, and check_layers.cmake fails the build when a library source includes a
# header of a layer it may not use. Tests (*_test.cpp) link the whole stack and may include
# anything; a fuzz target (*_fuzz.cpp) links the layer of its folder.
set(GLIMPSE_LAYERS util gguf tokenizer sampling ops model kv lookahead runtime train eval server tools)
set(GLIMPSE_LAYER_DEPS_util "")
set(GLIMPSE_LAYER_DEPS_gguf util)
set(GLIMPSE_LAYER_DEPS_tokenizer gguf util)
set(GLIMPSE_LAYER_DEPS_sampling util)
set(GLIMPSE_LAYER_DEPS_ops gguf util)
set(GLIMPSE_LAYER_DEPS_model ops gguf util)
set(GLIMPSE_LAYER_DEPS_kv model ops gguf util)
set(GLIMPSE_LAYER_DEPS_lookahead kv model ops gguf util)
set(GLIMPSE_LAYER_DEPS_runtime lookahead kv model ops tokenizer sampling gguf util)
set(GLIMPSE_LAYER_DEPS_train runtime lookahead kv model ops tokenizer sampling gguf util)
set(GLIMPSE_LAYER_DEPS_eval runtime lookahead kv model ops tokenizer sampling gguf util)
set(GLIMPSE_LAYER_DEPS_server runtime lookahead kv model ops tokenizer sampling gguf util)
set(GLIMPSE_LAYER_DEPS_tools server eval train runtime lookahead kv model ops tokenizer sampling gguf util)
