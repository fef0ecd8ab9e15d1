// WorkQueue: a bounded set of worker threads that run blocking jobs (libvirt calls, store
// writes, task steps) in FIFO order. stop() refuses new jobs, lets the running ones finish,
// drops the queued ones, and joins the threads. The workers log to the sink that was current
// on the thread that made the queue (base/log.h: a node's, in a test with several nodes).
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace qiao {

class WorkQueue {
 public:
  WorkQueue(std::string name, size_t threads);
  ~WorkQueue();
  WorkQueue(const WorkQueue&) = delete;
  WorkQueue& operator=(const WorkQueue&) = delete;

  // False when the queue is stopped (the job is not run).
  bool post(std::function<void()> job);
  // Blocks until every job posted before this call has finished.
  void drain();
  void stop();
  size_t pending() const;

 private:
  void workerLoop();

  std::string name_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::condition_variable idle_cv_;
  std::deque<std::function<void()>> jobs_;
  size_t running_ = 0;
  bool stopped_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace qiao
