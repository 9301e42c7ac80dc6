// safetensors reading, validation, sharding and writing. Expected values come from files and
// headers built by hand here (io_test_util.h) and from an independent parse of what the writer
// produced, never from the code under test.
#include "io/safetensors.h"

#include <fcntl.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io_test_util.h"

namespace paradit::io {
namespace {

namespace fs = std::filesystem;

using core::DType;
using core::Tensor;
using testing::bytes_of;
using testing::raw_safetensors;
using testing::read_file;
using testing::TempDir;
using testing::write_file;
using Json = nlohmann::json;

// The message of the paradit::Error `fn` throws ("" when it throws none).
template <typename Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// Deterministic bytes for a tensor of any dtype (bools 0/1, floats any bit pattern).
std::string pattern_bytes(size_t n, DType dtype, int salt) {
  std::string out(n, '\0');
  for (size_t i = 0; i < n; ++i) {
    out[i] = static_cast<char>(dtype == DType::Bool ? (i + salt) % 2 : (i * 37 + salt * 11) % 251);
  }
  return out;
}

Tensor tensor_with_bytes(const core::Shape& shape, DType dtype, const std::string& bytes) {
  Tensor t = Tensor::empty(shape, dtype);
  EXPECT_EQ(t.nbytes(), bytes.size());
  if (!bytes.empty()) std::memcpy(t.raw_data(), bytes.data(), bytes.size());
  return t;
}

std::string tensor_bytes(const Tensor& t) {
  const Tensor c = t.contiguous();
  return std::string(static_cast<const char*>(c.raw_data()), c.nbytes());
}

// Reads the header of a file the way any other safetensors reader would, without our parser.
Json independent_header(const std::string& file, uint64_t* header_len) {
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(file[i]);
  *header_len = n;
  return Json::parse(file.substr(8, n));
}

// ---------------------------------------------------------------- writer → reader round trip

TEST(Safetensors, RoundTripAllDtypesMetadataZeroSizeAndStrided) {
  TempDir dir;
  const fs::path path = dir / "all.safetensors";
  struct Case {
    std::string name;
    core::Shape shape;
    DType dtype;
  };
  const std::vector<Case> cases = {
      {"f32", {2, 3}, DType::F32},
      {"bf16", {5}, DType::BF16},
      {"f16", {3, 1}, DType::F16},
      {"f64", {2, 2}, DType::F64},
      {"i64", {3}, DType::I64},
      {"i32", {1, 2, 2}, DType::I32},
      {"i16", {3}, DType::I16},
      {"i8", {7}, DType::I8},
      {"u8", {2, 2, 1, 1, 1, 3}, DType::U8},
      {"bool", {5}, DType::Bool},
      {"f8e4m3", {3}, DType::F8E4M3},
      {"f8e5m2", {4}, DType::F8E5M2},
      {"empty", {0, 3}, DType::F32},
      {"scalar", {}, DType::F32},
  };
  std::vector<std::pair<std::string, Tensor>> tensors;
  std::map<std::string, std::string> expected_bytes;
  int salt = 1;
  for (const auto& c : cases) {
    const size_t n = static_cast<size_t>(core::shape_numel(c.shape)) * core::dtype_size(c.dtype);
    expected_bytes[c.name] = pattern_bytes(n, c.dtype, salt++);
    tensors.emplace_back(c.name, tensor_with_bytes(c.shape, c.dtype, expected_bytes[c.name]));
  }
  // A strided view: columns 1..2 of a 3x4 matrix holding 0..11.
  std::vector<float> base(12);
  for (int i = 0; i < 12; ++i) base[i] = static_cast<float>(i);
  const Tensor strided = Tensor::from_vector(base, {3, 4}).slice(1, 1, 3);
  ASSERT_FALSE(strided.is_contiguous());
  tensors.emplace_back("strided", strided);
  expected_bytes["strided"] = bytes_of(std::vector<float>{1, 2, 5, 6, 9, 10});
  const std::map<std::string, std::string> metadata = {{"format", "pt"}, {"note", "caf\xc3\xa9"}};

  save_safetensors(path, tensors, metadata);

  // Independent check of the bytes on disk.
  const std::string file = read_file(path);
  uint64_t n = 0;
  const Json header = independent_header(file, &n);
  EXPECT_EQ(n % 8, 0u) << "header padded to 8 bytes";
  // After the JSON text comes space padding only, as the reference writer does.
  const size_t last_brace = file.rfind('}', 8 + n - 1);
  ASSERT_NE(last_brace, std::string::npos);
  for (size_t k = last_brace + 1; k < 8 + n; ++k) EXPECT_EQ(file[k], ' ') << "byte " << k;
  EXPECT_EQ(header["__metadata__"], Json(metadata));
  const uint64_t data_start = 8 + n;
  for (const auto& c : cases) {
    const Json& e = header[c.name];
    EXPECT_EQ(e["dtype"].get<std::string>(), std::string(core::dtype_name(c.dtype))) << c.name;
    EXPECT_EQ(e["shape"].get<core::Shape>(), c.shape) << c.name;
    const uint64_t b = e["data_offsets"][0], en = e["data_offsets"][1];
    EXPECT_EQ(file.substr(data_start + b, en - b), expected_bytes[c.name]) << c.name;
    EXPECT_EQ(b % core::dtype_size(c.dtype), 0u) << c.name << " offset aligned to its item size";
  }
  {
    const Json& e = header["strided"];
    EXPECT_EQ(e["shape"].get<core::Shape>(), (core::Shape{3, 2}));
    const uint64_t b = e["data_offsets"][0], en = e["data_offsets"][1];
    EXPECT_EQ(file.substr(data_start + b, en - b), expected_bytes["strided"]);
  }

  // And the reader gets the same back.
  const SafetensorsFile f = SafetensorsFile::open(path);
  EXPECT_EQ(f.metadata(), metadata);
  EXPECT_EQ(f.tensors().size(), cases.size() + 1);
  for (const auto& c : cases) {
    const Tensor v = f.view(c.name);
    EXPECT_EQ(v.dtype(), c.dtype) << c.name;
    EXPECT_EQ(v.shape(), c.shape) << c.name;
    EXPECT_EQ(tensor_bytes(v), expected_bytes[c.name]) << c.name;
  }
  EXPECT_EQ(tensor_bytes(f.view("strided")), expected_bytes["strided"]);
  // No temporary file is left beside the output.
  int entries = 0;
  for (const auto& e : fs::directory_iterator(dir.path())) entries += e.is_regular_file();
  EXPECT_EQ(entries, 1);
}

TEST(Safetensors, WriterErrorsLeaveNoFile) {
  TempDir dir;
  const fs::path missing_dir = dir / "no_such_dir" / "x.safetensors";
  const std::string e1 = error_of([&] {
    save_safetensors(missing_dir, {{"a", Tensor::full({2}, 1.0f)}});
  });
  EXPECT_NE(e1.find(missing_dir.string() + ": cannot write"), std::string::npos) << e1;

  const fs::path path = dir / "dup.safetensors";
  const std::string e2 = error_of([&] {
    save_safetensors(path, {{"a", Tensor::full({2}, 1.0f)}, {"a", Tensor::full({2}, 2.0f)}});
  });
  EXPECT_NE(e2.find("tensor 'a' is given twice"), std::string::npos) << e2;
  EXPECT_TRUE(fs::is_empty(dir.path()) || !fs::exists(path));
  EXPECT_FALSE(fs::exists(path));
}

// ---------------------------------------------------------------- zero-copy, laziness, alignment

TEST(Safetensors, LoadIsZeroCopyWhenDtypeMatches) {
  TempDir dir;
  const fs::path path = dir / "w.safetensors";
  const std::vector<float> values = {1.5f, -2.0f, 3.25f, 0.0f, 7.0f, -0.5f};
  std::string header = R"({"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}})";
  header.append((8 - header.size() % 8) % 8, ' ');  // data section 8-byte aligned
  write_file(path, raw_safetensors(header, bytes_of(values)));
  const TensorSource src = TensorSource::open(path);
  const Tensor a = src.load("w");
  const Tensor b = src.load("w", DType::F32);
  const Tensor v = src.view("w");
  EXPECT_EQ(a.raw_data(), b.raw_data());
  EXPECT_EQ(a.raw_data(), v.raw_data());
  EXPECT_EQ(a.storage(), v.storage()) << "every view shares the one mapping of the data section";
  // The pointer is inside the mapped data section, at the tensor's offset.
  EXPECT_EQ(static_cast<const char*>(a.raw_data()), static_cast<const char*>(a.storage()->data));
  EXPECT_EQ(a.storage()->nbytes, 24u);
  EXPECT_EQ(a.to_vector(), values);
  // A converting load is a separate buffer.
  const Tensor bf = src.load("w", DType::BF16);
  EXPECT_NE(bf.storage(), a.storage());
  EXPECT_EQ(bf.dtype(), DType::BF16);
}

