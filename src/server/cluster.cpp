#include "server/cluster.h"

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "comm/process_mesh.h"
#include "comm/runtime.h"
#include "core/error.h"
#include "pipelines/pipeline.h"
#include "server/worker_protocol.h"

namespace paradit::server {

namespace {

using core::DType;
using core::Tensor;

enum Kind : int64_t { kJob = 1, kStop, kCancel, kAck, kProgress, kDone, kFailed, kStopped };
constexpr int kTagJob = 7101;      // rank 0 → group ranks
constexpr int kTagControl = 7102;  // rank 0 → group leader
constexpr int kTagReport = 7103;   // group leader → rank 0
constexpr int kHeaderLength = 5;   // kind, a, b, c, payload bytes

struct Message {
  Message(int64_t kind_ = 0, int64_t a_ = 0, int64_t b_ = 0, int64_t c_ = 0,
          std::string payload_ = {})
      : kind(kind_), a(a_), b(b_), c(c_), payload(std::move(payload_)) {}
  int64_t kind;
  int64_t a, b, c;
  std::string payload;
};

// Waits for a request without spinning a core: polls, sleeping 0.1 ms at first and backing off
// to 4 ms (an idle rank then costs a fraction of a percent of a core; a job waits ≤ 4 ms).
void wait_polling(comm::Request& request) {
  auto nap = std::chrono::microseconds(100);
  while (!request.test()) {
    std::this_thread::sleep_for(nap);
    nap = std::min(nap * 2, std::chrono::microseconds(4000));
  }
}

void send(const comm::Communicator& comm, int dest, int tag, const Message& m) {
  const Tensor header = Tensor::from_vector_i64(
      {m.kind, m.a, m.b, m.c, static_cast<int64_t>(m.payload.size())}, {kHeaderLength});
  comm::Request h = comm.isend(header, dest, tag);
  comm::Request p;
  if (!m.payload.empty()) {
    Tensor bytes = Tensor::empty({static_cast<int64_t>(m.payload.size())}, DType::U8);
    std::memcpy(bytes.data<uint8_t>(), m.payload.data(), m.payload.size());
    p = comm.isend(bytes, dest, tag);
  }
  wait_polling(h);
  if (p.pending()) wait_polling(p);
}

Message unpack_header(const Tensor& header) {
  const int64_t* v = header.data<int64_t>();
  Message m;
  m.kind = v[0];
  m.a = v[1];
  m.b = v[2];
  m.c = v[3];
  return m;
}

// The payload announced by `header` (sent right after it on the same tag).
void receive_payload(const comm::Communicator& comm, int source, int tag, const Tensor& header,
                     Message* m) {
  const int64_t bytes = header.data<int64_t>()[4];
  if (bytes <= 0) return;
  Tensor buffer = Tensor::empty({bytes}, DType::U8);
  comm::Request r = comm.irecv(buffer, source, tag);
  wait_polling(r);
  m->payload.assign(reinterpret_cast<const char*>(buffer.data<uint8_t>()),
                    static_cast<size_t>(bytes));
}

Message receive(const comm::Communicator& comm, int source, int tag) {
  Tensor header = Tensor::empty({kHeaderLength}, DType::I64);
  comm::Request r = comm.irecv(header, source, tag);
  wait_polling(r);
  Message m = unpack_header(header);
  receive_payload(comm, source, tag, header, &m);
  return m;
}

// Thrown by a remote leader's step hook when rank 0 cancelled the job.
struct CancelRequested {};

// Group g ≠ 0, seen from rank 0: sends the job to the group's ranks and relays its reports.
class RemoteExecutor final : public Executor {
 public:
  RemoteExecutor(const pipelines::Pipeline& pipe, const comm::Communicator& control, int group,
                 std::vector<int> ranks)
      : pipe_(pipe), control_(control), group_(group), ranks_(std::move(ranks)) {}

  void check(const ImageRequest& request) const override { check_request(pipe_, request); }

