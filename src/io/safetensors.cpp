// safetensors files: memory mapping, sharded sets, lazy typed loads, and the writer. The header
// parser and its checks are in safetensors_header.cpp.
#include "io/safetensors.h"

#include "io/atomic_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <set>

#include "io/diffusers.h"

namespace paradit::io {

namespace fs = std::filesystem;

namespace {

std::string errno_text() { return std::strerror(errno); }

// Closes a file descriptor on every exit path of open().
struct FdGuard {
  int fd = -1;
  ~FdGuard() {
    if (fd >= 0) ::close(fd);
  }
};

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// f16 → f32 for a contiguous block; Tensor::to has no fast path for f16 and checkpoints in f16
// hold billions of elements.
core::Tensor f16_to_f32_tensor(const core::Tensor& src) {
  core::Tensor out = core::Tensor::empty(src.shape(), core::DType::F32);  // same shape as src
  const auto* s = static_cast<const uint16_t*>(src.raw_data());
  float* d = out.data<float>();
  const int64_t n = src.numel();
#pragma omp parallel for if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) d[i] = core::f16_to_f32(s[i]);
  return out;
}

}  // namespace

const std::vector<std::string>& weight_file_names() {
  static const std::vector<std::string> kNames = {
      "diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.safetensors.index.json",
      "model.safetensors", "model.safetensors.index.json"};
  return kNames;
}

std::optional<fs::path> find_weights(const fs::path& dir) {
  for (const auto& name : weight_file_names()) {
    std::error_code ec;
    if (fs::is_regular_file(dir / name, ec)) return dir / name;
  }
  return std::nullopt;
}

// ---------------------------------------------------------------- SafetensorsFile

SafetensorsFile SafetensorsFile::open(const fs::path& path) {
  const std::string where = path.string();
  FdGuard guard;
  guard.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (guard.fd < 0) fail(where, ": cannot open (", errno_text(), ")");
  struct stat st {};
  if (::fstat(guard.fd, &st) != 0) fail(where, ": cannot stat (", errno_text(), ")");
  if (!S_ISREG(st.st_mode)) fail(where, ": not a regular file");
  const auto size = static_cast<uint64_t>(st.st_size);

  // Check the length prefix before mapping, so a short or foreign file fails fast.
  unsigned char prefix[8] = {};
  const ssize_t got = ::pread(guard.fd, prefix, sizeof(prefix), 0);
  if (got < 0) fail(where, ": cannot read (", errno_text(), ")");
  if (size < 8 || got < 8) {
    parse_file_image(reinterpret_cast<const char*>(prefix), static_cast<size_t>(got), where);
  }
  check_header_length(prefix, size, where);

  void* addr = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, guard.fd, 0);
  if (addr == MAP_FAILED) fail(where, ": cannot memory-map ", size, " bytes (", errno_text(), ")");
  SafetensorsFile file;
  file.mapping_ = std::shared_ptr<void>(addr, [size](void* p) { ::munmap(p, size); });
  const char* base = static_cast<const char*>(addr);
  FileLayout layout = parse_file_image(base, size, where);

  file.path_ = path;
  file.file_bytes_ = size;
  file.data_ = base + layout.data_offset;
  // Read-only memory: the const_cast only satisfies Storage's type; views must not be written.
  file.storage_ =
      core::Storage::wrap(const_cast<char*>(file.data_), layout.data_bytes, file.mapping_);
  file.tensors_ = std::move(layout.tensors);
  file.metadata_ = std::move(layout.metadata);
  for (size_t i = 0; i < file.tensors_.size(); ++i) file.index_[file.tensors_[i].name] = i;
  return file;
}

const TensorInfo& SafetensorsFile::info(const std::string& name) const {
  const auto it = index_.find(name);
  if (it == index_.end()) fail(path_.string(), ": tensor '", name, "' not found");
  return tensors_[it->second];
}

