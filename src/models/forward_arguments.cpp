#include "models/forward_arguments.h"

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "models/z_image/z_image.h"

namespace paradit::models {

namespace {

// Flattens a rectangular numeric JSON array; shape from the nesting. false when not numeric.
bool flatten(const nlohmann::json& j, size_t depth, core::Shape& shape, std::vector<double>& out,
             bool& integral, const std::string& where, const std::string& name) {
  if (j.is_number()) {
    PARADIT_CHECK(depth == shape.size(), where, ": __metadata__ argument '", name,
                  "' is a ragged array");
    integral = integral && j.is_number_integer();
    out.push_back(j.get<double>());
    return true;
  }
  if (!j.is_array()) return false;
  if (depth == shape.size()) shape.push_back(static_cast<int64_t>(j.size()));
  PARADIT_CHECK(depth < shape.size() && shape[depth] == static_cast<int64_t>(j.size()), where,
                ": __metadata__ argument '", name, "' is a ragged array");
  for (const nlohmann::json& e : j) {
    if (!flatten(e, depth + 1, shape, out, integral, where, name)) return false;
  }
  return true;
}

}  // namespace

NamedTensors metadata_arguments(const std::map<std::string, std::string>& metadata,
                                const std::string& where) {
  NamedTensors out;
  for (const auto& [name, text] : metadata) {
    if (name == "format") continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(text);
    } catch (const std::exception&) {
      continue;  // a plain string: not a forward argument
    }
    if (!j.is_array() || j.empty()) continue;
    core::Shape shape;
    std::vector<double> values;
    bool integral = true;
    if (!flatten(j, 0, shape, values, integral, where, name)) continue;
    if (integral) {
      std::vector<int64_t> v(values.begin(), values.end());
      out[name] = core::Tensor::from_vector_i64(v, shape);
    } else {
      std::vector<float> v(values.begin(), values.end());
      out[name] = core::Tensor::from_vector(v, shape);
    }
  }
  return out;
}

bool has_list_arguments(const NamedTensors& inputs) {
  for (const auto& [name, t] : inputs) {
    if (name.size() > 2 && name.compare(name.size() - 2, 2, ".0") == 0) return true;
  }
  return false;
}

NamedTensors batched_arguments(const Transformer& model, const NamedTensors& inputs) {
  if (!has_list_arguments(inputs)) return inputs;
  if (model.class_name() == "ZImageTransformer2DModel") {
    return z_image::ZImageTransformer2DModel::batch_list_inputs(inputs);
  }
  std::string names;
  for (const auto& [name, t] : inputs) names += " " + name;
  fail(model.class_name(),
       ": list arguments (name.0, name.1 …) are not forward arguments of this "
       "model (inputs:",
       names, ")");
}

std::vector<std::pair<std::string, core::Tensor>> list_outputs(const core::Tensor& sample) {
  std::vector<std::pair<std::string, core::Tensor>> out;
  for (int64_t i = 0; i < sample.dim(0); ++i) {
    out.emplace_back("sample." + std::to_string(i), sample.select(0, i));
  }
  return out;
}

}  // namespace paradit::models