  std::vector<std::string> run(const ImageRequest& request, const StepHook& on_step) override {
    const std::string body = request_to_json(request).dump();
    for (const int r : ranks_) send(control_, r, kTagJob, {kJob, 0, 0, 0, body});
    const int leader = ranks_.front();
    std::exception_ptr stop;
    bool answered = false;  // the one control message of this job went out
    for (;;) {
      Message m = receive(control_, leader, kTagReport);
      if (m.kind == kProgress) {
        if (stop || !on_step) continue;
        try {
          on_step({static_cast<int>(m.a), static_cast<int>(m.b), static_cast<double>(m.c) * 1e-6,
                   unpack_files(m.payload)});
        } catch (...) {
          // Cancelled or timed out: the group stops at its next step boundary.
          stop = std::current_exception();
          send(control_, leader, kTagControl, {kCancel});
          answered = true;
        }
        continue;
      }
      if (!answered) send(control_, leader, kTagControl, {kAck});
      if (stop) std::rethrow_exception(stop);
      if (m.kind == kDone) return unpack_files(m.payload);
      PARADIT_CHECK(m.kind == kFailed, "serve: group ", group_,
                    " sent an unexpected message (kind ", m.kind, ")");
      fail(m.payload);
    }
  }

 private:
  const pipelines::Pipeline& pipe_;
  const comm::Communicator& control_;
  const int group_;
  const std::vector<int> ranks_;
};

// Group 0, on rank 0: sends the job to the group's other ranks and runs it here as the leader.
class LeaderExecutor final : public Executor {
 public:
  LeaderExecutor(Cluster& cluster, pipelines::Pipeline& pipe, const comm::Communicator& control,
                 std::vector<int> members)
      : cluster_(cluster), pipe_(pipe), control_(control), members_(std::move(members)) {}

  void check(const ImageRequest& request) const override { check_request(pipe_, request); }

  std::vector<std::string> run(const ImageRequest& request, const StepHook& on_step) override {
    const std::string body = request_to_json(request).dump();
    for (const int r : members_) send(control_, r, kTagJob, {kJob, 0, 0, 0, body});
    try {
      return cluster_.run_in_group(pipe_, request, on_step);
    } catch (const Cluster::Stopped& s) {
      std::rethrow_exception(s.why);
    } catch (const std::exception& e) {
      if (!members_.empty()) cluster_.fail_group(e.what());
      throw;
    }
  }

