#pragma once
// The parallel flags shared by `paradit forward` and `paradit generate` (the names xDiT users
// know; `_` and `-` spellings both accepted): --ulysses_degree --ring_degree
// --pipefusion_parallel_degree --num_pipeline_patch --warmup_steps --use_cfg_parallel
// --data_parallel_degree --use_parallel_vae. Defaults 1 / false. Also --collective_timeout (the
// watchdog's deadline on every wait for a peer, comm/watchdog.h).

#include <CLI/CLI.hpp>

#include "parallel/config.h"

namespace paradit::cli {

// Registers the flags on `app`, writing into `*config` (which must outlive the parse).
void add_parallel_flags(CLI::App* app, parallel::ParallelConfig* config);

}  // namespace paradit::cli
