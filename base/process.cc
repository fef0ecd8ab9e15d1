#include "base/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "base/handle.h"

extern char** environ;

namespace qiao {
namespace {

using Clock = std::chrono::steady_clock;

bool makePipe(UniqueFd* read_end, UniqueFd* write_end) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return false;
  read_end->reset(fds[0]);
  write_end->reset(fds[1]);
  return true;
}

[[noreturn]] void childExec(const ProcessOptions& options, int in_fd, int out_fd, int err_fd,
                            int status_fd, pid_t parent) {
  setpgid(0, 0);
  // The child dies with its parent: a qiaod killed in the middle of a step must not leave a
  // qemu-img writing into a volume behind it while the next qiaod runs the step again.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(127);  // the parent died before prctl
  dup2(in_fd, 0);
  dup2(out_fd, 1);
  dup2(err_fd, 2);
  // Everything else closes: the daemon's sockets and files do not leak into children.
  for (int fd = 3; fd < 4096; ++fd) {
    if (fd != status_fd) ::close(fd);
  }
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  signal(SIGPIPE, SIG_DFL);
  if (!options.cwd.empty() && chdir(options.cwd.c_str()) != 0) {
    int e = errno;
    (void)!write(status_fd, &e, sizeof e);
    _exit(127);
  }
  for (const auto& kv : options.extra_env) putenv(const_cast<char*>(kv.c_str()));
  std::vector<char*> argv;
  for (const auto& a : options.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  execvp(argv[0], argv.data());
  int e = errno;
  (void)!write(status_fd, &e, sizeof e);
  _exit(127);
}

}  // namespace

Result<ProcessResult> runProcess(const ProcessOptions& options) {
  if (options.argv.empty() || options.argv[0].empty()) {
    return makeError(ErrorCode::kInvalidArgument, "process", "no program to run");
  }
  UniqueFd in_r, in_w, out_r, out_w, err_r, err_w, st_r, st_w;
  if (!makePipe(&in_r, &in_w) || !makePipe(&out_r, &out_w) || !makePipe(&err_r, &err_w) ||
      !makePipe(&st_r, &st_w)) {
    return makeError(ErrorCode::kInternal, "process",
                     std::string("pipe failed: ") + std::strerror(errno));
  }
  const pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    return makeError(ErrorCode::kInternal, "process",
                     std::string("fork failed: ") + std::strerror(errno));
  }
  if (pid == 0) childExec(options, in_r.get(), out_w.get(), err_w.get(), st_w.get(), parent);

  setpgid(pid, pid);  // also in the parent, so the group exists before we may signal it
  in_r.reset();
  out_w.reset();
  err_w.reset();
  st_w.reset();

  // The status pipe closes on a successful exec (CLOEXEC) or carries the exec's errno.
  int exec_errno = 0;
  ssize_t got = 0;
  do {
    got = read(st_r.get(), &exec_errno, sizeof exec_errno);
  } while (got < 0 && errno == EINTR);
  if (got == sizeof exec_errno) {
    int status = 0;
    waitpid(pid, &status, 0);
    ErrorCode code = exec_errno == ENOENT ? ErrorCode::kNotFound : ErrorCode::kInternal;
    return makeError(code, "process",
                     "cannot run " + options.argv[0] + ": " + std::strerror(exec_errno));
  }

  ProcessResult result;
  size_t stdin_off = 0;
  if (options.stdin_data.empty()) in_w.reset();
  else fcntl(in_w.get(), F_SETFL, O_NONBLOCK);
  auto deadline = Clock::now() + std::chrono::milliseconds(options.timeout_ms);
  auto kill_at = Clock::time_point::max();
  bool term_sent = false;
  char buf[65536];
  while (out_r.valid() || err_r.valid()) {
    pollfd fds[3];
    int n = 0;
    int out_i = -1, err_i = -1, in_i = -1;
    if (out_r.valid()) { fds[n] = {out_r.get(), POLLIN, 0}; out_i = n++; }
    if (err_r.valid()) { fds[n] = {err_r.get(), POLLIN, 0}; err_i = n++; }
    if (in_w.valid()) { fds[n] = {in_w.get(), POLLOUT, 0}; in_i = n++; }
    auto now = Clock::now();
    if (!term_sent && now >= deadline) {
      result.timed_out = true;
      kill(-pid, SIGTERM);
      term_sent = true;
      kill_at = now + std::chrono::seconds(2);
    }
    if (term_sent && now >= kill_at) {
      kill(-pid, SIGKILL);
      kill_at = Clock::time_point::max();
    }
    auto until = term_sent ? kill_at : deadline;
    int wait_ms = until == Clock::time_point::max()
                      ? 200
                      : static_cast<int>(std::max<int64_t>(
                            1, std::chrono::duration_cast<std::chrono::milliseconds>(until - now)
                                   .count()));
    int ready = poll(fds, static_cast<nfds_t>(n), std::min(wait_ms, 200));
    if (ready < 0 && errno != EINTR) break;
    if (ready <= 0) continue;
    auto drain = [&](int index, UniqueFd& fd, std::string& sink) {
      if (index < 0 || (fds[index].revents & (POLLIN | POLLHUP | POLLERR)) == 0) return;
      ssize_t r = read(fd.get(), buf, sizeof buf);
      if (r > 0) {
        size_t room = options.max_output_bytes > sink.size()
                          ? options.max_output_bytes - sink.size() : 0;
        sink.append(buf, std::min(room, static_cast<size_t>(r)));
      } else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
        fd.reset();
      }
    };
    drain(out_i, out_r, result.out);
    drain(err_i, err_r, result.err);
    if (in_i >= 0 && (fds[in_i].revents & (POLLOUT | POLLERR | POLLHUP)) != 0) {
      ssize_t w = write(in_w.get(), options.stdin_data.data() + stdin_off,
                        options.stdin_data.size() - stdin_off);
      if (w > 0) stdin_off += static_cast<size_t>(w);
      if (w < 0 && errno != EAGAIN && errno != EINTR) in_w.reset();
      if (stdin_off >= options.stdin_data.size()) in_w.reset();
    }
  }
  in_w.reset();
  // Output closed; the process may still run (it closed its stdout): wait with the deadline.
  int status = 0;
  for (;;) {
    pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid) break;
    if (w < 0 && errno != EINTR) break;
    auto now = Clock::now();
    if (!term_sent && now >= deadline) {
      result.timed_out = true;
      kill(-pid, SIGTERM);
      term_sent = true;
      kill_at = now + std::chrono::seconds(2);
    }
    if (term_sent && now >= kill_at) kill(-pid, SIGKILL);
    usleep(10000);
  }
  if (WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.term_signal = WTERMSIG(status);
  }
  return result;
}

std::string ProcessResult::message() const {
  if (timed_out) return "timed out";
  std::string m = err.empty() ? out : err;
  while (!m.empty() && (m.back() == '\n' || m.back() == ' ')) m.pop_back();
  return m;
}

}  // namespace qiao
