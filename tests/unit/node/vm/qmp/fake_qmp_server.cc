#include "tests/unit/node/vm/qmp/fake_qmp_server.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>

namespace qiao::testing {

using nlohmann::json;

struct FakeQmpServer::Conn {
  int fd = -1;
  std::string buffer;
  std::map<std::string, json> held;  // command -> its id
  void close() {
    if (fd >= 0) ::close(fd);
    fd = -1;
    buffer.clear();
    held.clear();
  }
};

namespace {

const json kGreeting = {
    {"QMP",
     {{"version", {{"qemu", {{"micro", 0}, {"minor", 2}, {"major", 7}}}, {"package", "fake"}}},
      {"capabilities", json::array({"oob"})}}}};

json eventLine(const std::string& name, const json& data) {
  return {{"event", name},
          {"data", data},
          {"timestamp", {{"seconds", 1700000000}, {"microseconds", 42}}}};
}

}  // namespace

FakeQmpServer::FakeQmpServer() {
  char tmpl[] = "/tmp/qiao-fake-qmp-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) std::abort();
  dir_ = tmpl;
  path_ = dir_ + "/qmp.sock";
  listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path_.c_str(), sizeof addr.sun_path - 1);
  if (listen_fd_ < 0 || ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0 ||
      ::listen(listen_fd_, 8) < 0 || ::pipe(wake_) < 0) {
    std::abort();
  }
}

FakeQmpServer::~FakeQmpServer() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (wake_[1] >= 0) (void)!::write(wake_[1], "x", 1);
  if (thread_.joinable()) thread_.join();
  for (int fd : {listen_fd_, wake_[0], wake_[1]}) {
    if (fd >= 0) ::close(fd);
  }
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

// ---- script ----

FakeQmpServer& FakeQmpServer::expect(std::string command, json value) {
  steps_.push_back([this, command, value](Conn& c) {
    json cmd;
    if (!ensureClient(c) || !readCommand(c, &cmd)) return false;
    if (cmd.value("execute", "") != command) {
      fail("expected " + command + ", got " + cmd.dump());
      return false;
    }
    json reply = {{"return", value}};
    if (cmd.contains("id")) reply["id"] = cmd["id"];
    return writeLine(c, reply.dump());
  });
  return *this;
}

FakeQmpServer& FakeQmpServer::expectError(std::string command, std::string error_class,
                                          std::string desc) {
  steps_.push_back([this, command, error_class, desc](Conn& c) {
    json cmd;
    if (!ensureClient(c) || !readCommand(c, &cmd)) return false;
    if (cmd.value("execute", "") != command) {
      fail("expected " + command + ", got " + cmd.dump());
      return false;
    }
    json reply = {{"error", {{"class", error_class}, {"desc", desc}}}};
    if (cmd.contains("id")) reply["id"] = cmd["id"];
    return writeLine(c, reply.dump());
  });
  return *this;
}

FakeQmpServer& FakeQmpServer::hold(std::string command) {
  steps_.push_back([this, command](Conn& c) {
    json cmd;
    if (!ensureClient(c) || !readCommand(c, &cmd)) return false;
    if (cmd.value("execute", "") != command) {
      fail("expected " + command + " (to hold), got " + cmd.dump());
      return false;
    }
    c.held[command] = cmd.value("id", json());
    return true;
  });
  return *this;
}

FakeQmpServer& FakeQmpServer::answer(const std::string& command, json value) {
  steps_.push_back([this, command, value](Conn& c) {
    auto it = c.held.find(command);
    if (it == c.held.end()) {
      fail("answer: " + command + " is not held");
      return false;
    }
    json reply = {{"return", value}, {"id", it->second}};
    c.held.erase(it);
    return writeLine(c, reply.dump());
  });
  return *this;
}

FakeQmpServer& FakeQmpServer::event(std::string name, json data) {
  steps_.push_back([this, name, data](Conn& c) {
    return ensureClient(c) && writeLine(c, eventLine(name, data).dump());
  });
  return *this;
}

FakeQmpServer& FakeQmpServer::sendRaw(std::string bytes) {
  steps_.push_back([this, bytes](Conn& c) {
    if (!ensureClient(c)) return false;
    size_t done = 0;
    while (done < bytes.size()) {
      ssize_t n = ::send(c.fd, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
      if (n <= 0) return true;  // the client may well hang up half way through a huge line
      done += static_cast<size_t>(n);
    }
    return true;
  });
  return *this;
}

FakeQmpServer& FakeQmpServer::echo(size_t count) {
  steps_.push_back([this, count](Conn& c) {
    size_t answered = 0;
    while (answered < count) {
      std::vector<json> batch;
      json cmd;
      if (!ensureClient(c) || !readCommand(c, &cmd)) return false;
      batch.push_back(cmd);
      // Whatever else is already waiting joins the batch.
      while (batch.size() + answered < count &&
             (c.buffer.find('\n') != std::string::npos || waitReadable(c.fd, 0))) {
        if (!readCommand(c, &cmd)) return false;
        batch.push_back(cmd);
      }
      for (auto it = batch.rbegin(); it != batch.rend(); ++it) {
        json reply = {
            {"return",
             {{"echo", it->value("execute", "")}, {"arguments", it->value("arguments", json())}}},
            {"id", it->value("id", json())}};
        if (!writeLine(c, reply.dump())) return false;
      }
      answered += batch.size();
    }
    return true;
  });
  return *this;
}

FakeQmpServer& FakeQmpServer::expectClientClose(std::chrono::milliseconds max) {
  steps_.push_back([this, max](Conn& c) {
    if (c.fd < 0) return true;
    const auto deadline = std::chrono::steady_clock::now() + max;
    char buf[4096];
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0 || !waitReadable(c.fd, static_cast<int>(left.count()))) {
        fail("the client did not close the connection");
        return false;
      }
      ssize_t n = ::recv(c.fd, buf, sizeof buf, 0);
      if (n <= 0) {
        c.close();
        return true;
      }
    }
  });
  return *this;
}