// Resident set size of this process in bytes.
size_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  size_t pages = 0, resident = 0;
  statm >> pages >> resident;
  return resident * static_cast<size_t>(::sysconf(_SC_PAGESIZE));
}

TEST(Safetensors, OpeningAndLoadingOneTensorDoesNotReadTheOthers) {
  TempDir dir;
  const fs::path path = dir / "big.safetensors";
  constexpr uint64_t kBig = 256ull << 20;  // a 256 MiB tensor that is never read
  std::string header = R"({"big":{"dtype":"F32","shape":[)" + std::to_string(kBig / 4) +
                       R"(],"data_offsets":[0,)" + std::to_string(kBig) +
                       R"(]},"small":{"dtype":"F32","shape":[2],"data_offsets":[)" +
                       std::to_string(kBig) + "," + std::to_string(kBig + 8) + "]}}";
  header.append((8 - header.size() % 8) % 8, ' ');
  write_file(path, raw_safetensors(header));
  // Extend sparsely: the big tensor's bytes are a hole, so nothing forces them into memory.
  const std::vector<float> small = {4.0f, -8.0f};
  {
    const int fd = ::open(path.c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    const off_t data_start = static_cast<off_t>(8 + header.size());
    ASSERT_EQ(::ftruncate(fd, data_start + static_cast<off_t>(kBig + 8)), 0);
    ASSERT_EQ(::pwrite(fd, small.data(), 8, data_start + static_cast<off_t>(kBig)), 8);
    ::close(fd);
  }
  const size_t before = resident_bytes();
  const TensorSource src = TensorSource::open(path);
  const Tensor s = src.load("small");
  const Tensor big_view = src.view("big");  // a view, not a read
  EXPECT_EQ(s.to_vector(), small);
  EXPECT_EQ(big_view.numel(), static_cast<int64_t>(kBig / 4));
  const size_t after = resident_bytes();
  EXPECT_LT(after, before + (32u << 20))
      << "open + one small load touched " << (after - before) << " bytes";
}

TEST(Safetensors, MisalignedDataIsCopiedToAlignedMemory) {
  TempDir dir;
  const fs::path path = dir / "odd.safetensors";
  std::string header = R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},)"
                       R"("b":{"dtype":"I64","shape":[2],"data_offsets":[16,32]}})";
  // Make the data section start at an odd address (8 + header length odd).
  if ((8 + header.size()) % 2 == 0) header += ' ';
  const std::vector<float> a = {1.0f, 2.5f, -3.0f};
  const std::vector<int64_t> b = {-7, 1ll << 40};
  write_file(path, raw_safetensors(header, bytes_of(a) + std::string(4, '\0') + bytes_of(b)));
  const TensorSource src = TensorSource::open(path);
  const Tensor ta = src.load("a");
  const Tensor tb = src.load("b", DType::I64);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(ta.raw_data()) % alignof(float), 0u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(tb.raw_data()) % alignof(int64_t), 0u);
  EXPECT_EQ(ta.to_vector(), a);
  EXPECT_EQ(tb.data<int64_t>()[0], -7);
  EXPECT_EQ(tb.data<int64_t>()[1], 1ll << 40);
}