 private:
  Cluster& cluster_;
  pipelines::Pipeline& pipe_;
  const comm::Communicator& control_;
  const std::vector<int> members_;  // group 0's ranks other than 0
};

}  // namespace

Cluster::Cluster(const comm::Communicator& world, const parallel::ParallelConfig& config,
                 core::Device device)
    : world_(world) {
  config.validate();
  const comm::MeshDegrees degrees = config.degrees();
  PARADIT_CHECK(degrees.product() == world.size(), "serve: parallel degrees ", degrees.str(),
                " = ", degrees.product(), ", but the job has ", world.size(),
                " processes (mpirun -np must equal their product)");
  groups_ = config.dp;
  group_size_ = world.size() / groups_;
  group_ = comm::ProcessMesh::coords_of(degrees, world.rank())[0];
  group_rank_ = world.rank() - comm::ProcessMesh::rank_of(degrees, {group_, 0, 0, 0, 0});
  if (world.size() == 1) return;  // one process: the pipeline runs without a runtime
  control_ = world.split(0, world.rank());
  group_comm_ = world.split(group_, world.rank());
  parallel::ParallelConfig in_group = config;
  in_group.dp = 1;  // each group serves whole requests
  runtime_ = std::make_unique<parallel::ParallelRuntime>(*group_comm_, in_group, device);
}

Cluster::~Cluster() = default;

std::vector<std::unique_ptr<Executor>> Cluster::executors(pipelines::Pipeline& pipe) {
  PARADIT_CHECK(is_rank0(), "serve: only rank 0 dispatches jobs");
  std::vector<std::unique_ptr<Executor>> out;
  if (!control_) {
    out.push_back(make_local_executor(pipe));
    return out;
  }
  for (int g = 0; g < groups_; ++g) {
    std::vector<int> ranks;
    for (int r = g * group_size_; r < (g + 1) * group_size_; ++r) ranks.push_back(r);
    if (g == 0) {
      ranks.erase(ranks.begin());  // rank 0 itself
      out.push_back(std::make_unique<LeaderExecutor>(*this, pipe, *control_, std::move(ranks)));
    } else {
      out.push_back(std::make_unique<RemoteExecutor>(pipe, *control_, g, std::move(ranks)));
    }
  }
  return out;
}

std::vector<std::string> Cluster::run_in_group(pipelines::Pipeline& pipe,
                                               const ImageRequest& request,
                                               const StepHook& leader_hook) {
  const bool leader = group_rank_ == 0;
  std::exception_ptr stop;
  const bool crash = !fault_crash_prompt_.empty() &&
                     request.prompt.find(fault_crash_prompt_) != std::string::npos &&
                     group_rank_ == group_size_ - 1;
  const StepHook hook = [&](const StepProgress& progress) {
    if (crash) {
      std::fprintf(stderr, "paradit worker: rank %d: fault injection (--fault_crash_prompt): "
                   "crashing on purpose\n", world_.rank());
      std::fflush(stderr);
      std::signal(SIGSEGV, SIG_DFL);  // no MPI backtrace handler: die of the signal itself
      std::raise(SIGSEGV);
    }
    int64_t go_on = 1;
    if (leader && leader_hook) {
      try {
        leader_hook(progress);
      } catch (...) {
        stop = std::current_exception();
        go_on = 0;
      }
    }
    if (group_size_ > 1) {
      // Every rank of the group learns the leader's decision at the same step.
      Tensor flag = Tensor::from_vector_i64({go_on}, {1});
      group_comm_->broadcast(flag, 0);
      go_on = flag.data<int64_t>()[0];
    }
    if (go_on == 0) throw Stopped{stop};
  };
  return run_request(pipe, request, hook, /*encode=*/leader);
}

void Cluster::fail_group(const std::string& what) const {
  comm::abort_job(2, "paradit: error: serve: rank " + std::to_string(world_.rank()) +
                         " of group " + std::to_string(group_) + " failed: " + what +
                         "; ending the worker job (its group's ranks cannot go on together)");
}

void Cluster::lead_remote_job(pipelines::Pipeline& pipe, const ImageRequest& request) {
  // The one control message of this job (kCancel or kAck), posted before the job starts.
  Tensor control = Tensor::empty({kHeaderLength}, DType::I64);
  comm::Request control_request = control_->irecv(control, 0, kTagControl);
  const StepHook hook = [&](const StepProgress& p) {
    // The previews (if any) travel with the step's report.
    send(*control_, 0, kTagReport,
         {kProgress, p.step, p.total, static_cast<int64_t>(p.seconds * 1e6),
          pack_files(p.previews)});
    if (control_request.test() && control.data<int64_t>()[0] == kCancel) throw CancelRequested{};
  };
  Message report;
  try {
    report = {kDone, 0, 0, 0, pack_files(run_in_group(pipe, request, hook))};
  } catch (const Stopped&) {
    report = {kStopped};
  } catch (const std::exception& e) {
    if (group_size_ > 1) fail_group(e.what());
    report = {kFailed, 0, 0, 0, std::string("group ") + std::to_string(group_) + ": " + e.what()};
  }
  send(*control_, 0, kTagReport, report);
  wait_polling(control_request);
}

void Cluster::follow(pipelines::Pipeline& pipe) {
  PARADIT_CHECK(!is_rank0() && control_, "serve: rank 0 does not follow");
  for (;;) {
    const Message m = receive(*control_, 0, kTagJob);
    if (m.kind == kStop) return;
    PARADIT_CHECK(m.kind == kJob, "serve: rank ", world_.rank(),
                  " got an unexpected message (kind ", m.kind, ")");
    const ImageRequest request = request_from_json(Json::parse(m.payload));
    if (group_rank_ == 0) {
      lead_remote_job(pipe, request);
      continue;
    }
    try {
      run_in_group(pipe, request, {});
    } catch (const Stopped&) {
      // The leader stopped the job at a step boundary: wait for the next one.
    } catch (const std::exception& e) {
      fail_group(e.what());
    }
  }
}

void Cluster::stop_followers() {
  if (!control_) return;
  for (int r = 1; r < world_.size(); ++r) send(*control_, r, kTagJob, {kStop});
}

}  // namespace paradit::server
