#pragma once
// Helpers shared by the video VAE tests: fixture paths and loading, the relative L2 error, a
// temporary folder and the message of an expected Error.

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/safetensors.h"

namespace paradit::test {

namespace fs = std::filesystem;

inline fs::path vae_case_dir(const std::string& name) {
  return fs::path(PARADIT_TEST_DATA) / "vae" / name;
}

inline core::Tensor load_fixture(const std::string& name, const std::string& file,
                                 const std::string& tensor) {
  return io::TensorSource::open(vae_case_dir(name) / file).load(tensor).clone();
}

// ‖a − b‖₂ / ‖b‖₂ in double; a shape mismatch fails the test.
inline double rel_err(const core::Tensor& a, const core::Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  if (a.shape() != b.shape()) return 1e30;
  const auto x = a.to_vector(), y = b.to_vector();
  double num = 0, den = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    num += (double(x[i]) - y[i]) * (double(x[i]) - y[i]);
    den += double(y[i]) * y[i];
  }
  return std::sqrt(num / den);
}

// A folder under the temp dir, removed at scope exit.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& tag)
      : path(fs::temp_directory_path() /
             ("paradit_video_vae_" + tag + "_" + std::to_string(::getpid()))) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// The message of the paradit::Error that f throws ("" and a test failure when none).
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected a paradit::Error";
  return "";
}

}  // namespace paradit::test
