#include "models/common/weights.h"

namespace paradit::models::common {

core::Tensor CheckpointWeights::get(const std::string& full, const core::Shape& expected,
                                    core::DType dtype) const {
  if (!source_->has(full)) {
    fail(source_->describe(), ": tensor '", full, "' is missing (the architecture expects ",
         core::shape_str(expected), ")");
  }
  const auto& info = source_->info(full);
  if (info.shape != expected) {
    fail(source_->describe(), ": tensor '", full, "' has shape ", core::shape_str(info.shape),
         ", the architecture expects ", core::shape_str(expected));
  }
  return source_->load(full, dtype);
}

core::Tensor WeightProvider::get_slice(const std::string& name, const core::Shape& expected,
                                      core::DType dtype, int dim, int64_t begin,
                                      int64_t end) const {
  return get(name, expected, dtype).slice(dim, begin, end).contiguous();
}

core::Tensor CheckpointWeights::get_slice(const std::string& full, const core::Shape& expected,
                                          core::DType dtype, int dim, int64_t begin,
                                          int64_t end) const {
  const bool whole = dim < static_cast<int>(expected.size()) && begin == 0 && end == expected[dim];
  if (whole || !source_->has(full) || source_->info(full).shape != expected) {
    return get(full, expected, dtype);  // one process: the usual view (or the usual error)
  }
  // A view of the mapped file. Rows (dim 0): a contiguous block, only its pages are read.
  // Columns: a strided copy reads every row, so the matrix's pages are released after it.
  core::Tensor share = source_->view(full).slice(dim, begin, end).to(dtype).contiguous();
  if (dim != 0) source_->release(full);  // share is a copy: a strided slice or converted
  return share;
}

WeightScope::WeightScope(const WeightProvider& provider, std::string prefix,
                         const core::Placement& place)
    : provider_(&provider), prefix_(std::move(prefix)), place_(place) {}

WeightScope WeightScope::operator/(const std::string& child) const {
  WeightScope s = *this;
  s.prefix_ = full_name(child);
  return s;
}

std::string WeightScope::full_name(const std::string& name) const {
  return prefix_.empty() ? name : prefix_ + "." + name;
}

bool WeightScope::has(const std::string& name) const { return provider_->has(full_name(name)); }

core::Tensor WeightScope::matrix(const std::string& name, const core::Shape& expected) const {
  return provider_->get(full_name(name), expected, place_.dtype).to_device(place_.device);
}

core::Tensor WeightScope::vector(const std::string& name, const core::Shape& expected) const {
  return provider_->get(full_name(name), expected, core::DType::F32).to_device(place_.device);
}

core::Tensor WeightScope::matrix_slice(const std::string& name, const core::Shape& expected,
                                      int dim, int64_t begin, int64_t end) const {
  return provider_->get_slice(full_name(name), expected, place_.dtype, dim, begin, end)
      .to_device(place_.device);
}

core::Tensor WeightScope::vector_slice(const std::string& name, const core::Shape& expected,
                                      int64_t begin, int64_t end) const {
  return provider_->get_slice(full_name(name), expected, core::DType::F32, 0, begin, end)
      .to_device(place_.device);
}

core::Tensor WeightScope::param(const std::string& name, const core::Shape& expected) const {
  return provider_->get(full_name(name), expected, place_.activation_dtype())
      .to_device(place_.device);
}

void Linear::bind(const WeightScope& w, int64_t in, int64_t out, bool has_bias) {
  weight = w.matrix("weight", {out, in});
  bias = has_bias ? w.vector("bias", {out}) : core::Tensor{};
}

void Linear::bind_columns(const WeightScope& w, int64_t in, int64_t out, int64_t begin,
                          int64_t end, bool has_bias) {
  weight = w.matrix_slice("weight", {out, in}, 0, begin, end);            // (end − begin, in)
  bias = has_bias ? w.vector_slice("bias", {out}, begin, end) : core::Tensor{};  // (end − begin)
}

void Linear::bind_rows(const WeightScope& w, int64_t in, int64_t out, int64_t begin, int64_t end,
                       bool with_bias) {
  weight = w.matrix_slice("weight", {out, in}, 1, begin, end);  // (out, end − begin)
  bias = with_bias ? w.vector("bias", {out}) : core::Tensor{};
}

void LayerNorm::bind(const WeightScope& w, int64_t dim, float eps_, bool affine, bool has_bias) {
  eps = eps_;
  weight = affine ? w.vector("weight", {dim}) : core::Tensor{};
  bias = affine && has_bias ? w.vector("bias", {dim}) : core::Tensor{};
}

void RMSNorm::bind(const WeightScope& w, int64_t dim, float eps_, bool affine) {
  eps = eps_;
  weight = affine ? w.vector("weight", {dim}) : core::Tensor{};
}

}  // namespace paradit::models::common
