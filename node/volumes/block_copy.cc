#include "node/volumes/block_copy.h"

#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>
#include <vector>

#include "base/log.h"
#include "base/process.h"
#include "node/tasks/task_engine.h"
#include "storage/qemu_block.h"

namespace qiao {
namespace {

const Logger kLog("blockjob");

// The job of `id` in query-jobs' answer; null when QEMU has none.
Result<nlohmann::json> findJob(QmpChannel& qmp, const std::string& id) {
  auto jobs = qmp.execute("query-jobs");
  if (!jobs) return std::unexpected(jobs.error());
  if (!jobs->is_array()) {
    return makeError(ErrorCode::kInternal, "qmp", "query-jobs did not answer a list");
  }
  for (const auto& job : *jobs) {
    if (job.is_object() && job.value("id", "") == id) return job;
  }
  return nlohmann::json(nullptr);
}

Status startJob(QmpChannel& qmp, const BlockCopyPlan& plan) {
  if (plan.add_source) {
    if (auto added = addBlockNodes(qmp, *plan.add_source); !added) return added;
  }
  if (auto added = addBlockNodes(qmp, plan.target); !added) return added;
  nlohmann::json args = {{"job-id", plan.job_id},      {"device", plan.source_node},
                         {"target", plan.target.name}, {"sync", "full"},
                         {"auto-dismiss", false},      {"auto-finalize", true}};
  if (plan.speed_bytes_per_sec > 0) args["speed"] = plan.speed_bytes_per_sec;
  if (auto started = qmp.execute("blockdev-backup", args); !started) {
    return std::unexpected(started.error());
  }
  kLog.info("block copy started",
            {{"job", plan.job_id},
             {"source", plan.source_node},
             {"target", plan.target.source.image.empty() ? plan.target.source.path
                                                         : plan.target.source.image}});
  return {};
}

BlockCopyProgress progressOf(const nlohmann::json& job) {
  BlockCopyProgress p;
  p.done_bytes = job.value("current-progress", int64_t{0});
  p.total_bytes = job.value("total-progress", int64_t{0});
  return p;
}

}  // namespace

Result<std::set<std::string>> blockNodeNames(QmpChannel& qmp) {
  auto listed = qmp.execute("query-named-block-nodes", {{"flat", true}});
  if (!listed) return std::unexpected(listed.error());
  if (!listed->is_array()) {
    return makeError(ErrorCode::kInternal, "qmp", "query-named-block-nodes did not answer a list");
  }
  std::set<std::string> names;
  for (const auto& node : *listed) {
    if (node.is_object()) names.insert(node.value("node-name", ""));
  }
  return names;
}

Status addBlockNodes(QmpChannel& qmp, const BlockNode& node) {
  auto have = blockNodeNames(qmp);
  if (!have) return std::unexpected(have.error());
  const std::string file = node.name + "-file";
  if (!have->contains(file)) {
    auto added = qmp.execute("blockdev-add", protocolNode(node.source, file, node.read_only));
    if (!added) return std::unexpected(added.error());
  }
  if (!have->contains(node.name)) {
    auto added = qmp.execute("blockdev-add", rawNode(node.name, file, node.read_only));
    if (!added) return std::unexpected(added.error());
  }
  return {};
}

Status deleteBlockNodes(QmpChannel& qmp, const std::vector<std::string>& names) {
  auto have = blockNodeNames(qmp);
  if (!have) return std::unexpected(have.error());
  for (const auto& name : names) {
    for (const std::string& node : {name, name + "-file"}) {
      if (!have->contains(node)) continue;
      if (auto del = qmp.execute("blockdev-del", {{"node-name", node}}); !del) {
        return std::unexpected(del.error());
      }
    }
  }
  return {};
}

Status runBlockCopy(QmpChannel& qmp, const BlockCopyPlan& plan, const BlockCopyHooks& hooks) {
  auto job = findJob(qmp, plan.job_id);
  if (!job) return std::unexpected(job.error());
  if (job->is_null()) {
    if (hooks.cancelled && hooks.cancelled()) {
      return std::unexpected(TaskEngine::Run::cancelledError());
    }
    if (auto started = startJob(qmp, plan); !started) return started;
  } else {
    kLog.info("following a block copy begun before", {{"job", plan.job_id}});
  }
  bool cancel_asked = false;
  for (;;) {
    job = findJob(qmp, plan.job_id);
    if (!job) return std::unexpected(job.error());
    if (job->is_null()) {
      return makeError(ErrorCode::kUnavailable, "blockjob",
                       "block job " + plan.job_id + " is gone (its QEMU was restarted?)");
    }
    if (hooks.progress) hooks.progress(progressOf(*job));
    if (job->value("status", "") == "concluded") {
      if (!job->contains("error")) return {};
      if (cancel_asked) return std::unexpected(TaskEngine::Run::cancelledError());
      return makeError(ErrorCode::kInternal, "blockjob",
                       "block copy failed: " + job->value("error", std::string("unknown")));
    }
    if (!cancel_asked && hooks.cancelled && hooks.cancelled()) {
      auto asked = qmp.execute("job-cancel", {{"id", plan.job_id}});
      // A job that concluded meanwhile cannot be cancelled: the next poll sees its outcome.
      if (!asked) kLog.info("job-cancel refused", {{"error", asked.error().describe()}});
      cancel_asked = true;
    }
    std::this_thread::sleep_for(hooks.poll);
  }
}

Status cleanupBlockCopy(QmpChannel& qmp, const BlockCopyPlan& plan) {
  auto job = findJob(qmp, plan.job_id);
  if (!job) return std::unexpected(job.error());
  if (!job->is_null()) {
    if (job->value("status", "") != "concluded") {
      (void)qmp.execute("job-cancel", {{"id", plan.job_id}});
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
      while (!job->is_null() && job->value("status", "") != "concluded") {
        if (std::chrono::steady_clock::now() > deadline) {
          return makeError(ErrorCode::kTimeout, "blockjob",
                           "block job " + plan.job_id + " did not stop within 30 s");
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        job = findJob(qmp, plan.job_id);
        if (!job) return std::unexpected(job.error());
      }
    }
    if (!job->is_null()) {
      if (auto dismissed = qmp.execute("job-dismiss", {{"id", plan.job_id}}); !dismissed) {
        return std::unexpected(dismissed.error());
      }
    }
  }
  std::vector<std::string> nodes = {plan.target.name};
  if (plan.add_source) nodes.push_back(plan.add_source->name);
  return deleteBlockNodes(qmp, nodes);
}

namespace {

struct DaemonPaths {
  std::string socket, pidfile;
};

DaemonPaths pathsOf(const StorageDaemonOptions& options, const std::string& name) {
  return {options.dir + "/" + name + ".qmp", options.dir + "/" + name + ".pid"};
}

// The daemon's pid from its pid file, when that process is still the daemon that wrote it
// (a qemu-storage-daemon whose command line names the file: a pid reused by anything else,
// another copy's daemon included, is never taken for it).
pid_t livePid(const std::string& pidfile) {
  std::ifstream in(pidfile);
  long pid = 0;
  if (!(in >> pid) || pid <= 1) return 0;
  std::ifstream cmdline("/proc/" + std::to_string(pid) + "/cmdline", std::ios::binary);
  std::string args((std::istreambuf_iterator<char>(cmdline)), std::istreambuf_iterator<char>());
  if (!args.starts_with("qemu-storage-daemon") &&
      args.find("/qemu-storage-daemon") == std::string::npos) {
    return 0;
  }
  return args.find(std::string(1, '\0') + pidfile + '\0') != std::string::npos
             ? static_cast<pid_t>(pid)
             : 0;
}

// Waits up to `limit` for the daemon of `pidfile` to be gone.
void waitGone(const std::string& pidfile, std::chrono::milliseconds limit) {
  constexpr std::chrono::milliseconds kPoll{100};
  for (auto waited = std::chrono::milliseconds(0); waited < limit && livePid(pidfile) > 0;
       waited += kPoll) {
    std::this_thread::sleep_for(kPoll);
  }
}

void killAndForget(const DaemonPaths& paths) {
  if (pid_t pid = livePid(paths.pidfile); pid > 0) {
    ::kill(pid, SIGKILL);
    waitGone(paths.pidfile, std::chrono::seconds(5));
  }
  std::error_code ec;
  std::filesystem::remove(paths.socket, ec);
  std::filesystem::remove(paths.pidfile, ec);
}

std::shared_ptr<QmpSocketChannel> channelTo(QmpRuntime& runtime, const DaemonPaths& paths,
                                            const std::string& name) {
  QmpSocketOptions options;
  options.path = paths.socket;
  options.name = "qsd " + name;
  options.connect_timeout = std::chrono::seconds(5);
  return std::make_shared<QmpSocketChannel>(runtime, std::move(options));
}

}  // namespace

Result<std::shared_ptr<QmpSocketChannel>> openStorageDaemon(QmpRuntime& runtime,
                                                            const StorageDaemonOptions& options,
                                                            const std::string& name) {
  const DaemonPaths paths = pathsOf(options, name);
  if (paths.socket.find(',') != std::string::npos) {
    return makeError(ErrorCode::kInvalidArgument, "blockjob",
                     "the storage daemons' directory " + options.dir +
                         " has a ',' in its path, which QEMU's options cannot carry");
  }
  if (livePid(paths.pidfile) > 0) {
    auto channel = channelTo(runtime, paths, name);
    if (channel->connect()) return channel;
    kLog.warn("a storage daemon does not answer; restarting it", {{"name", name}});
  }
  killAndForget(paths);
  std::error_code ec;
  std::filesystem::create_directories(options.dir, ec);
  if (ec) {
    return makeError(ErrorCode::kInternal, "blockjob",
                     "cannot make " + options.dir + ": " + ec.message());
  }
  std::vector<std::string> argv = {options.binary, "--daemonize", "--pidfile", paths.pidfile};
  if (!options.ceph_key_file.empty()) {
    argv.push_back("--object");
    argv.push_back(nlohmann::json{
        {"qom-type", "secret"},
        {"id", kCephKeyId},
        {"file", options.ceph_key_file},
        {"format",
         "base64"}}.dump());
  }
  argv.insert(argv.end(), {"--chardev", "socket,id=qmp,server=on,wait=off,path=" + paths.socket,
                           "--monitor", "chardev=qmp"});
  ProcessOptions process;
  process.argv = std::move(argv);
  process.timeout_ms = 20000;
  auto ran = runProcess(process);
  if (!ran) return std::unexpected(ran.error());
  if (ran->exit_code != 0) {
    return makeError(ErrorCode::kUnavailable, "blockjob",
                     "qemu-storage-daemon did not start: " + ran->message());
  }
  auto channel = channelTo(runtime, paths, name);
  if (auto connected = channel->connect(); !connected) return std::unexpected(connected.error());
  kLog.info("storage daemon started",
            {{"name", name}, {"pid", std::to_string(livePid(paths.pidfile))}});
  return channel;
}

Status stopStorageDaemon(QmpRuntime& runtime, const StorageDaemonOptions& options,
                         const std::string& name, QmpChannel* connected) {
  const DaemonPaths paths = pathsOf(options, name);
  if (livePid(paths.pidfile) > 0) {
    std::shared_ptr<QmpSocketChannel> own;
    if (connected == nullptr) {
      own = channelTo(runtime, paths, name);
      if (own->connect()) connected = own.get();
    }
    if (connected != nullptr) {
      (void)connected->execute("quit");  // the answer may be lost with the connection
      waitGone(paths.pidfile, std::chrono::seconds(10));
    }
  }
  killAndForget(paths);
  return {};
}

}  // namespace qiao