// ---------------------------------------------------------------- dtype conversion on load

TEST(Safetensors, LoadConvertsToF32Exactly) {
  TempDir dir;
  const fs::path path = dir / "conv.safetensors";
  const std::vector<uint16_t> bf16 = {0x3f80, 0xc000, 0x3fc0, 0x0001, 0x7f80, 0x4049, 0x8000};
  const std::vector<float> bf16_expected = {1.0f,     -2.0f,     1.5f, std::ldexp(1.0f, -133),
                                            INFINITY, 3.140625f, -0.0f};
  const std::vector<uint16_t> f16 = {0x3c00, 0xc000, 0x3555, 0x0001, 0x7bff, 0xfc00, 0x0400};
  const std::vector<float> f16_expected = {
      1.0f,     -2.0f,     0.333251953125f,      std::ldexp(1.0f, -24),
      65504.0f, -INFINITY, std::ldexp(1.0f, -14)};
  const std::vector<double> f64 = {0.1, -1e10, 3.0};
  const std::vector<int64_t> i64 = {-5, 1 << 20, 0};
  const std::vector<int32_t> i32 = {-123456, 7};
  const std::vector<uint8_t> u8 = {0, 200, 255};
  const std::vector<uint8_t> f8 = {0x38, 0x7e, 0xb8};  // e4m3: 1, 448, -1
  std::string data;
  auto entry = [&](const std::string& name, const char* dtype, size_t n, const std::string& bytes) {
    const std::string e = "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":[" +
                          std::to_string(n) + "],\"data_offsets\":[" + std::to_string(data.size()) +
                          "," + std::to_string(data.size() + bytes.size()) + "]}";
    data += bytes;
    return e;
  };
  std::string header = "{";
  header += entry("f64", "F64", f64.size(), bytes_of(f64)) + ",";
  header += entry("i64", "I64", i64.size(), bytes_of(i64)) + ",";
  header += entry("i32", "I32", i32.size(), bytes_of(i32)) + ",";
  header += entry("bf16", "BF16", bf16.size(), bytes_of(bf16)) + ",";
  header += entry("f16", "F16", f16.size(), bytes_of(f16)) + ",";
  header += entry("u8", "U8", u8.size(), bytes_of(u8)) + ",";
  header += entry("f8", "F8_E4M3", f8.size(), bytes_of(f8)) + "}";
  header.append((8 - header.size() % 8) % 8, ' ');
  write_file(path, raw_safetensors(header, data));

  const TensorSource src = TensorSource::open(path);
  auto check = [&](const std::string& name, const std::vector<float>& expected) {
    const Tensor t = src.load(name);
    ASSERT_EQ(t.dtype(), DType::F32) << name;
    ASSERT_EQ(t.numel(), static_cast<int64_t>(expected.size())) << name;
    const float* p = t.data<float>();
    for (size_t i = 0; i < expected.size(); ++i) {
      EXPECT_EQ(std::memcmp(&p[i], &expected[i], 4), 0)
          << name << "[" << i << "] = " << p[i] << ", expected " << expected[i];
    }
  };
  check("bf16", bf16_expected);
  check("f16", f16_expected);
  check("f64", {0.1f, -1e10f, 3.0f});
  check("i64", {-5.0f, 1048576.0f, 0.0f});
  check("i32", {-123456.0f, 7.0f});
  check("u8", {0.0f, 200.0f, 255.0f});
  check("f8", {1.0f, 448.0f, -1.0f});
}

// ---------------------------------------------------------------- sharded sets, folders

TEST(Safetensors, ShardedIndex) {
  TempDir dir;
  const std::vector<float> a = {1, 2, 3, 4}, b = {5, 6}, c = {7};
  save_safetensors(dir / "diffusion_pytorch_model-00001-of-00002.safetensors",
                   {{"a", Tensor::from_vector(a, {2, 2})}, {"c", Tensor::from_vector(c, {1})}});
  save_safetensors(dir / "diffusion_pytorch_model-00002-of-00002.safetensors",
                   {{"b", Tensor::from_vector(b, {2})}});
  const Json index = {{"metadata", {{"total_size", 28}}},
                      {"weight_map",
                       {{"a", "diffusion_pytorch_model-00001-of-00002.safetensors"},
                        {"c", "diffusion_pytorch_model-00001-of-00002.safetensors"},
                        {"b", "diffusion_pytorch_model-00002-of-00002.safetensors"}}}};
  write_file(dir / "diffusion_pytorch_model.safetensors.index.json", index.dump());

  for (const fs::path& p : {dir / "diffusion_pytorch_model.safetensors.index.json", dir.path()}) {
    const TensorSource src = TensorSource::open(p);
    EXPECT_EQ(src.names(), (std::vector<std::string>{"a", "b", "c"}));
    EXPECT_EQ(src.files().size(), 2u);
    EXPECT_EQ(src.load("a").to_vector(), a);
    EXPECT_EQ(src.load("b").to_vector(), b);
    EXPECT_EQ(src.load("c").to_vector(), c);
    EXPECT_EQ(src.info("a").shape, (core::Shape{2, 2}));
    EXPECT_FALSE(src.has("d"));
    const std::string e = error_of([&] { src.load("d"); });
    EXPECT_NE(e.find("tensor 'd' not found"), std::string::npos) << e;
  }

  // A tensor mapped to a shard that lacks it.
  Json bad = index;
  bad["weight_map"]["z"] = "diffusion_pytorch_model-00002-of-00002.safetensors";
  write_file(dir / "bad.safetensors.index.json", bad.dump());
  std::string e = error_of([&] { TensorSource::open(dir / "bad.safetensors.index.json"); });
  EXPECT_NE(e.find("bad.safetensors.index.json: tensor 'z' is mapped to"), std::string::npos) << e;
  EXPECT_NE(e.find("00002-of-00002.safetensors, which does not contain it"), std::string::npos)
      << e;

  // A shard file that is not there.
  bad = index;
  bad["weight_map"]["a"] = "gone.safetensors";
  write_file(dir / "gone.safetensors.index.json", bad.dump());
  e = error_of([&] { TensorSource::open(dir / "gone.safetensors.index.json"); });
  EXPECT_NE(e.find("shard 'gone.safetensors'"), std::string::npos) << e;

  // No weight_map at all.
  write_file(dir / "empty.safetensors.index.json", R"({"metadata": {}})");
  e = error_of([&] { TensorSource::open(dir / "empty.safetensors.index.json"); });
  EXPECT_NE(e.find("has no 'weight_map'"), std::string::npos) << e;

  // Each shard is validated: corrupt the second one.
  write_file(dir / "diffusion_pytorch_model-00002-of-00002.safetensors", raw_safetensors("{oops"));
  e = error_of([&] { TensorSource::open(dir.path()); });
  EXPECT_NE(e.find("00002-of-00002.safetensors: header is not valid JSON"), std::string::npos) << e;
}

TEST(Safetensors, FolderResolutionFollowsDiffusersOrder) {
  TempDir dir;
  std::string e = error_of([&] { TensorSource::open(dir.path()); });
  EXPECT_NE(e.find(dir.path().string() + ": no safetensors weights"), std::string::npos) << e;
  for (const char* name :
       {"diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.safetensors.index.json",
        "model.safetensors", "model.safetensors.index.json"}) {
    EXPECT_NE(e.find(name), std::string::npos) << "lists " << name << ": " << e;
  }

  save_safetensors(dir / "model.safetensors", {{"m", Tensor::full({1}, 2.0f)}});
  EXPECT_TRUE(TensorSource::open(dir.path()).has("m"));
  EXPECT_EQ(find_weights(dir.path()), dir / "model.safetensors");

  save_safetensors(dir / "diffusion_pytorch_model.safetensors", {{"d", Tensor::full({1}, 3.0f)}});
  const TensorSource src = TensorSource::open(dir.path());
  EXPECT_TRUE(src.has("d"));
  EXPECT_FALSE(src.has("m"));

  e = error_of([&] { TensorSource::open(dir / "absent.safetensors"); });
  EXPECT_NE(e.find("absent.safetensors: no such file"), std::string::npos) << e;
}

TEST(Safetensors, OpenFilesMergesAndRejectsDuplicates) {
  TempDir dir;
  save_safetensors(dir / "a.safetensors", {{"x", Tensor::full({1}, 1.0f)}});
  save_safetensors(dir / "b.safetensors", {{"y", Tensor::full({1}, 2.0f)}});
  save_safetensors(dir / "c.safetensors", {{"x", Tensor::full({1}, 3.0f)}});
  const TensorSource s = TensorSource::open_files({dir / "a.safetensors", dir / "b.safetensors"});
  EXPECT_EQ(s.names(), (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(s.load("y").to_vector(), std::vector<float>{2.0f});
  const std::string e = error_of([&] {
    TensorSource::open_files({dir / "a.safetensors", dir / "c.safetensors"});
  });
  EXPECT_NE(e.find("c.safetensors: tensor 'x' is also in"), std::string::npos) << e;
}

// ---------------------------------------------------------------- header validation (in process)

struct BadHeader {
  const char* label;
  std::string header;
  uint64_t data_bytes;
  const char* expect;  // substring of the message
};

TEST(Safetensors, ParseHeaderRejectsEachKindOfBadInput) {
  const std::string ok = R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  const std::vector<BadHeader> cases = {
      {"not an object", "[1,2]", 0, "header is not a JSON object"},
      {"malformed", "{\"a\":", 0, "header is not valid JSON"},
      {"empty", "", 0, "header is not valid JSON"},
      {"unknown dtype", R"({"w":{"dtype":"Q4","shape":[2],"data_offsets":[0,2]}})", 2,
       "tensor 'w' has unknown dtype 'Q4'"},
      {"dtype not string", R"({"w":{"dtype":4,"shape":[2],"data_offsets":[0,8]}})", 8,
       "tensor 'w' dtype is not a string"},
      {"seven dims", R"({"w":{"dtype":"U8","shape":[1,1,1,1,1,1,1],"data_offsets":[0,1]}})", 1,
       "tensor 'w' has 7 dims; at most 6"},
      {"negative dim", R"({"w":{"dtype":"U8","shape":[-1],"data_offsets":[0,1]}})", 1,
       "tensor 'w' shape has number -1"},
      {"float dim", R"({"w":{"dtype":"U8","shape":[1.0],"data_offsets":[0,1]}})", 1,
       "where a non-negative integer is expected"},
      {"shape not list", R"({"w":{"dtype":"U8","shape":3,"data_offsets":[0,3]}})", 3,
       "tensor 'w' shape is not a list"},
      {"one offset", R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[0]}})", 1,
       "data_offsets must be [begin, end]"},
      {"reversed", R"({"w":{"dtype":"U8","shape":[0],"data_offsets":[4,2]}})", 8,
       "end before they begin"},
      {"past end", R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 12,
       "run past the end of the data section (12 bytes"},
      {"size mismatch", R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}})", 16,
       "tensor 'w' F32[3] needs 12 bytes but its data_offsets [0, 16] span 16"},
      {"dim product overflow",
       R"({"w":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,16]}})", 16,
       "needs more than 2^64 bytes"},
      {"overlap", "{" + ok + R"(,"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12,
       "tensors 'a' [0, 8) and 'b' [4, 12) overlap"},
      {"duplicate name", "{" + ok + "," + ok + "}", 8, "header repeats the key 'a'"},
      {"duplicate field", R"({"w":{"dtype":"U8","dtype":"U8","shape":[1],"data_offsets":[0,1]}})",
       1, "header repeats the key 'dtype'"},
      {"missing field", R"({"w":{"dtype":"U8","shape":[1]}})", 1,
       "tensor 'w' has no 'data_offsets'"},
      {"extra field", R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":1}})", 1,
       "tensor 'w' has an unexpected field 'x'"},
      {"entry not object", R"({"w":[1,2]})", 0, "tensor 'w' is not an object"},
      {"metadata not object", R"({"__metadata__":"x"})", 0, "__metadata__ is not an object"},
      {"metadata value", R"({"__metadata__":{"k":1}})", 0,
       "__metadata__ entry 'k' is not a string"},
      {"too deep", R"({"w":{"dtype":"U8","shape":[[1]],"data_offsets":[0,1]}})", 1, "nests deeper"},
      {"invalid utf8", std::string("{\"w\xff\":{}}"), 0, "header is not valid UTF-8 (byte 3"},
      {"overlong utf8", std::string("{\"\xc0\xaf\":{}}"), 0, "not valid UTF-8"},
      {"surrogate utf8", std::string("{\"\xed\xa0\x80\":{}}"), 0, "not valid UTF-8"},
      {"control char in name", "{\"a\\nb\":{\"dtype\":\"Q\",\"shape\":[],\"data_offsets\":[0,1]}}",
       1, "tensor 'a\\x0ab' has unknown dtype"},
  };
  for (const auto& c : cases) {
    const std::string e = error_of(
        [&] { parse_header(c.header.data(), c.header.size(), c.data_bytes, "f.safetensors"); });
    EXPECT_EQ(e.rfind("f.safetensors: ", 0), 0u) << c.label << ": " << e;
    EXPECT_NE(e.find(c.expect), std::string::npos) << c.label << ": " << e;
    EXPECT_EQ(e.find('\n'), std::string::npos) << c.label << " message is one line: " << e;
  }
}

