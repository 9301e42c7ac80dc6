#pragma once
// safetensors: memory-mapped reading with strict validation, sharded checkpoints, writing.
//
// Format: u64 little-endian header length N, N bytes of UTF-8 JSON
// {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}},
// then the data; offsets are relative to the end of the header.

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace paradit::io {

struct TensorInfo {
  std::string name;
  core::DType dtype = core::DType::F32;
  core::Shape shape;
  uint64_t begin = 0;  // byte offsets relative to the data section
  uint64_t end = 0;
};

// Largest header accepted (bytes); anything larger is rejected as malformed.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

// Parses and validates a header (the JSON bytes) against a data section of `data_bytes`; the
// tensors come back sorted by name.
// Throws paradit::Error("<where>: <problem>") on anything invalid. Exposed for the fuzzer.
std::vector<TensorInfo> parse_header(const char* json, size_t json_bytes, uint64_t data_bytes,
                                     const std::string& where,
                                     std::map<std::string, std::string>* metadata = nullptr);

// A whole file image checked: the 8-byte length, the header (parse_header) and the data section.
struct FileLayout {
  std::vector<TensorInfo> tensors;  // sorted by name
  std::map<std::string, std::string> metadata;
  uint64_t data_offset = 0;  // where the data section starts: 8 + header length
  uint64_t data_bytes = 0;   // size of the data section
};
// Parses an image held in memory (SafetensorsFile::open passes its mapping; the fuzzer its input).
FileLayout parse_file_image(const char* bytes, size_t size, const std::string& where);
// Checks the 8-byte length prefix of a file of `file_bytes` bytes; returns the header length.
uint64_t check_header_length(const unsigned char prefix[8], uint64_t file_bytes,
                             const std::string& where);

// Weight file names tried in a component folder, in the order diffusers/transformers try them.
const std::vector<std::string>& weight_file_names();
// The first of weight_file_names() present in `dir`, or nullopt.
std::optional<std::filesystem::path> find_weights(const std::filesystem::path& dir);

// One .safetensors file, memory-mapped. Copies share the mapping.
class SafetensorsFile {
 public:
  static SafetensorsFile open(const std::filesystem::path& path);

  const std::filesystem::path& path() const { return path_; }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  bool contains(const std::string& name) const { return index_.count(name) != 0; }
  const TensorInfo& info(const std::string& name) const;  // Error naming file + tensor if absent
  // View of the mapped bytes in the stored dtype; keeps the mapping alive. Zero-copy when the
  // tensor's address suits its dtype's alignment, else an aligned copy. Mapped views are
  // read-only memory: writing through one faults (copy first: clone()).
  core::Tensor view(const std::string& name) const;
  // Drops this process's resident pages of the tensor's bytes (whole pages, so its neighbours'
  // edges too: madvise DONTNEED on the read-only private mapping); they stay readable and fault
  // back in from the file. For a tensor-parallel rank that copied its share out of a matrix.
  void release(const std::string& name) const;
  uint64_t file_bytes() const { return file_bytes_; }

 private:
  std::filesystem::path path_;
  std::shared_ptr<void> mapping_;
  const char* data_ = nullptr;              // start of the data section
  std::shared_ptr<core::Storage> storage_;  // the data section, shared by every view
  uint64_t file_bytes_ = 0;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// A set of tensors from one file, a sharded set (`*.safetensors.index.json`), or several files.
// Reads are lazy: only the tensors asked for are touched.
class TensorSource {
 public:
  // `path`: a .safetensors file, a *.safetensors.index.json, or a component folder (then the
  // weight file is resolved as diffusers does: diffusion_pytorch_model[.safetensors|
  // .safetensors.index.json], model[.safetensors|.safetensors.index.json]).
  static TensorSource open(const std::filesystem::path& path);
  // Several .safetensors files as one set; a tensor name present in two of them is an Error.
  static TensorSource open_files(const std::vector<std::filesystem::path>& paths);

  bool has(const std::string& name) const;
  const TensorInfo& info(const std::string& name) const;
  std::vector<std::string> names() const;  // sorted
  // The tensor in `dtype` (F32 by default): a zero-copy view when the stored dtype matches,
  // else a converted copy. Error naming the file and tensor if absent.
  core::Tensor load(const std::string& name, core::DType dtype = core::DType::F32) const;
  // The stored dtype, zero-copy.
  core::Tensor view(const std::string& name) const;
  // SafetensorsFile::release of the file that holds it.
  void release(const std::string& name) const;
  std::string describe() const;  // the file or index path, for messages
  const std::vector<SafetensorsFile>& files() const { return files_; }

 private:
  std::string where_;
  std::vector<SafetensorsFile> files_;
  std::map<std::string, size_t> owner_;  // tensor name → index into files_
};

// Writes tensors (any dtype, any strides) with optional metadata. Written to a temporary file
// beside `path` and renamed, so a failed write never leaves a partial file.
void save_safetensors(const std::filesystem::path& path,
                      const std::vector<std::pair<std::string, core::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

}  // namespace paradit::io
