// libFuzzer target: the input is a diffusers config.json. Config::parse must either accept it —
// and then every getter either returns or throws paradit::Error — or throw paradit::Error with a
// one-line message naming the file. Anything else (another exception, a crash such as the stack
// overflow a deeply nested array caused, a leak, undefined behaviour under
// -fsanitize=address,undefined) is a bug. Built and run by scripts/fuzz.sh config_json.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/error.h"
#include "io/diffusers.h"

namespace {
constexpr std::string_view kWhere = "fuzz/config.json";

void check_message(const paradit::Error& e) {
  const std::string_view message = e.what();
  if (message.substr(0, kWhere.size() + 2) != std::string(kWhere) + ": ") __builtin_trap();
  if (message.find('\n') != std::string_view::npos) __builtin_trap();
}

template <typename F>
void guarded(F&& f) {
  try {
    f();
  } catch (const paradit::Error& e) {
    check_message(e);
  }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using paradit::io::Config;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const Config c = Config::parse(text, std::string(kWhere));
    // Every key the models read, through every getter.
    for (const auto& item : c.json().items()) {
      const std::string key = item.key();
      guarded([&] { (void)c.get_int(key); });
      guarded([&] { (void)c.get_float(key); });
      guarded([&] { (void)c.get_bool(key, false); });
      guarded([&] { (void)c.get_string(key); });
      guarded([&] { (void)c.get_int_list(key); });
    }
    for (const char* key : {"num_layers", "attention_head_dim", "block_out_channels",
                            "_class_name", "sample_size", "shift", "layers_per_block"}) {
      guarded([&] { (void)c.get_int(key, 0); });
      guarded([&] { (void)c.get_float(key, 0.0); });
      guarded([&] { (void)c.get_int_list(key, {}); });
      guarded([&] { (void)c.get_string(key, ""); });
    }
    (void)c.json().dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  } catch (const paradit::Error& e) {
    check_message(e);
  }
  return 0;
}
