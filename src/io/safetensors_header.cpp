// safetensors header validation. Kept apart from the mmap/Tensor code so that the fuzzer
// (fuzz/safetensors_header_fuzz.cpp, scripts/fuzz.sh) builds from this file and dtype.cpp alone.
#include <algorithm>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <string_view>

#include "core/error.h"
#include "io/safetensors.h"

namespace paradit::io {

namespace {

using Json = nlohmann::json;

// A name or parser message made safe for a one-line error: control bytes escaped, long text cut.
std::string printable(std::string_view s, size_t max_chars = 160) {
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (out.size() >= max_chars) {
      out += "...";
      break;
    }
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7f) {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

// Offset of the first byte that is not part of well-formed UTF-8 (no overlongs, no surrogates,
// nothing above U+10FFFF), or npos.
size_t first_invalid_utf8(const unsigned char* s, size_t n) {
  size_t i = 0;
  while (i < n) {
    const unsigned c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    unsigned lo = 0x80, hi = 0xbf;  // allowed range of the second byte
    if (c >= 0xc2 && c <= 0xdf) {
      len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
      len = 3;
      if (c == 0xe0) lo = 0xa0;  // overlong
      if (c == 0xed) hi = 0x9f;  // surrogates
    } else if (c >= 0xf0 && c <= 0xf4) {
      len = 4;
      if (c == 0xf0) lo = 0x90;  // overlong
      if (c == 0xf4) hi = 0x8f;  // above U+10FFFF
    } else {
      return i;
    }
    if (i + len > n) return i;
    if (s[i + 1] < lo || s[i + 1] > hi) return i;
    for (size_t k = 2; k < len; ++k) {
      if (s[i + k] < 0x80 || s[i + k] > 0xbf) return i;
    }
    i += len;
  }
  return std::string_view::npos;
}

// As core::shape_str, which lives in tensor.cpp (not linked into the fuzzer).
std::string format_shape(const core::Shape& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

std::string dtype_list() {
  std::string out;
  for (int t = 0; t <= static_cast<int>(core::DType::F8E5M2); ++t) {
    if (!out.empty()) out += ", ";
    out += core::dtype_name(static_cast<core::DType>(t));
  }
  return out;
}

// A non-negative JSON integer that fits int64 (shape dims and offsets).
bool as_count(const Json& v, uint64_t* out) {
  if (v.is_number_unsigned()) {
    *out = v.get<uint64_t>();
    return *out <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  }
  if (v.is_number_integer()) {
    const auto s = v.get<int64_t>();
    if (s < 0) return false;
    *out = static_cast<uint64_t>(s);
    return true;
  }
  return false;
}

std::string describe_value(const Json& v) {
  std::string dumped = v.dump(-1, ' ', false, Json::error_handler_t::replace);
  return std::string(v.type_name()) + " " + printable(dumped, 60);
}

TensorInfo parse_entry(const std::string& name, const Json& entry, uint64_t data_bytes,
                       const std::string& where) {
  const std::string tensor = "tensor '" + printable(name) + "'";
  if (!entry.is_object()) {
    fail(where, ": ", tensor, " is not an object with dtype, shape and data_offsets (found ",
         describe_value(entry), ")");
  }
  for (const auto& [field, value] : entry.items()) {
    if (field != "dtype" && field != "shape" && field != "data_offsets") {
      fail(where, ": ", tensor, " has an unexpected field '", printable(field),
           "' (expected dtype, shape, data_offsets)");
    }
  }
  for (const char* field : {"dtype", "shape", "data_offsets"}) {
    if (!entry.contains(field)) fail(where, ": ", tensor, " has no '", field, "'");
  }

  TensorInfo info;
  info.name = name;
  const Json& dtype = entry["dtype"];
  if (!dtype.is_string()) {
    fail(where, ": ", tensor, " dtype is not a string (found ", describe_value(dtype), ")");
  }
  const auto& dtype_str = dtype.get_ref<const std::string&>();
  if (!core::parse_dtype(dtype_str, &info.dtype)) {
    fail(where, ": ", tensor, " has unknown dtype '", printable(dtype_str),
         "' (known: ", dtype_list(), ")");
  }

  const Json& shape = entry["shape"];
  if (!shape.is_array()) {
    fail(where, ": ", tensor, " shape is not a list (found ", describe_value(shape), ")");
  }
  if (shape.size() > static_cast<size_t>(core::kMaxDims)) {
    fail(where, ": ", tensor, " has ", shape.size(), " dims; at most ", core::kMaxDims,
         " are supported");
  }
  uint64_t numel = 1;
  bool numel_overflow = false, zero_dim = false;
  for (const auto& d : shape) {
    uint64_t dim;
    if (!as_count(d, &dim)) {
      fail(where, ": ", tensor, " shape has ", describe_value(d),
           " where a non-negative integer is expected");
    }
    info.shape.push_back(static_cast<int64_t>(dim));
    if (__builtin_mul_overflow(numel, dim, &numel)) numel_overflow = true;
    zero_dim |= dim == 0;
  }
  // A zero dim makes the product 0 even after an overflow in other dims.
  if (zero_dim) {
    numel = 0;
    numel_overflow = false;
  }

  const Json& offsets = entry["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2 || !as_count(offsets[0], &info.begin) ||
      !as_count(offsets[1], &info.end)) {
    fail(where, ": ", tensor, " data_offsets must be [begin, end] non-negative integers (found ",
         describe_value(offsets), ")");
  }
  if (info.begin > info.end) {
    fail(where, ": ", tensor, " data_offsets [", info.begin, ", ", info.end,
         "] end before they begin");
  }
  if (info.end > data_bytes) {
    fail(where, ": ", tensor, " data_offsets [", info.begin, ", ", info.end,
         "] run past the end of the data section (", data_bytes, " bytes; file truncated?)");
  }
  uint64_t nbytes = 0;
  if (!numel_overflow && __builtin_mul_overflow(numel, core::dtype_size(info.dtype), &nbytes)) {
    numel_overflow = true;
  }
  if (numel_overflow || nbytes != info.end - info.begin) {
    fail(where, ": ", tensor, " ", dtype_str, format_shape(info.shape), " needs ",
         numel_overflow ? std::string("more than 2^64") : std::to_string(nbytes),
         " bytes but its data_offsets [", info.begin, ", ", info.end, "] span ",
         info.end - info.begin);
  }
  return info;
}

}  // namespace

std::vector<TensorInfo> parse_header(const char* json, size_t json_bytes, uint64_t data_bytes,
                                     const std::string& where,
                                     std::map<std::string, std::string>* metadata) {
  const auto* bytes = reinterpret_cast<const unsigned char*>(json);
  if (const size_t bad = first_invalid_utf8(bytes, json_bytes); bad != std::string_view::npos) {
    fail(where, ": header is not valid UTF-8 (byte ", bad, " of the header is 0x",
         "0123456789abcdef"[bytes[bad] >> 4], "0123456789abcdef"[bytes[bad] & 15], ")");
  }

  // The callback rejects what the plain parser would silently accept: repeated names (JSON
  // keeps the last) and nesting deeper than a header has (top object, entry, shape list).
  std::set<std::string> names, fields;
  auto callback = [&](int depth, Json::parse_event_t event, Json& parsed) {
    if ((event == Json::parse_event_t::object_start || event == Json::parse_event_t::array_start) &&
        depth >= 3) {
      fail(where, ": header nests deeper than a safetensors header can (depth ", depth + 1, ")");
    }
    if (event == Json::parse_event_t::object_start && depth == 1) fields.clear();
    if (event == Json::parse_event_t::key && (depth == 1 || depth == 2)) {
      const auto& key = parsed.get_ref<const std::string&>();
      if (!(depth == 1 ? names : fields).insert(key).second) {
        fail(where, ": header repeats the key '", printable(key), "'");
      }
    }
    return true;
  };
  Json root;
  try {
    root = Json::parse(json, json + json_bytes, callback, /*allow_exceptions=*/true,
                       /*ignore_comments=*/false);
  } catch (const nlohmann::json::exception& e) {
    std::string what = e.what();
    if (const auto p = what.find("] "); what.rfind("[json.exception", 0) == 0 && p != what.npos) {
      what = what.substr(p + 2);
    }
    fail(where, ": header is not valid JSON (", printable(what, 200), ")");
  }
  if (!root.is_object()) {
    fail(where, ": header is not a JSON object (found ", describe_value(root), ")");
  }

  std::vector<TensorInfo> tensors;
  tensors.reserve(root.size());
  for (const auto& [key, value] : root.items()) {
    if (key == "__metadata__") {
      if (!value.is_object()) {
        fail(where, ": __metadata__ is not an object of strings (found ", describe_value(value),
             ")");
      }
      for (const auto& [mkey, mvalue] : value.items()) {
        if (!mvalue.is_string()) {
          fail(where, ": __metadata__ entry '", printable(mkey), "' is not a string (found ",
               describe_value(mvalue), ")");
        }
        if (metadata) (*metadata)[mkey] = mvalue.get<std::string>();
      }
      continue;
    }
    tensors.push_back(parse_entry(key, value, data_bytes, where));
  }

  // Non-overlap: sorted by begin, each non-empty range starts at or after the previous end.
  std::vector<const TensorInfo*> order;
  for (const auto& t : tensors) {
    if (t.end > t.begin) order.push_back(&t);
  }
  std::sort(order.begin(), order.end(),
            [](const TensorInfo* a, const TensorInfo* b) { return a->begin < b->begin; });
  for (size_t i = 1; i < order.size(); ++i) {
    const TensorInfo& a = *order[i - 1];
    const TensorInfo& b = *order[i];
    if (b.begin < a.end) {
      fail(where, ": tensors '", printable(a.name), "' [", a.begin, ", ", a.end, ") and '",
           printable(b.name), "' [", b.begin, ", ", b.end, ") overlap in the data section");
    }
  }
  return tensors;
}

uint64_t check_header_length(const unsigned char prefix[8], uint64_t file_bytes,
                             const std::string& where) {
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | prefix[i];  // little-endian
  if (n > kMaxHeaderBytes) {
    fail(where, ": header length ", n, " exceeds the limit of ", kMaxHeaderBytes,
         " bytes (not a safetensors file?)");
  }
  if (n > file_bytes - 8) {
    fail(where, ": header length ", n, " runs past the end of the file (", file_bytes,
         " bytes; truncated?)");
  }
  return n;
}

FileLayout parse_file_image(const char* bytes, size_t size, const std::string& where) {
  if (size < 8) {
    fail(where, ": file is ", size,
         " bytes, too short for the 8-byte header length (truncated or not a safetensors file)");
  }
  FileLayout layout;
  const uint64_t n =
      check_header_length(reinterpret_cast<const unsigned char*>(bytes), size, where);
  layout.data_offset = 8 + n;
  layout.data_bytes = size - layout.data_offset;
  layout.tensors = parse_header(bytes + 8, n, layout.data_bytes, where, &layout.metadata);
  return layout;
}

}  // namespace paradit::io
