#include "comm/local_communicator.h"

#include <cstring>
#include <deque>
#include <mutex>

namespace paradit::comm {

namespace {
// A receive posted before its send: filled (and marked done) by the matching isend.
struct PendingRecv {
  int tag = 0;
  void* data = nullptr;
  size_t nbytes = 0;
  std::shared_ptr<void> keep_alive;
  std::function<void()> on_done;
  bool done = false;
};

class PendingRecvRequest final : public Request::Impl {
 public:
  PendingRecvRequest(std::shared_ptr<PendingRecv> recv, std::shared_ptr<std::mutex> mutex)
      : recv_(std::move(recv)), mutex_(std::move(mutex)) {}
  void wait() override {
    if (!test()) {
      fail("local communicator: irecv with tag ", recv_->tag,
           " from rank 0 waits for a message that no isend has sent (a group of one would hang)");
    }
  }
  bool test() override {
    std::lock_guard<std::mutex> lock(*mutex_);
    return recv_->done;
  }

 private:
  std::shared_ptr<PendingRecv> recv_;
  std::shared_ptr<std::mutex> mutex_;
};

void check_sizes(size_t message, size_t buffer, int tag) {
  PARADIT_CHECK(message == buffer, "local communicator: message with tag ", tag, " has ", message,
                " bytes but the receive buffer has ", buffer);
}
}  // namespace

struct LocalCommunicator::Mailbox {
  std::shared_ptr<std::mutex> mutex = std::make_shared<std::mutex>();
  std::deque<std::pair<int, std::vector<char>>> buffered;  // sends not yet received
  std::deque<std::shared_ptr<PendingRecv>> pending;        // receives not yet matched
};

LocalCommunicator::LocalCommunicator() : box_(std::make_shared<Mailbox>()) {}
LocalCommunicator::LocalCommunicator(LocalCommunicator&& other) noexcept
    : Communicator(std::move(other)), box_(std::move(other.box_)) {}
LocalCommunicator::~LocalCommunicator() = default;

std::unique_ptr<Communicator> LocalCommunicator::split(int color, int key) const {
  return std::make_unique<LocalCommunicator>();
}

void LocalCommunicator::alltoallv_bytes(const void* send, const std::vector<size_t>& send_counts,
                                        const std::vector<size_t>& send_displs, void* recv,
                                        const std::vector<size_t>& recv_counts,
                                        const std::vector<size_t>& recv_displs) const {
  PARADIT_CHECK(send_counts[0] == recv_counts[0], "local all_to_all: sends ", send_counts[0],
                " bytes to itself but expects ", recv_counts[0]);
  std::memmove(static_cast<char*>(recv) + recv_displs[0],
               static_cast<const char*>(send) + send_displs[0], send_counts[0]);
}

void LocalCommunicator::allgatherv_bytes(const void* send, size_t send_count, void* recv,
                                         const std::vector<size_t>& recv_counts,
                                         const std::vector<size_t>& recv_displs) const {
  PARADIT_CHECK(send_count == recv_counts[0], "local all_gather: contributes ", send_count,
                " bytes but expects ", recv_counts[0]);
  std::memmove(static_cast<char*>(recv) + recv_displs[0], send, send_count);
}

Request LocalCommunicator::isend_bytes(const void* data, size_t nbytes, int dest, int tag,
                                       std::shared_ptr<void> keep_alive) const {
  std::shared_ptr<PendingRecv> match;
  {
    std::lock_guard<std::mutex> lock(*box_->mutex);
    for (auto it = box_->pending.begin(); it != box_->pending.end(); ++it) {
      if ((*it)->tag == tag) {
        match = *it;
        box_->pending.erase(it);
        break;
      }
    }
    if (!match) {
      // Buffered send: the request is complete at once, the payload waits here.
      const char* p = static_cast<const char*>(data);
      box_->buffered.emplace_back(tag, std::vector<char>(p, p + nbytes));
      return Request();
    }
  }
  check_sizes(nbytes, match->nbytes, tag);
  std::memcpy(match->data, data, nbytes);
  if (match->on_done) match->on_done();
  std::lock_guard<std::mutex> lock(*box_->mutex);
  match->done = true;
  return Request();
}

Request LocalCommunicator::irecv_bytes(void* data, size_t nbytes, int source, int tag,
                                       std::shared_ptr<void> keep_alive,
                                       std::function<void()> on_done) const {
  std::vector<char> message;
  {
    std::lock_guard<std::mutex> lock(*box_->mutex);
    bool found = false;
    for (auto it = box_->buffered.begin(); it != box_->buffered.end(); ++it) {
      if (it->first == tag) {
        message = std::move(it->second);
        box_->buffered.erase(it);
        found = true;
        break;
      }
    }
    if (!found) {
      auto recv = std::make_shared<PendingRecv>();
      recv->tag = tag;
      recv->data = data;
      recv->nbytes = nbytes;
      recv->keep_alive = std::move(keep_alive);
      recv->on_done = std::move(on_done);
      box_->pending.push_back(recv);
      return Request(std::make_unique<PendingRecvRequest>(recv, box_->mutex));
    }
  }
  check_sizes(message.size(), nbytes, tag);
  std::memcpy(data, message.data(), nbytes);
  if (on_done) on_done();
  return Request();
}

}  // namespace paradit::comm
