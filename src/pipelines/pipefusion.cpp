// The denoising loop under PipeFusion (xDiT's patch-level pipeline parallelism), see
// parallel/pipefusion.h for the method.
//
// Each rank of the pp group holds one stage: a contiguous range of the transformer's layers,
// balanced by their parameter counts. A warm-up step runs the whole image through the stages
// one after the other (stage s receives the hidden states from s − 1, runs its layers, sends them
// to s + 1; the last stage applies the output layers, the guidance and the scheduler step, and
// broadcasts the new latents). It fills every layer's stale K/V buffer. The later steps stream
// the M patches: stage 0 embeds patch m, every stage runs it through its layers against the
// buffers (fresh K/V for patch m, the others' as they were last written) and sends it on; the
// last stage steps patch m with its own scheduler instance and sends the new patch rows back to
// stage 0, which starts step i + 1 of patch m with them while the other stages still work on
// later patches of step i. Receives are posted one patch ahead, sends are asynchronous.
//
// Every other parallel mode composes: sequence parallel inside each stage (each rank of a stage
// exchanges its own rows with the same sequence rank of the next stage), CFG parallel (each cfg
// half runs its own chain of stages; the last stages all-gather the halves before guidance) and
// data parallel (each dp group its own prompts).

#include <algorithm>
#include <chrono>
#include <memory>
#include <utility>
#include <vector>

#include "comm/pack.h"
#include "core/error.h"
#include "models/transformer.h"
#include "parallel/batch.h"
#include "parallel/pipefusion.h"
#include "pipelines/pipeline.h"
#include "schedulers/scheduler.h"

