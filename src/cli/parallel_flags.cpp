#include "cli/parallel_flags.h"

#include "comm/watchdog.h"

namespace paradit::cli {

void add_parallel_flags(CLI::App* app, parallel::ParallelConfig* c) {
  const char* group = "Parallel (world = dp × cfg × pp × ring × ulysses × tp processes)";
  app->add_option("--ulysses_degree,--ulysses-degree", c->ulysses,
                  "Ulysses sequence-parallel degree (heads split inside attention; any head "
                  "count: ranks take ⌊H/U⌋ or ⌈H/U⌉ heads)")
      ->group(group)
      ->capture_default_str();
  app->add_option("--tensor_parallel_degree,--tensor-parallel-degree", c->tp,
                  "Tensor-parallel degree (Megatron): each block's heads and MLP units split "
                  "over this many ranks, each loading only its share of those weights; one "
                  "all-reduce after the attention output and one after the MLP. Innermost in the "
                  "rank order; must divide the heads and the MLP width. DiT only so far")
      ->group(group)
      ->capture_default_str();
  app->add_option("--ring_degree,--ring-degree", c->ring,
                  "Ring-attention sequence-parallel degree (K/V blocks rotate)")
      ->group(group)
      ->capture_default_str();
  app->add_option("--pipefusion_parallel_degree,--pipefusion-parallel-degree", c->pp,
                  "PipeFusion degree: transformer layers split into this many pipeline stages")
      ->group(group)
      ->capture_default_str();
  app->add_option("--num_pipeline_patch,--num-pipeline-patch", c->num_pipeline_patch,
                  "PipeFusion patches per image, cut along its height (0: the PipeFusion degree)")
      ->group(group)
      ->capture_default_str();
  app->add_option("--warmup_steps,--warmup-steps", c->warmup_steps,
                  "PipeFusion synchronous whole-image steps before patches stream (at least 1)")
      ->group(group)
      ->capture_default_str();
  app->add_flag("--use_cfg_parallel,--use-cfg-parallel", c->cfg,
                "CFG parallel: the unconditional and conditional halves of the batch on two "
                "process groups")
      ->group(group);
  app->add_option("--data_parallel_degree,--data-parallel-degree", c->dp,
                  "Data-parallel degree: groups each taking an equal share of the batch")
      ->group(group)
      ->capture_default_str();
  app->add_flag("--use_parallel_vae,--use-parallel-vae", c->use_parallel_vae,
                "Patch-parallel VAE decode")
      ->group(group);
  app->add_option_function<double>(
         "--collective_timeout,--collective-timeout",
         [](const double& seconds) { comm::set_collective_timeout(seconds); },
         "Seconds any rank may wait for its peers in one communication (a stopped, dead or "
         "hung peer) before the job ends with exit code 124, naming the operation, the group "
         "and the ranks that do not answer; 0: no limit")
      ->group(group)
      ->check(CLI::Range(0.0, 1e9))
      ->default_str(std::to_string(static_cast<int>(comm::kDefaultCollectiveTimeout)));
}

}  // namespace paradit::cli
