#include "base/work_queue.h"

#include <pthread.h>

#include "base/log.h"

namespace qiao {

WorkQueue::WorkQueue(std::string name, size_t threads) : name_(std::move(name)) {
  if (threads == 0) threads = 1;
  threads_.reserve(threads);
  for (size_t i = 0; i < threads; ++i) {
    threads_.emplace_back(withLogScope([this] { workerLoop(); }));
    pthread_setname_np(threads_.back().native_handle(), name_.substr(0, 15).c_str());
  }
}

WorkQueue::~WorkQueue() { stop(); }

bool WorkQueue::post(std::function<void()> job) {
  {
    std::lock_guard lock(mutex_);
    if (stopped_) return false;
    jobs_.push_back(std::move(job));
  }
  cv_.notify_one();
  return true;
}

void WorkQueue::drain() {
  std::unique_lock lock(mutex_);
  idle_cv_.wait(lock, [this] { return (jobs_.empty() && running_ == 0) || stopped_; });
}

void WorkQueue::stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopped_ && threads_.empty()) return;
    stopped_ = true;
    jobs_.clear();
  }
  cv_.notify_all();
  idle_cv_.notify_all();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

size_t WorkQueue::pending() const {
  std::lock_guard lock(mutex_);
  return jobs_.size() + running_;
}

void WorkQueue::workerLoop() {
  for (;;) {
    std::function<void()> job;
    {
      std::unique_lock lock(mutex_);
      cv_.wait(lock, [this] { return stopped_ || !jobs_.empty(); });
      if (stopped_) return;
      job = std::move(jobs_.front());
      jobs_.pop_front();
      ++running_;
    }
    job();
    {
      std::lock_guard lock(mutex_);
      --running_;
    }
    idle_cv_.notify_all();
  }
}

}  // namespace qiao