FakeQmpServer& FakeQmpServer::closeConnection() {
  steps_.push_back([](Conn& c) {
    c.close();
    return true;
  });
  return *this;
}

FakeQmpServer& FakeQmpServer::acceptSilently() {
  steps_.push_back([this](Conn& c) {
    c.close();
    if (!waitReadable(listen_fd_, -1)) return false;
    c.fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (c.fd < 0) return false;
    std::lock_guard lock(mu_);
    ++connections_;
    return true;
  });
  return *this;
}

FakeQmpServer& FakeQmpServer::sleepFor(std::chrono::milliseconds d) {
  steps_.push_back([this, d](Conn&) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, d, [this] { return stopping_; });
    return !stopping_;
  });
  return *this;
}

FakeQmpServer& FakeQmpServer::call(std::function<void()> fn) {
  steps_.push_back([fn](Conn&) {
    fn();
    return true;
  });
  return *this;
}

// ---- running ----

void FakeQmpServer::start() {
  thread_ = std::thread([this] { run(); });
}

void FakeQmpServer::run() {
  Conn c;
  for (auto& step : steps_) {
    if (!step(c)) break;
  }
  // After the script the connection stays open until the test ends (or the client leaves),
  // so that what the client does next is not mistaken for a reaction to a close.
  if (c.fd >= 0) {
    {
      std::lock_guard lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    char buf[4096];
    while (waitReadable(c.fd, -1) && ::recv(c.fd, buf, sizeof buf, 0) > 0) {
    }
    c.close();
    return;
  }
  {
    std::lock_guard lock(mu_);
    done_ = true;
  }
  cv_.notify_all();
}

void FakeQmpServer::fail(const std::string& what) {
  std::lock_guard lock(mu_);
  failures_.push_back(what);
}

bool FakeQmpServer::waitReadable(int fd, int timeout_ms) {
  pollfd fds[2] = {{fd, POLLIN, 0}, {wake_[0], POLLIN, 0}};
  int n = ::poll(fds, 2, timeout_ms);
  if (n <= 0) return false;
  if (fds[1].revents != 0) return false;  // stopping
  return fds[0].revents != 0;
}

bool FakeQmpServer::ensureClient(Conn& c) {
  if (c.fd >= 0) return true;
  if (!waitReadable(listen_fd_, -1)) return false;
  c.fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
  if (c.fd < 0) return false;
  {
    std::lock_guard lock(mu_);
    ++connections_;
  }
  if (!writeLine(c, kGreeting.dump())) return false;
  json cmd;
  if (!readCommand(c, &cmd)) return false;
  if (cmd.value("execute", "") != "qmp_capabilities") {
    fail("expected qmp_capabilities first, got " + cmd.dump());
    return false;
  }
  return writeLine(c, json{{"return", json::object()}, {"id", cmd.value("id", json())}}.dump());
}

bool FakeQmpServer::readCommand(Conn& c, json* out) {
  for (;;) {
    auto nl = c.buffer.find('\n');
    if (nl != std::string::npos) {
      std::string line = c.buffer.substr(0, nl);
      c.buffer.erase(0, nl + 1);
      *out = json::parse(line, nullptr, false);
      if (out->is_discarded() || !out->is_object()) {
        fail("the client sent a line that is not a JSON object: " + line);
        return false;
      }
      if (out->value("execute", "") != "qmp_capabilities") {
        std::lock_guard lock(mu_);
        received_.push_back(*out);
        cv_.notify_all();
      }
      return true;
    }
    if (!waitReadable(c.fd, -1)) return false;
    char buf[4096];
    ssize_t n = ::recv(c.fd, buf, sizeof buf, 0);
    if (n <= 0) {
      fail("the client closed the connection while the server waited for a command");
      c.close();
      return false;
    }
    c.buffer.append(buf, static_cast<size_t>(n));
  }
}

bool FakeQmpServer::writeLine(Conn& c, const std::string& text) {
  std::string line = text + "\r\n";  // as QEMU ends its lines
  size_t done = 0;
  while (done < line.size()) {
    ssize_t n = ::send(c.fd, line.data() + done, line.size() - done, MSG_NOSIGNAL);
    if (n <= 0) {
      fail("cannot write to the client: " + std::string(std::strerror(errno)));
      return false;
    }
    done += static_cast<size_t>(n);
  }
  return true;
}

bool FakeQmpServer::waitDone(std::chrono::milliseconds max) {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, max, [this] { return done_; });
}

bool FakeQmpServer::waitReceived(size_t n, std::chrono::milliseconds max) {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, max, [&] { return received_.size() >= n; });
}

std::vector<std::string> FakeQmpServer::failures() const {
  std::lock_guard lock(mu_);
  return failures_;
}

std::vector<json> FakeQmpServer::received() const {
  std::lock_guard lock(mu_);
  return received_;
}

int FakeQmpServer::connections() const {
  std::lock_guard lock(mu_);
  return connections_;
}

}  // namespace qiao::testing