core::Tensor SafetensorsFile::view(const std::string& name) const {
  const TensorInfo& t = info(name);
  core::Tensor v = core::Tensor::from_storage(storage_, t.begin, t.shape, t.dtype);
  // A header whose length is not a multiple of 8 can leave data misaligned for its type;
  // reading a misaligned float is undefined behaviour, so such tensors are copied.
  const auto address = reinterpret_cast<uintptr_t>(data_ + t.begin);
  if (address % core::dtype_size(t.dtype) != 0) return v.clone();
  return v;
}

// ---------------------------------------------------------------- TensorSource

TensorSource TensorSource::open(const fs::path& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    if (auto found = find_weights(path)) return open(*found);
    std::string looked;
    for (const auto& name : weight_file_names()) looked += (looked.empty() ? "" : ", ") + name;
    fail(path.string(), ": no safetensors weights in this folder (looked for ", looked, ")");
  }
  if (!fs::exists(path, ec)) fail(path.string(), ": no such file or folder");

  TensorSource source;
  source.where_ = path.string();
  if (!ends_with(path.filename().string(), ".index.json")) {
    source.files_.push_back(SafetensorsFile::open(path));
    for (const auto& t : source.files_[0].tensors()) source.owner_[t.name] = 0;
    return source;
  }

  // Sharded: {"weight_map": {tensor: shard file}}, shard names relative to the index.
  const Json index = read_json(path);
  if (!index.is_object() || !index.contains("weight_map")) {
    fail(source.where_, ": sharded index has no 'weight_map'");
  }
  const Json& map = index["weight_map"];
  if (!map.is_object()) {
    fail(source.where_, ": 'weight_map' is not an object (found ", map.type_name(), ")");
  }
  std::map<std::string, std::vector<std::string>> by_shard;  // shard file → tensor names
  for (const auto& [name, shard] : map.items()) {
    if (!shard.is_string()) {
      fail(source.where_, ": weight_map entry '", name, "' is not a file name (found ",
           shard.type_name(), ")");
    }
    by_shard[shard.get<std::string>()].push_back(name);
  }
  for (const auto& [shard, names] : by_shard) {
    const fs::path shard_path = path.parent_path() / shard;
    if (!fs::is_regular_file(shard_path, ec)) {
      fail(source.where_, ": shard '", shard, "' (for tensor '", names.front(),
           "') is missing: no file ", shard_path.string());
    }
    SafetensorsFile file = SafetensorsFile::open(shard_path);
    for (const auto& name : names) {
      if (!file.contains(name)) {
        fail(source.where_, ": tensor '", name, "' is mapped to ", shard_path.string(),
             ", which does not contain it");
      }
      source.owner_[name] = source.files_.size();
    }
    source.files_.push_back(std::move(file));
  }
  return source;
}

TensorSource TensorSource::open_files(const std::vector<fs::path>& paths) {
  PARADIT_CHECK(!paths.empty(), "TensorSource::open_files: no files given");
  TensorSource source;
  for (const auto& p : paths) {
    SafetensorsFile file = SafetensorsFile::open(p);
    for (const auto& t : file.tensors()) {
      const auto [it, inserted] = source.owner_.emplace(t.name, source.files_.size());
      if (!inserted) {
        fail(p.string(), ": tensor '", t.name, "' is also in ",
             source.files_[it->second].path().string());
      }
    }
    source.where_ += (source.where_.empty() ? "" : ", ") + p.string();
    source.files_.push_back(std::move(file));
  }
  return source;
}

bool TensorSource::has(const std::string& name) const { return owner_.count(name) != 0; }

const TensorInfo& TensorSource::info(const std::string& name) const {
  const auto it = owner_.find(name);
  if (it == owner_.end()) fail(where_, ": tensor '", name, "' not found");
  return files_[it->second].info(name);
}

std::vector<std::string> TensorSource::names() const {
  std::vector<std::string> out;
  out.reserve(owner_.size());
  for (const auto& [name, file] : owner_) out.push_back(name);
  return out;
}