namespace paradit::pipelines {

using core::Tensor;
using Clock = std::chrono::steady_clock;

namespace {

// Message tags on the pp group: a stage's streams to the next (one tag per stream), and the
// stepped patch rows from the last stage back to stage 0. Messages between a pair with one tag
// arrive in the order sent, and every rank walks the patches in the same order.
constexpr int kTagStream = 301;
constexpr int kTagLatents = 320;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// A contiguous copy of a view, sharing nothing with it.
Tensor copy_of(const Tensor& view) {
  Tensor out = Tensor::empty(view.shape(), view.dtype(), view.device());
  comm::copy_bytes(out, view);
  return out;
}

}  // namespace

Tensor Pipeline::denoise_pipefusion(Tensor latents, const NamedTensors& conditioning,
                                    const GenerateRequest& r, GenerateResult& res,
                                    const StepCallback& on_step, int64_t full_batch,
                                    int64_t block_begin, int64_t block_end) {
  const parallel::ParallelRuntime& rt = *runtime_;
  const comm::ProcessMesh& mesh = rt.mesh();
  const comm::Communicator& pp = mesh.group(comm::MeshDim::kPp);
  const int P = pp.size(), stage = pp.rank(), last = P - 1;
  const int M = rt.config().num_pipeline_patch > 0 ? rt.config().num_pipeline_patch : P;
  PARADIT_CHECK(M >= P, "--num_pipeline_patch ", M, " is less than --pipefusion_parallel_degree ",
                P, ": every stage needs a patch of its own to work on");
  const int steps = static_cast<int>(res.timesteps.size());
  const int warmup = std::min(rt.config().warmup_steps, steps);
  PARADIT_CHECK(warmup >= 1, "--warmup_steps must be at least 1 with PipeFusion (the first step "
                             "fills every layer's K/V buffers)");

  // ---- this rank's stage of the transformer
  const auto load_start = Clock::now();
  std::pair<int64_t, int64_t> layers;
  models::StageModel stage_model = models::load_transformer_stage(
      folder_.component("transformer").dir, place_,
      [&](const std::vector<double>& costs) {
        layers = parallel::balance_stages(costs, P)[static_cast<size_t>(stage)];
        return layers;
      });
  const models::Transformer& model = *stage_model.model;
  res.stage_weight_bytes = stage_model.weight_bytes;
  const auto [first_layer, end_layer] = layers;
  // Every step needs M scheduler histories on the last stage: one per patch, each stepping its
  // own rows (the schedulers work element by element, so this equals one scheduler on the whole).
  std::vector<std::unique_ptr<schedulers::Scheduler>> patch_schedulers;
  for (int m = 0; m < M; ++m) {
    patch_schedulers.push_back(schedulers::load_scheduler(scheduler_config_path_));
    set_timesteps(*patch_schedulers.back(), r, latents);
  }
  pipefusion_load_seconds_ = seconds_since(load_start);
  res.times.load += pipefusion_load_seconds_;

  // ---- patches and the batch this rank's chain of stages computes
  const NamedTensors probe = model_inputs(latents, res.timesteps[0], conditioning, r);
  const auto [grid_rows, grid_cols] = model.token_grid(probe);
  const parallel::PatchGrid grid(grid_rows, grid_cols, M);
  const LatentRows rows = latent_rows(r);
  const auto patch_of = [&](const Tensor& x, int m) {  // patch m's rows of latents-shaped x
    return x.slice(rows.dim, grid.row_begin(m) * rows.per_token_row,
                   grid.row_begin(m + 1) * rows.per_token_row);
  };
  // CFG parallel as run_transformer does it: the halves of the batch on the cfg ranks when the
  // batch divides, gathered back on the last stage.
  const int cfg = mesh.degree(comm::MeshDim::kCfg);
  const int64_t model_batch = probe.at("hidden_states").dim(0);
  const bool split_cfg = cfg > 1 && model_batch % cfg == 0;
  const auto share = [&](const NamedTensors& in) {
    if (!split_cfg) return in;
    const auto [b, e] = parallel::batch_share(model_batch, mesh, /*split_dp=*/false);
    return parallel::slice_batch(in, model_batch, b, e);
  };
  const auto whole = [&](const Tensor& out) {
    return split_cfg ? mesh.group(comm::MeshDim::kCfg).all_gather(out, 0) : out;
  };
  const parallel::SequenceContext* sp = &rt.sequence();
  parallel::StaleKV kv;

  // Step caching (models/step_cache.h): stage 0 probes every patch of a step (through layer 0 for
  // FBCache) before any stage runs the step's other layers, then every rank of the job takes the
  // one decision for the whole step together; each stage keeps the residual of its own layers per
  // patch (-1: a whole-image warm-up pass). The probes' rows count on the first cfg rank when
  // the batch is not split.
  models::StepCache* cache = step_cache_;
  const bool cache_counts = split_cfg || mesh.coord(comm::MeshDim::kCfg) == 0;
  // The layers this stage runs through the cache: stage 0's first ones were run by the probe.
  const int64_t cached_first =
      cache && stage == 0 ? std::max(first_layer, cache->first_layer()) : first_layer;
  const auto run_stage_layers = [&](models::TransformerPass& pass, int key) {
    if (cache) {
      cache->run_layers(model, pass, cached_first, end_layer, key);
    } else {
      model.run_layers(pass, first_layer, end_layer);
    }
  };
  std::vector<int> patch_keys;
  for (int m = 0; m < M; ++m) patch_keys.push_back(m);

  // One pass of this stage: its inputs' pass, and the receives of its streams (stage > 0).
  struct Pending {
    std::unique_ptr<models::TransformerPass> pass;
    std::vector<comm::Request> recvs;
  };
  // stage > 0: the pass of (step, patch) with its streams' receives posted.
  const auto post_pass = [&](int step, int patch) {
    Pending p;
    parallel::PassPlan plan{&grid, patch, &kv};
    const double t = res.timesteps[static_cast<size_t>(step)];
    p.pass = model.begin_pass(share(model_inputs(latents, t, conditioning, r)), sp, &plan, false);
    const std::vector<core::Shape> shapes = model.stream_shapes(*p.pass, first_layer);
    for (size_t j = 0; j < shapes.size(); ++j) {
      p.pass->streams.push_back(
          Tensor::empty(shapes[j], place_.activation_dtype(), place_.device));
      p.recvs.push_back(pp.irecv(p.pass->streams.back(), stage - 1, kTagStream + int(j)));
    }
    return p;
  };
  // stage 0: the pass of (step, patch) from the current latents.
  const auto embed_pass = [&](int step, int patch) {
    parallel::PassPlan plan{&grid, patch, &kv};
    const double t = res.timesteps[static_cast<size_t>(step)];
    const Tensor x = patch_schedulers[0]->scale_model_input(latents, static_cast<size_t>(step));
    return model.begin_pass(share(model_inputs(x, t, conditioning, r)), sp, &plan, true);
  };
  std::vector<comm::Request> sends;  // in flight; done before the end
  const auto send_streams = [&](const models::TransformerPass& pass) {
    for (size_t j = 0; j < pass.streams.size(); ++j) {
      sends.push_back(pp.isend(pass.streams[j], stage + 1, kTagStream + static_cast<int>(j)));
    }
  };
  // The last stage: the pass's output → guided noise → patch m's scheduler step, written into
  // `latents`. Returns the new rows.
  const auto step_patch = [&](models::TransformerPass& pass, int step, int patch,
                              const Tensor& noise) {
    const Tensor out =
        whole(model.end_pass(pass)).to(core::DType::F32);  // the pass's rows of the model output
    const Tensor guided = guided_output(out, r);       // the pass's rows of latents' shape
    const bool all = patch < 0;
    Tensor fresh = all ? Tensor()
                       : Tensor::empty(patch_of(latents, patch).shape(), latents.dtype(),
                                       latents.device());
    for (int m = all ? 0 : patch; m < (all ? M : patch + 1); ++m) {
      const Tensor g = all ? patch_of(guided, m) : guided;
      const Tensor n = noise.defined() ? patch_of(noise, m) : Tensor();
      const Tensor x = patch_schedulers[static_cast<size_t>(m)]->step(
          copy_of(g), static_cast<size_t>(step), copy_of(patch_of(latents, m)),
          n.defined() ? copy_of(n) : n);  // patch m's rows
      comm::copy_bytes(patch_of(latents, m), x);
      if (!all) comm::copy_bytes(fresh, x);
    }
    return fresh;
  };

  // ---- warm-up: whole-image steps through the stages one after the other
  for (int i = 0; i < warmup; ++i) {
    const auto step_start = Clock::now();
    if (cache) cache->begin_step(i);
    std::unique_ptr<models::TransformerPass> pass;
    if (stage == 0) {
      pass = embed_pass(i, -1);
      if (cache) {
        cache->probe(model, *pass, -1, cache_counts);
        cache->decide({-1});
      }
    } else {
      Pending p = post_pass(i, -1);
      // The decision comes before the wait: stage 0 takes it before it sends.
      if (cache) cache->decide({-1});
      comm::wait_all(p.recvs);
      pass = std::move(p.pass);
    }
    run_stage_layers(*pass, -1);
    if (stage < last) {
      send_streams(*pass);
    } else {
      const Tensor noise = step_noise(*patch_schedulers[0], i, latents.shape(), full_batch,
                                      block_begin, block_end, r.seed);
      step_patch(*pass, i, -1, noise);
    }
    comm::wait_all(sends);
    sends.clear();
    pp.broadcast(latents, last);  // every stage starts the next step from the same latents
    if (on_step) {
      on_step({i, steps, res.timesteps[static_cast<size_t>(i)], seconds_since(step_start),
               latents});
    }
  }

  // ---- streamed steps: patch after patch, the stages working on different patches at once
  if (warmup < steps) {
    // (step, patch) in the order every rank walks them.
    std::vector<std::pair<int, int>> order;
    for (int i = warmup; i < steps; ++i) {
      for (int m = 0; m < M; ++m) order.emplace_back(i, m);
    }
    // Stage 0's receives of the stepped patches (from step warmup + 1 on), posted ahead.
    std::vector<Tensor> returned(order.size());
    std::vector<comm::Request> returns(order.size());
    std::vector<char> posted(order.size(), 0);
    const auto post_return = [&](size_t k) {
      if (stage != 0 || k >= order.size() || order[k].first == warmup || posted[k]) return;
      posted[k] = 1;
      returned[k] = Tensor::empty(patch_of(latents, order[k].second).shape(), latents.dtype(),
                                  latents.device());
      returns[k] = pp.irecv(returned[k], last, kTagLatents);
    };
    // Stage 0: patch m's rows of step i − 1, once they are back.
    const auto take_return = [&](size_t k) {
      if (!returns[k].pending()) return;
      returns[k].wait();
      comm::copy_bytes(patch_of(latents, order[k].second), returned[k]);
      returned[k] = Tensor();
    };
    // Stage 0 with a cache: every patch of the step embedded and probed before the decision.
    std::vector<std::unique_ptr<models::TransformerPass>> probed(static_cast<size_t>(M));
    Pending next;
    if (stage > 0) next = post_pass(order[0].first, order[0].second);
    post_return(0);
    auto step_start = Clock::now();
    Tensor noise;
    for (size_t k = 0; k < order.size(); ++k) {
      const auto [i, m] = order[k];
      if (m == 0) {
        step_start = Clock::now();
        noise = stage == last ? step_noise(*patch_schedulers[0], i, latents.shape(), full_batch,
                                           block_begin, block_end, r.seed)
                              : Tensor();
      }
      if (cache && m == 0) cache->begin_step(i);
      std::unique_ptr<models::TransformerPass> pass;
      if (stage == 0 && cache) {
        if (m == 0) {
          // Every patch of step i: its rows of step i − 1 back, embedded, probed; then the
          // decision for the whole step.
          for (int q = 0; q < M; ++q) {
            post_return(k + static_cast<size_t>(q));
            post_return(k + static_cast<size_t>(q) + 1);
            take_return(k + static_cast<size_t>(q));  // step i − 1's rows of patch q
            probed[static_cast<size_t>(q)] = embed_pass(i, q);
            cache->probe(model, *probed[static_cast<size_t>(q)], q, cache_counts);
          }
          cache->decide(patch_keys);
        }
        pass = std::move(probed[static_cast<size_t>(m)]);
      } else if (stage == 0) {
        post_return(k + 1);
        take_return(k);  // step i − 1's rows of patch m
        pass = embed_pass(i, m);
      } else {
        Pending cur = std::move(next);
        if (k + 1 < order.size()) next = post_pass(order[k + 1].first, order[k + 1].second);
        // The decision comes before the wait: stage 0 takes it before it sends step i.
        if (cache && m == 0) cache->decide(patch_keys);
        comm::wait_all(cur.recvs);
        pass = std::move(cur.pass);
      }
      run_stage_layers(*pass, m);
      if (stage < last) {
        send_streams(*pass);
      } else {
        const Tensor fresh = step_patch(*pass, i, m, noise);
        if (i + 1 < steps) sends.push_back(pp.isend(fresh, 0, kTagLatents));
      }
      // Finished sends free their buffers; the rest stay in flight.
      std::erase_if(sends, [](comm::Request& q) { return q.test(); });
      if (m == M - 1 && on_step) {
        on_step({i, steps, res.timesteps[static_cast<size_t>(i)], seconds_since(step_start),
                 latents});
      }
    }
    comm::wait_all(sends);
    sends.clear();
    pp.broadcast(latents, last);  // the final latents on every stage
  }
  return latents;
}

}  // namespace paradit::pipelines
