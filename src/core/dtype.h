#pragma once
// Element types, devices and the scalar conversions between the float formats.

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace paradit::core {

enum class DType : uint8_t {
  F32,
  BF16,
  F16,
  F64,
  I64,
  I32,
  I16,
  I8,
  U8,
  Bool,
  F8E4M3,
  F8E5M2,
};

enum class Device : uint8_t { CPU, CUDA };

size_t dtype_size(DType t);
// Name as safetensors writes it: "F32", "BF16", "BOOL", "F8_E4M3" ...
std::string_view dtype_name(DType t);
// Parses a safetensors dtype name; returns false when unknown.
bool parse_dtype(std::string_view name, DType* out);
bool is_floating(DType t);
std::string_view device_name(Device d);

// ---- scalar conversions (round-to-nearest-even where narrowing) ----
inline float bf16_to_f32(uint16_t v) {
  uint32_t bits = static_cast<uint32_t>(v) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

inline uint16_t f32_to_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);  // NaN
  uint32_t rounding = 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>((bits + rounding) >> 16);
}

float f16_to_f32(uint16_t v);
uint16_t f32_to_f16(float f);
float f8e4m3_to_f32(uint8_t v);
float f8e5m2_to_f32(uint8_t v);

}  // namespace paradit::core