TEST(Safetensors, ParseHeaderAcceptsZeroSizeTensorsGapsAndPadding) {
  const std::string header =
      R"({"__metadata__":{"format":"pt"},)"
      R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
      R"("z":{"dtype":"F32","shape":[0,5],"data_offsets":[4,4]},)"  // empty, inside a's range
      R"("e":{"dtype":"BF16","shape":[0],"data_offsets":[8,8]},)"
      R"("b":{"dtype":"U8","shape":[3],"data_offsets":[12,15]},)"  // a gap before b
      R"("s":{"dtype":"F64","shape":[],"data_offsets":[16,24]}})"
      "     ";
  std::map<std::string, std::string> meta;
  const auto tensors = parse_header(header.data(), header.size(), 24, "f", &meta);
  ASSERT_EQ(tensors.size(), 5u);
  EXPECT_EQ(meta.at("format"), "pt");
  std::map<std::string, TensorInfo> by_name;
  for (const auto& t : tensors) by_name[t.name] = t;
  EXPECT_EQ(by_name["z"].shape, (core::Shape{0, 5}));
  EXPECT_EQ(by_name["s"].shape, core::Shape{});
  EXPECT_EQ(by_name["s"].dtype, DType::F64);
  EXPECT_EQ(by_name["b"].begin, 12u);
  EXPECT_EQ(by_name["b"].end, 15u);
}

