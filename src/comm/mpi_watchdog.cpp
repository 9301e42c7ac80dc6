// The watchdog's questions to the other ranks over MPI (see watchdog.h): a private duplicate of
// MPI_COMM_WORLD, a question is an empty message with kQuestionTag, the answer this rank's
// wait_status() with kAnswerTag. Only the watchdog thread uses the communicator.
#include <mpi.h>

#include <chrono>
#include <cstring>
#include <deque>
#include <memory>
#include <thread>

#include "comm/watchdog.h"
#include "core/error.h"

namespace paradit::comm::detail {

namespace {

constexpr int kQuestionTag = 1;
constexpr int kAnswerTag = 2;
constexpr int kAnswerBytes = 512;

class MpiProber final : public Prober {
 public:
  // Collective over MPI_COMM_WORLD (the duplicate).
  MpiProber() {
    PARADIT_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &comm_) == MPI_SUCCESS,
                  "watchdog: MPI_Comm_dup(MPI_COMM_WORLD) failed");
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
    post_question_receive();
  }

  ~MpiProber() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized) return;
    // The pending receive of a question is cancelled; answers still in flight are small (sent
    // eagerly), given a moment and then cancelled too.
    MPI_Cancel(&question_);
    MPI_Wait(&question_, MPI_STATUS_IGNORE);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    while (!answers_.empty()) {
      reap();
      if (answers_.empty() || std::chrono::steady_clock::now() > deadline) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    for (Answer& a : answers_) {
      MPI_Cancel(&a.request);
      MPI_Wait(&a.request, MPI_STATUS_IGNORE);
    }
    MPI_Comm_free(&comm_);
  }

  int rank() const override { return rank_; }

  void serve() override {
    for (;;) {
      int flag = 0;
      MPI_Status status;
      if (MPI_Test(&question_, &flag, &status) != MPI_SUCCESS || !flag) break;
      Answer a;
      a.text = std::make_shared<std::string>(wait_status());
      if (a.text->size() > kAnswerBytes - 1) a.text->resize(kAnswerBytes - 1);
      MPI_Isend(a.text->data(), static_cast<int>(a.text->size()), MPI_CHAR, status.MPI_SOURCE,
                kAnswerTag, comm_, &a.request);
      answers_.push_back(std::move(a));
      post_question_receive();
    }
    reap();
  }

  std::vector<std::pair<int, std::optional<std::string>>> ask_all(double seconds) override {
    struct Peer {
      int rank;
      MPI_Request ask = MPI_REQUEST_NULL, reply = MPI_REQUEST_NULL;
      char buffer[kAnswerBytes] = {};
      std::optional<std::string> answer;
    };
    std::vector<std::unique_ptr<Peer>> peers;
    for (int r = 0; r < size_; ++r) {
      if (r == rank_) continue;
      auto p = std::make_unique<Peer>();
      p->rank = r;
      MPI_Irecv(p->buffer, kAnswerBytes, MPI_CHAR, r, kAnswerTag, comm_, &p->reply);
      MPI_Isend(&empty_, 0, MPI_CHAR, r, kQuestionTag, comm_, &p->ask);
      peers.push_back(std::move(p));
    }
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    size_t open = peers.size();
    while (open > 0 && std::chrono::steady_clock::now() < deadline) {
      serve();  // a peer that expires at the same moment asks us too
      for (auto& p : peers) {
        if (p->answer || p->reply == MPI_REQUEST_NULL) continue;
        int flag = 0;
        MPI_Status status;
        if (MPI_Test(&p->reply, &flag, &status) == MPI_SUCCESS && flag) {
          int count = 0;
          MPI_Get_count(&status, MPI_CHAR, &count);
          p->answer = std::string(p->buffer, static_cast<size_t>(std::max(count, 0)));
          --open;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    // The job ends right after this: requests of silent peers are left to MPI_Abort.
    std::vector<std::pair<int, std::optional<std::string>>> out;
    for (auto& p : peers) out.emplace_back(p->rank, p->answer);
    return out;
  }

 private:
  struct Answer {
    std::shared_ptr<std::string> text;
    MPI_Request request = MPI_REQUEST_NULL;
  };

  void post_question_receive() {
    MPI_Irecv(&question_buffer_, 0, MPI_CHAR, MPI_ANY_SOURCE, kQuestionTag, comm_, &question_);
  }

  void reap() {
    while (!answers_.empty()) {
      int flag = 0;
      MPI_Test(&answers_.front().request, &flag, MPI_STATUS_IGNORE);
      if (!flag) break;
      answers_.pop_front();
    }
  }

  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1;
  MPI_Request question_ = MPI_REQUEST_NULL;
  char question_buffer_ = 0;
  char empty_ = 0;
  std::deque<Answer> answers_;
};

}  // namespace

std::unique_ptr<Prober> make_mpi_prober() { return std::make_unique<MpiProber>(); }

}  // namespace paradit::comm::detail
