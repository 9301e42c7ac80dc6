#include "pipelines/memory_estimate.h"

#include <algorithm>
#include <cstdio>
#include <utility>

#include "comm/process_mesh.h"
#include "io/safetensors.h"
#include "models/transformer.h"
#include "parallel/pipefusion.h"
#include "parallel/sequence.h"
#include "pipelines/pipeline.h"

namespace paradit::pipelines {

namespace {

// Bytes a tensor of `shape` takes once bound: matrices in the placement's dtype, vectors F32
// (common::WeightScope).
uint64_t held_bytes(const core::Shape& shape, const core::Placement& place) {
  const core::DType t = shape.size() >= 2 ? place.dtype : core::DType::F32;
  return static_cast<uint64_t>(core::shape_numel(shape)) * core::dtype_size(t);
}

uint64_t folder_bytes(const std::filesystem::path& dir, const core::Placement& place) {
  if (!io::find_weights(dir)) return 0;
  const io::TensorSource source = io::TensorSource::open(dir);
  uint64_t n = 0;
  for (const std::string& name : source.names()) n += held_bytes(source.info(name).shape, place);
  return n;
}

// Whether tensor parallelism splits the tensor `name` (the attention's q/k/v/out and the MLP's
// two matrices, as the DiT family binds them; their biases but the row-parallel ones).
bool tensor_parallel_split(const std::string& name) {
  const auto has = [&](const char* part) { return name.find(part) != std::string::npos; };
  const bool bias = name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0;
  if (has(".to_q.") || has(".to_k.") || has(".to_v.") || has(".ff.net.0.proj.")) return true;
  return (has(".to_out.0.") || has(".ff.net.2.")) && !bias;
}

}  // namespace

MemoryEstimate estimate_memory(const std::filesystem::path& transformer_dir,
                               const std::vector<std::filesystem::path>& other_dirs,
                               const parallel::ParallelConfig& layout,
                               const EstimateInputs& in) {
  layout.validate();
  const io::Config config = io::Config::load(transformer_dir / "config.json");
  const std::string cls = config.class_name();
  PARADIT_CHECK(layout.tp == 1 || cls == "DiTTransformer2DModel" ||
                    (cls == "Transformer2DModel" &&
                     config.get_string("norm_type", "") == "ada_norm_zero"),
                config.where(), ": --tensor_parallel_degree ", layout.tp,
                " is not supported yet for ", cls, " (supported: DiTTransformer2DModel)");
  MemoryEstimate e;
  e.layout = layout.degrees().str();
  e.batch = in.batch;
  e.image_tokens = in.image_tokens;
  e.text_tokens = in.text_tokens;
  // Sizes from the config (diffusers' names; Z-Image's own).
  if (config.has("n_heads")) {
    e.heads = config.get_int("n_heads", 1);
    e.hidden = config.get_int("dim", 0);
  } else {
    e.heads = config.get_int("num_attention_heads", 1);
    e.hidden = e.heads * config.get_int("attention_head_dim", 64);
  }
  const int64_t head_dim = e.heads > 0 ? e.hidden / e.heads : 0;
  if (config.has("ffn_dim")) {
    e.mlp = config.get_int("ffn_dim", 4 * e.hidden);
  } else {
    e.mlp = static_cast<int64_t>(config.get_float("mlp_ratio", 4.0) * static_cast<double>(e.hidden));
  }

  // Transformer weights: every tensor, and per PipeFusion layer (the layers' parameter counts
  // are the costs the pipeline balances its stages by).
  const io::TensorSource source = io::TensorSource::open(transformer_dir);
  const std::vector<std::string> prefixes = models::pipeline_layer_prefixes(config);
  std::vector<uint64_t> layer_bytes(prefixes.size(), 0);
  std::vector<double> costs(prefixes.size(), 0.0);
  uint64_t shared = 0;  // outside the layers: every stage holds it
  for (const std::string& name : source.names()) {
    const core::Shape& shape = source.info(name).shape;
    const uint64_t whole = held_bytes(shape, in.place);
    e.transformer_bytes += whole;
    const int tp = layout.tp;
    const uint64_t b = tp > 1 && tensor_parallel_split(name) ? whole / tp : whole;
    bool in_layer = false;
    for (size_t i = 0; i < prefixes.size() && !in_layer; ++i) {
      const std::string p = prefixes[i] + ".";
      if (name.compare(0, p.size(), p) != 0) continue;
      layer_bytes[i] += b;
      costs[i] += static_cast<double>(core::shape_numel(shape));
      in_layer = true;
    }
    if (!in_layer) shared += b;
  }
  for (const auto& dir : other_dirs) e.other_weights += folder_bytes(dir, in.place);

  const comm::MeshDegrees d = layout.degrees();
  std::vector<std::pair<int64_t, int64_t>> stages = {{0, static_cast<int64_t>(prefixes.size())}};
  if (d.pp > 1) {
    PARADIT_CHECK(!prefixes.empty(), config.where(), ": PipeFusion is not supported for ",
                  config.class_name());
    stages = parallel::balance_stages(costs, d.pp);
  }
  const int P = d.ring * d.ulysses;
  const int64_t act = static_cast<int64_t>(core::dtype_size(in.place.activation_dtype()));
  const int64_t b = std::max<int64_t>(1, in.batch / (d.cfg * d.dp));
  const int64_t n_img = parallel::padded_length(in.image_tokens, P) / P;
  const int64_t n_txt = in.text_tokens % P == 0 ? in.text_tokens / P : in.text_tokens;
  const int64_t n = n_img + n_txt;
  for (int r = 0; r < d.product(); ++r) {
    const auto c = comm::ProcessMesh::coords_of(d, r);
    RankMemory m;
    m.rank = r;
    m.stage = c[static_cast<int>(comm::MeshDim::kPp)];
    m.heads = parallel::ulysses_heads(e.heads / d.tp, d.ulysses,
                                      c[static_cast<int>(comm::MeshDim::kUlysses)])
                  .count;
    const auto [lo, hi] = stages[static_cast<size_t>(m.stage)];
    m.weights = shared;
    for (int64_t i = lo; i < hi; ++i) m.weights += layer_bytes[static_cast<size_t>(i)];
    // q, k, v, the attention output and the MLP hidden are split by tensor parallelism.
    m.activations =
        static_cast<uint64_t>(b * n * (2 * e.hidden + (4 * e.hidden + e.mlp) / d.tp) * act);
    const int64_t kv_heads = m.heads * head_dim;  // K/V columns this rank attends with
    if (d.ulysses > 1) m.kv += static_cast<uint64_t>(2 * b * d.ulysses * n * kv_heads * act);
    if (d.ring > 1) m.kv += static_cast<uint64_t>(4 * b * d.ulysses * n * kv_heads * act);
    if (d.pp > 1) {
      m.kv += static_cast<uint64_t>((hi - lo) * 2 * b * (in.image_tokens + in.text_tokens) *
                                    e.hidden * act);
    }
    e.ranks.push_back(m);
  }
  return e;
}

int64_t transformer_tokens(const core::Shape& shape, const io::Config& config) {
  if (shape.size() == 3) return shape[1];  // packed tokens
  std::vector<int64_t> patch;
  if (config.has("all_patch_size")) {
    patch = {config.get_int_list("all_f_patch_size", {1})[0],
             config.get_int_list("all_patch_size", {2})[0]};
  } else if (config.json().contains("patch_size") && config.json()["patch_size"].is_array()) {
    patch = config.get_int_list("patch_size", {1, 2, 2});
  } else {
    patch = {config.get_int("patch_size_t", 1), config.get_int("patch_size", 2)};
  }
  const int64_t pt = patch.size() == 3 ? patch[0] : patch.front();
  const int64_t ph = patch.size() == 3 ? patch[1] : patch.back();
  const int64_t pw = patch.back();
  PARADIT_CHECK(pt > 0 && ph > 0 && pw > 0, config.where(), ": patch sizes must be positive");
  const size_t nd = shape.size();
  PARADIT_CHECK(nd == 4 || nd == 5, "transformer_tokens: latents ", core::shape_str(shape),
                " are not (B, S, C), (B, C, h, w) or (B, C, f, h, w)");
  const int64_t frames = nd == 5 ? shape[2] / pt : 1;
  return frames * (shape[nd - 2] / ph) * (shape[nd - 1] / pw);
}

MemoryEstimate Pipeline::estimate_memory(const GenerateRequest& resolved,
                                         const parallel::ParallelConfig& layout) const {
  EstimateInputs in;
  in.place = place_;
  in.batch = batch_size(resolved) * (uses_cfg(resolved) ? 2 : 1);
  in.image_tokens = transformer_tokens(initial_latent_shape(resolved), transformer_config_);
  in.text_tokens = resolved.max_sequence_length.value_or(0);
  std::vector<std::filesystem::path> others;
  for (const io::Component& c : folder_.components()) {
    if (c.name != "transformer" && c.name != "transformer_2") others.push_back(c.dir);
  }
  return pipelines::estimate_memory(folder_.transformer_dir(), others, layout, in);
}

std::string format_memory_estimate(const MemoryEstimate& e) {
  const auto mib = [](uint64_t v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f", static_cast<double>(v) / (1024.0 * 1024.0));
    return std::string(buf);
  };
  std::string out;
  char line[256];
  std::snprintf(line, sizeof line,
                "memory per rank (estimate, MiB) for %s: batch %lld, %lld image + %lld text "
                "tokens per sample, D %lld, %lld heads, MLP %lld\n",
                e.layout.c_str(), static_cast<long long>(e.batch),
                static_cast<long long>(e.image_tokens), static_cast<long long>(e.text_tokens),
                static_cast<long long>(e.hidden), static_cast<long long>(e.heads),
                static_cast<long long>(e.mlp));
  out += line;
  std::snprintf(line, sizeof line, "  %6s %5s %5s %12s %12s %12s %12s\n", "rank", "stage", "heads",
                "weights", "activations", "kv", "denoise");
  out += line;
  for (const RankMemory& m : e.ranks) {
    std::snprintf(line, sizeof line, "  %6d %5d %5lld %12s %12s %12s %12s\n", m.rank, m.stage,
                  static_cast<long long>(m.heads), mib(m.weights).c_str(),
                  mib(m.activations).c_str(), mib(m.kv).c_str(), mib(m.denoise_total()).c_str());
    out += line;
  }
  out += "  transformer weights in one process: " + mib(e.transformer_bytes) +
         " MiB; text encoders + VAE on every rank (before / after denoising): " +
         mib(e.other_weights) + " MiB\n";
  return out;
}

}  // namespace paradit::pipelines