TEST(Safetensors, FileImageChecks) {
  std::string e = error_of([] { parse_file_image("abc", 3, "t.safetensors"); });
  EXPECT_NE(e.find("t.safetensors: file is 3 bytes, too short"), std::string::npos) << e;
  std::string image = raw_safetensors("{}", "", 1000);
  e = error_of([&] { parse_file_image(image.data(), image.size(), "t.safetensors"); });
  EXPECT_NE(e.find("header length 1000 runs past the end of the file (10 bytes"), std::string::npos)
      << e;
  image = raw_safetensors("{}", "", kMaxHeaderBytes + 1);
  e = error_of([&] { parse_file_image(image.data(), image.size(), "t.safetensors"); });
  EXPECT_NE(e.find("exceeds the limit"), std::string::npos) << e;
  image = raw_safetensors("{}", "", UINT64_MAX - 1);
  e = error_of([&] { parse_file_image(image.data(), image.size(), "t.safetensors"); });
  EXPECT_NE(e.find("exceeds the limit"), std::string::npos) << e;
  image = raw_safetensors(R"({"x":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}})", "ab");
  const FileLayout layout = parse_file_image(image.data(), image.size(), "t");
  EXPECT_EQ(layout.data_offset, image.size() - 2);
  EXPECT_EQ(layout.data_bytes, 2u);
  ASSERT_EQ(layout.tensors.size(), 1u);
}

