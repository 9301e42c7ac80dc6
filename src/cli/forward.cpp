// `paradit forward --model DIR --inputs IN.safetensors --output OUT.safetensors [--dtype
// f32|bf16] [parallel flags]`: one transformer forward on saved inputs named as diffusers' forward
// arguments; writes `sample`. Under mpirun every rank loads the weights (mmap: the pages are
// shared) and the inputs, the forward runs over the parallel layout of the flags (sequence, CFG
// and data parallel), and rank 0 writes the output (atomically: temporary file + rename).
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "cli/commands.h"
#include "cli/device_flags.h"
#include "cli/parallel_flags.h"
#include "comm/runtime.h"
#include "core/error.h"
#include "io/safetensors.h"
#include "models/forward_arguments.h"
#include "models/transformer.h"

namespace paradit::cli {

namespace {

struct ForwardOptions {
  std::string model;
  std::string inputs;
  std::string output;
  DeviceOptions device;
  parallel::ParallelConfig parallel;
};

// The output's folder must exist before minutes of compute are spent.
void check_output_path(const std::filesystem::path& output) {
  std::filesystem::path parent = output.parent_path();
  if (parent.empty()) parent = ".";
  PARADIT_CHECK(std::filesystem::is_directory(parent), "--output: directory '", parent.string(),
                "' does not exist");
  PARADIT_CHECK(!std::filesystem::is_directory(output), "--output: '", output.string(),
                "' is a directory (expected a .safetensors file path)");
}

int run_forward(const ForwardOptions& opt) {
  using Clock = std::chrono::steady_clock;
  check_output_path(opt.output);
  // The mesh first: a layout that does not fit the job fails before any loading.
  PARADIT_CHECK(opt.parallel.pp == 1, "--pipefusion_parallel_degree ", opt.parallel.pp,
                ": PipeFusion pipelines the denoising steps, so it applies to `paradit generate`; "
                "`paradit forward` runs one forward (use 1)");
  const core::Placement place = resolve_placement(opt.device);  // collective (binds GPUs)
  const parallel::ParallelRuntime runtime(comm::world(), opt.parallel, place.device);

  const io::TensorSource source = io::TensorSource::open(opt.inputs);
  models::NamedTensors inputs;
  for (const std::string& name : source.names()) {
    core::Tensor t = source.view(name);
    // Activations are F32 on the CPU backend; index tensors (class_labels) keep their type.
    if (core::is_floating(t.dtype()) && t.dtype() != core::DType::F32) t = t.to(core::DType::F32);
    inputs[name] = t;
  }
  // Non-tensor arguments (Qwen-Image's img_shapes) as JSON under their name in __metadata__.
  for (const auto& [name, t] : models::metadata_arguments(source.files().at(0).metadata(),
                                                          opt.inputs)) {
    inputs.emplace(name, t);
  }

  const auto t0 = Clock::now();
  // Tensor parallel: this rank binds only its share of the split matrices.
  auto model = models::load_transformer(opt.model, place, runtime.tensor_parallel());
  const auto t1 = Clock::now();
  // List arguments (Z-Image's x.i, cap_feats.i) in the family's batched form; the output is
  // then written back as a list, sample.0, sample.1 ….
  const bool list_form = models::has_list_arguments(inputs);
  const core::Tensor sample = models::parallel_forward(
      *model, models::batched_arguments(*model, inputs), runtime);  // diffusers' layout
  const auto t2 = Clock::now();
  if (!runtime.writes_output()) return 0;
  if (list_form) {
    io::save_safetensors(opt.output, models::list_outputs(sample));
  } else {
    io::save_safetensors(opt.output, {{"sample", sample}});
  }

  const auto seconds = [](auto a, auto b) { return std::chrono::duration<double>(b - a).count(); };
  std::printf("%s: sample %s written to %s (load %.3f s, forward %.3f s; %s)\n",
              model->class_name().c_str(), sample.str().c_str(), opt.output.c_str(),
              seconds(t0, t1), seconds(t1, t2), runtime.mesh().degrees().str().c_str());
  return 0;
}

}  // namespace

void add_forward_command(CLI::App& app, Commands& commands) {
  auto opt = std::make_shared<ForwardOptions>();
  CLI::App* sub = app.add_subcommand(
      "forward", "Run one transformer forward on saved inputs and write `sample`");
  sub->add_option(
         "--model", opt->model,
         "Transformer folder (config.json + weights) or pipeline folder (uses transformer/)")
      ->required();
  sub->add_option("--inputs", opt->inputs,
                  "safetensors file whose tensors are named as diffusers' forward arguments "
                  "(hidden_states, encoder_hidden_states, timestep, ...)")
      ->required();
  sub->add_option("--output", opt->output, "safetensors file to write (`sample`)")->required();
  add_device_flags(sub, &opt->device);
  add_parallel_flags(sub, &opt->parallel);
  commands.push_back({sub, [opt] { return run_forward(*opt); }});
}

}  // namespace paradit::cli
