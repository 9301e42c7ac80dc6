// libFuzzer target: the input is a whole .safetensors file image (8-byte length, header, data).
// parse_file_image must either accept it — and then every tensor it reports lies inside the data
// section with a size that matches its shape — or throw paradit::Error with a one-line message
// naming the file. Anything else (another exception, a crash, a leak, undefined behaviour under
// -fsanitize=address,undefined) is a bug. Built and run by scripts/fuzz.sh.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/error.h"
#include "io/safetensors.h"

namespace {
constexpr std::string_view kWhere = "fuzz.safetensors";
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using paradit::io::parse_file_image;
  try {
    const auto layout =
        parse_file_image(reinterpret_cast<const char*>(data), size, std::string(kWhere));
    if (layout.data_offset + layout.data_bytes != size) __builtin_trap();
    for (const auto& t : layout.tensors) {
      if (t.begin > t.end || t.end > layout.data_bytes) __builtin_trap();
      if (t.shape.size() > static_cast<size_t>(paradit::core::kMaxDims)) __builtin_trap();
      uint64_t bytes = paradit::core::dtype_size(t.dtype);
      for (int64_t d : t.shape) {
        if (d < 0) __builtin_trap();
        bytes *= static_cast<uint64_t>(d);  // cannot overflow: the parser checked the product
      }
      if (bytes != t.end - t.begin) __builtin_trap();
    }
  } catch (const paradit::Error& e) {
    const std::string_view message = e.what();
    if (message.substr(0, kWhere.size() + 2) != std::string(kWhere) + ": ") __builtin_trap();
    if (message.find('\n') != std::string_view::npos) __builtin_trap();
  }
  return 0;
}