TEST(Safetensors, OpenNamesTheFileInErrors) {
  TempDir dir;
  const fs::path p = dir / "cut.safetensors";
  write_file(p, "abc");
  std::string e = error_of([&] { SafetensorsFile::open(p); });
  EXPECT_EQ(e.rfind(p.string() + ": file is 3 bytes", 0), 0u) << e;
  write_file(p, "");
  e = error_of([&] { SafetensorsFile::open(p); });
  EXPECT_EQ(e.rfind(p.string() + ": file is 0 bytes", 0), 0u) << e;
  e = error_of([&] { SafetensorsFile::open(dir / "nope.safetensors"); });
  EXPECT_NE(e.find("nope.safetensors: cannot open"), std::string::npos) << e;
  e = error_of([&] { SafetensorsFile::open(dir.path()); });
  EXPECT_NE(e.find(": not a regular file"), std::string::npos) << e;
  const SafetensorsFile f = [&] {
    save_safetensors(p, {{"x", Tensor::full({1}, 1.0f)}});
    return SafetensorsFile::open(p);
  }();
  e = error_of([&] { f.view("y"); });
  EXPECT_EQ(e, p.string() + ": tensor 'y' not found");
}

TEST(Safetensors, RealFixtureHeaderMatchesAnIndependentParse) {
  const fs::path path =
      testing::test_data("transformer/pixart_sigma/diffusion_pytorch_model.safetensors");
  const std::string file = read_file(path);
  uint64_t n = 0;
  const Json header = independent_header(file, &n);
  const TensorSource src = TensorSource::open(path.parent_path());
  size_t count = 0;
  for (const auto& [name, e] : header.items()) {
    if (name == "__metadata__") continue;
    ++count;
    ASSERT_TRUE(src.has(name)) << name;
    EXPECT_EQ(src.info(name).shape, e["shape"].get<core::Shape>()) << name;
    EXPECT_EQ(std::string(core::dtype_name(src.info(name).dtype)), e["dtype"].get<std::string>());
  }
  EXPECT_EQ(src.names().size(), count);
  // Spot-check values against the raw bytes.
  const std::string name = src.names().front();
  const Json& e = header[name];
  const uint64_t b = e["data_offsets"][0], en = e["data_offsets"][1];
  std::vector<float> expected((en - b) / 4);
  std::memcpy(expected.data(), file.data() + 8 + n + b, en - b);
  EXPECT_EQ(src.load(name).to_vector(), expected);
}

}  // namespace
}  // namespace paradit::io