void SafetensorsFile::release(const std::string& name) const {
  const TensorInfo& t = info(name);
  const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto base = reinterpret_cast<uintptr_t>(mapping_.get());
  const auto begin = reinterpret_cast<uintptr_t>(data_ + t.begin);
  const auto end = reinterpret_cast<uintptr_t>(data_ + t.end);
  const uintptr_t lo = std::max(base, begin / page * page);
  const uintptr_t hi = std::min(base + file_bytes_, (end + page - 1) / page * page);
  // Advice only: a failure leaves the pages resident, nothing else.
  if (hi > lo) ::madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DONTNEED);
}

void TensorSource::release(const std::string& name) const {
  const auto it = owner_.find(name);
  if (it == owner_.end()) fail(where_, ": tensor '", name, "' not found");
  files_[it->second].release(name);
}

core::Tensor TensorSource::view(const std::string& name) const {
  const auto it = owner_.find(name);
  if (it == owner_.end()) fail(where_, ": tensor '", name, "' not found");
  return files_[it->second].view(name);
}

core::Tensor TensorSource::load(const std::string& name, core::DType dtype) const {
  core::Tensor stored = view(name);
  if (stored.dtype() == dtype) return stored;
  if (stored.dtype() == core::DType::F16 && dtype == core::DType::F32) {
    return f16_to_f32_tensor(stored);
  }
  try {
    return stored.to(dtype);
  } catch (const Error& e) {
    fail(files_[owner_.at(name)].path().string(), ": tensor '", name, "' (",
         core::dtype_name(stored.dtype()), ") cannot be loaded as ", core::dtype_name(dtype), ": ",
         e.what());
  }
}

std::string TensorSource::describe() const { return where_; }

// ---------------------------------------------------------------- writer

void save_safetensors(const fs::path& path,
                      const std::vector<std::pair<std::string, core::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  const std::string where = path.string();
  std::set<std::string> seen;
  for (const auto& [name, t] : tensors) {
    if (name == "__metadata__") fail(where, ": '__metadata__' cannot be a tensor name");
    if (!seen.insert(name).second) fail(where, ": tensor '", name, "' is given twice");
    if (!t.defined()) fail(where, ": tensor '", name, "' is undefined");
    if (t.device() != core::Device::CPU) {
      fail(where, ": tensor '", name, "' is on ", core::device_name(t.device()),
           "; copy it to the host first");
    }
  }

  // Widest types first (then by name), so every offset is a multiple of its item size once the
  // header is padded to 8 bytes — what the reference writer does to keep loads aligned.
  std::vector<size_t> order(tensors.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const size_t sa = tensors[a].second.itemsize(), sb = tensors[b].second.itemsize();
    return sa != sb ? sa > sb : tensors[a].first < tensors[b].first;
  });

  Json header = Json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (size_t i : order) {
    const auto& [name, t] = tensors[i];
    const uint64_t nbytes = t.nbytes();
    header[name] = {{"dtype", std::string(core::dtype_name(t.dtype()))},
                    {"shape", t.shape()},
                    {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');

  AtomicFile file(path, "safetensors file");  // a temporary beside the target, renamed at the end
  FILE* f = std::fopen(file.temp_path().c_str(), "wb");
  if (!f) fail(where, ": cannot write (", errno_text(), ")");
  auto abandon = [&](const std::string& why) {
    std::fclose(f);
    fail(where, ": cannot write (", why, ")");
  };
  unsigned char prefix[8];
  for (int i = 0; i < 8; ++i) prefix[i] = static_cast<unsigned char>(text.size() >> (8 * i));
  if (std::fwrite(prefix, 1, 8, f) != 8 ||
      std::fwrite(text.data(), 1, text.size(), f) != text.size()) {
    abandon(errno_text());
  }
  for (size_t i : order) {
    const core::Tensor c = tensors[i].second.contiguous();  // strided input → packed bytes
    if (c.nbytes() && std::fwrite(c.raw_data(), 1, c.nbytes(), f) != c.nbytes()) {
      abandon(errno_text());
    }
  }
  if (std::fflush(f) != 0) abandon(errno_text());
  if (std::fclose(f) != 0) fail(where, ": cannot write (", errno_text(), ")");
  file.commit();
}

}  // namespace paradit::io
