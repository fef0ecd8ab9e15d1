// ApiClient, and qiaoctl end to end, against a small HTTPS server in this test: Beast,
// synchronous, a thread per connection, each answer scripted by the test. Certificates come
// from the openssl command line, into a temporary directory.
#include "node/client/client.h"

#include <gtest/gtest.h>
#include <openssl/ssl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>
#include <thread>

#include "node/cli/output.h"
#include "node/cli/qiaoctl.h"

namespace qiao {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = net::ssl;
namespace fs = std::filesystem;
using tcp = net::ip::tcp;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

// ---- certificates ------------------------------------------------------------------------

bool sh(const std::string& command) {
  return std::system(("(" + command + ") >/dev/null 2>&1").c_str()) == 0;
}

// A CA "ca" that qiaoctl trusts, a CA "other" it does not, and leaf certificates from them.
class TestPki {
 public:
  TestPki() {
    char tmpl[] = "/tmp/qiao-client-test-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) return;
    dir_ = tmpl;
    ok_ = sh("command -v openssl") && makeCa("ca") && makeCa("other") &&
          issue("server", "ca", "IP:127.0.0.1,IP:::1,DNS:localhost") &&
          issue("server-other-ca", "other", "IP:127.0.0.1,DNS:localhost") &&
          issue("server-wrong-name", "ca", "DNS:elsewhere.example") &&
          issue("client", "ca", "URI:qiao://test/user/admin");
  }
  ~TestPki() {
    std::error_code ec;
    if (!dir_.empty()) fs::remove_all(dir_, ec);
  }
  bool ok() const { return ok_; }
  const std::string& dir() const { return dir_; }
  std::string path(const std::string& file) const { return dir_ + "/" + file; }

 private:
  bool makeCa(const std::string& name) {
    return sh("cd '" + dir_ +
              "' && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
              "-keyout " +
              name + ".key -out " + name + ".crt -subj /CN=" + name + " -days 2");
  }
  bool issue(const std::string& name, const std::string& ca, const std::string& san) {
    std::ofstream(path(name + ".ext"))
        << "subjectAltName=" << san << "\nbasicConstraints=CA:FALSE\n";
    return sh("cd '" + dir_ +
              "' && openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
              "-keyout " +
              name + ".key -out " + name + ".csr -subj /CN=" + name + " && openssl x509 -req -in " +
              name + ".csr -CA " + ca + ".crt -CAkey " + ca + ".key -CAcreateserial -days 2 -out " +
              name + ".crt -extfile " + name + ".ext");
  }

  std::string dir_;
  bool ok_ = false;
};

const TestPki& pki() {
  static const TestPki instance;
  return instance;
}

// ---- the server ---------------------------------------------------------------------------

struct SeenRequest {
  int connection = 0;
  std::string method, target, body, content_type, host;
};

struct Reply {
  enum class Kind { kAnswer, kAnswerThenClose, kCloseWithoutAnswer, kHang, kEventStream };
  Kind kind = Kind::kAnswer;
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::map<std::string, std::string> headers;
  std::vector<std::string> chunks;  // kEventStream: each its own HTTP chunk, 30 ms apart
  bool end_stream = true;           // kEventStream: else the stream stays open until stop
};
using Handler = std::function<Reply(const SeenRequest&)>;

Reply jsonReply(int status, const json& body) {
  Reply r;
  r.status = status;
  r.body = body.dump();
  return r;
}

Reply apiError(int status, const std::string& code, const std::string& message,
               const json& details = json::object()) {
  return jsonReply(status,
                   {{"error", {{"code", code}, {"message", message}, {"details", details}}}});
}

struct ServerOptions {
  std::string cert = "server";
  std::string address = "127.0.0.1";
  bool tls = true;  // false: accept and never speak (a handshake that never ends)
};

class TestServer {
 public:
  explicit TestServer(Handler handler, ServerOptions options = {})
      : handler_(std::move(handler)), acceptor_(ioc_) {
    tls_.use_certificate_chain_file(pki().path(options.cert + ".crt"));
    tls_.use_private_key_file(pki().path(options.cert + ".key"), ssl::context::pem);
    tls_.load_verify_file(pki().path("ca.crt"));
    tls_.set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
    tls_enabled_ = options.tls;
    tcp::endpoint ep(net::ip::make_address(options.address), 0);
    acceptor_.open(ep.protocol());
    acceptor_.set_option(tcp::acceptor::reuse_address(true));
    acceptor_.bind(ep);
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    accept_thread_ = std::thread([this] { acceptLoop(); });
  }
  ~TestServer() { stop(); }

  int port() const { return port_; }
  int connections() const { return connections_.load(); }
  std::vector<SeenRequest> requests() const {
    std::lock_guard lock(mutex_);
    return seen_;
  }

  void stop() {
    {
      std::lock_guard lock(mutex_);
      if (stopping_) return;
      stopping_ = true;
      for (int fd : open_fds_) ::shutdown(fd, SHUT_RDWR);
    }
    stopped_.notify_all();
    // Wake the blocking accept.
    boost::system::error_code ignored;
    tcp::socket poke(ioc_);
    poke.connect(acceptor_.local_endpoint(), ignored);
    accept_thread_.join();
    for (auto& t : connection_threads_) t.join();
  }

 private:
  void acceptLoop() {
    for (int index = 1;; ++index) {
      tcp::socket socket(ioc_);
      boost::system::error_code ec;
      acceptor_.accept(socket, ec);
      std::lock_guard lock(mutex_);
      if (stopping_ || ec) return;
      ++connections_;
      open_fds_.insert(socket.native_handle());
      connection_threads_.emplace_back(
          [this, s = std::move(socket), index]() mutable { serve(std::move(s), index); });
    }
  }

  // Waits until stop() (bounded, so that a broken test cannot hang the run).
  void waitForStop() {
    std::unique_lock lock(mutex_);
    stopped_.wait_for(lock, std::chrono::seconds(20), [this] { return stopping_; });
  }

  void serve(tcp::socket accepted, int index) {
    ssl::stream<tcp::socket> stream(std::move(accepted), tls_);
    tcp::socket& socket = stream.next_layer();
    const int fd = socket.native_handle();
    auto finish = [&] {
      std::lock_guard lock(mutex_);
      open_fds_.erase(fd);
      boost::system::error_code ignored;
      socket.close(ignored);
    };
    if (!tls_enabled_) {
      waitForStop();
      finish();
      return;
    }
    boost::system::error_code ec;
    stream.handshake(ssl::stream_base::server, ec);
    beast::flat_buffer buffer;
    while (!ec) {
      http::request<http::string_body> req;
      http::read(stream, buffer, req, ec);
      if (ec) break;
      SeenRequest seen{index,
                       std::string(req.method_string()),
                       std::string(req.target()),
                       req.body(),
                       std::string(req[http::field::content_type]),
                       std::string(req[http::field::host])};
      {
        std::lock_guard lock(mutex_);
        seen_.push_back(seen);
      }
      Reply reply = handler_(seen);
      if (reply.kind == Reply::Kind::kCloseWithoutAnswer) break;
      if (reply.kind == Reply::Kind::kHang) {
        waitForStop();
        break;
      }
      if (reply.kind == Reply::Kind::kEventStream) {
        std::string head = "HTTP/1.1 " + std::to_string(reply.status) +
                           " OK\r\nContent-Type: text/event-stream\r\n"
                           "Transfer-Encoding: chunked\r\n\r\n";
        net::write(stream, net::buffer(head), ec);
        for (const auto& chunk : reply.chunks) {
          if (ec) break;
          std::this_thread::sleep_for(std::chrono::milliseconds(30));
          char size[32];
          std::snprintf(size, sizeof size, "%zx\r\n", chunk.size());
          net::write(stream, net::buffer(std::string(size) + chunk + "\r\n"), ec);
        }
        if (reply.end_stream) {
          net::write(stream, net::buffer(std::string("0\r\n\r\n")), ec);
        } else {
          waitForStop();
        }
        break;
      }
      http::response<http::string_body> res{static_cast<http::status>(reply.status), 11};
      res.set(http::field::content_type, reply.content_type);
      for (const auto& [k, v] : reply.headers) res.set(k, v);
      res.body() = reply.body;
      res.keep_alive(req.keep_alive());
      res.prepare_payload();
      http::write(stream, res, ec);
      if (reply.kind == Reply::Kind::kAnswerThenClose) {
        // What a server closing an idle connection does: close_notify, then FIN.
        SSL_shutdown(stream.native_handle());
        break;
      }
      if (!req.keep_alive()) break;
    }
    finish();
  }

  Handler handler_;
  net::io_context ioc_;
  ssl::context tls_{ssl::context::tls_server};
  bool tls_enabled_ = true;
  tcp::acceptor acceptor_;
  int port_ = 0;
  std::thread accept_thread_;
  std::vector<std::thread> connection_threads_;
  std::atomic<int> connections_{0};
  mutable std::mutex mutex_;
  std::condition_variable stopped_;
  bool stopping_ = false;
  std::set<int> open_fds_;
  std::vector<SeenRequest> seen_;
};

class ClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!pki().ok()) GTEST_SKIP() << "the openssl command cannot make the test certificates";
  }

  ClientConfig config(int port, const std::string& host = "127.0.0.1", int timeout_ms = 5000) {
    ClientConfig c;
    c.endpoint = "https://" + host + ":" + std::to_string(port);
    c.ca = pki().path("ca.crt");
    c.cert = pki().path("client.crt");
    c.key = pki().path("client.key");
    c.timeout_ms = timeout_ms;
    return c;
  }

  ApiClient client(const ClientConfig& c) {
    auto made = ApiClient::create(c);
    if (!made) throw std::runtime_error("ApiClient::create: " + made.error().describe());
    return std::move(*made);
  }
};

// ---- ApiClient ----------------------------------------------------------------------------

TEST_F(ClientTest, RequestAndResponse) {
  TestServer server([](const SeenRequest& r) {
    Reply reply = jsonReply(201, {{"method", r.method},
                                  {"target", r.target},
                                  {"body", r.body},
                                  {"content_type", r.content_type},
                                  {"host", r.host}});
    reply.headers["Location"] = "/v1/tasks/t1";
    return reply;
  });
  auto c = client(config(server.port()));
  auto r = c.request("POST", "/v1/vms?start=false", R"({"name":"web1"})");
  ASSERT_TRUE(r.has_value()) << r.error().describe();
  EXPECT_EQ(r->status, 201);
  EXPECT_EQ(r->content_type, "application/json");
  EXPECT_EQ(r->headers["Location"], "/v1/tasks/t1");
  auto body = json::parse(r->body);
  EXPECT_EQ(body["method"], "POST");
  EXPECT_EQ(body["target"], "/v1/vms?start=false");
  EXPECT_EQ(body["body"], R"({"name":"web1"})");
  EXPECT_EQ(body["content_type"], "application/json");
  EXPECT_EQ(body["host"], "127.0.0.1:" + std::to_string(server.port()));

  // Any status is an answer; the error body becomes an Error.
  TestServer failing([](const SeenRequest&) {
    return apiError(409, "conflict", "vm acme/web1 is running; stop it first",
                    {{"state", "running"}});
  });
  auto c2 = client(config(failing.port()));
  auto r2 = c2.request("DELETE", "/v1/vms/web1");
  ASSERT_TRUE(r2.has_value());
  EXPECT_EQ(r2->status, 409);
  Error e = errorFromResponse(*r2);
  EXPECT_EQ(e.code, ErrorCode::kConflict);
  EXPECT_EQ(e.message, "vm acme/web1 is running; stop it first");
  EXPECT_EQ(json::parse(e.details_json)["state"], "running");
}

TEST_F(ClientTest, RefusesRequestsThatCouldSmuggleHeaders) {
  TestServer server([](const SeenRequest&) { return jsonReply(200, json::object()); });
  auto c = client(config(server.port()));
  EXPECT_FALSE(c.request("GET", "/v1/vms\r\nX-Evil: 1").has_value());
  EXPECT_FALSE(c.request("GET", "v1/vms").has_value());
  EXPECT_FALSE(c.request("GE T", "/v1/vms").has_value());
  EXPECT_TRUE(server.requests().empty());
}

TEST_F(ClientTest, KeepsTheConnectionAlive) {
  TestServer server([](const SeenRequest&) { return jsonReply(200, {{"ok", true}}); });
  auto c = client(config(server.port()));
  for (int i = 0; i < 5; ++i) {
    auto r = c.request(i % 2 == 0 ? "GET" : "POST", "/v1/x", i % 2 == 0 ? "" : "{}");
    ASSERT_TRUE(r.has_value()) << r.error().describe();
    EXPECT_EQ(r->status, 200);
  }
  EXPECT_EQ(server.connections(), 1);
  EXPECT_EQ(server.requests().size(), 5u);
  // A moved-to client keeps working.
  ApiClient moved = std::move(c);
  ASSERT_TRUE(moved.request("GET", "/v1/x").has_value());
}

TEST_F(ClientTest, ReconnectsWhenTheServerClosedTheConnection) {
  // The server closes after every answer, though it said keep-alive (an idle timeout).
  TestServer server([](const SeenRequest&) {
    Reply r = jsonReply(200, {{"ok", true}});
    r.kind = Reply::Kind::kAnswerThenClose;
    return r;
  });
  auto c = client(config(server.port()));
  ASSERT_TRUE(c.request("GET", "/v1/a").has_value());
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  // Found closed before sending: a fresh connection, for a POST as well as a GET.
  auto post = c.request("POST", "/v1/b", "{}");
  ASSERT_TRUE(post.has_value()) << post.error().describe();
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  auto get = c.request("GET", "/v1/c");
  ASSERT_TRUE(get.has_value()) << get.error().describe();
  EXPECT_EQ(server.connections(), 3);
  ASSERT_EQ(server.requests().size(), 3u);  // nothing was sent twice
}

TEST_F(ClientTest, RetriesOnlyAGetWhenTheConnectionBreaksUnderIt) {
  // The second request on a connection is read and then dropped without an answer.
  std::mutex m;
  std::map<int, int> per_connection;
  TestServer server([&](const SeenRequest& r) {
    std::lock_guard lock(m);
    if (++per_connection[r.connection] == 2) {
      Reply drop;
      drop.kind = Reply::Kind::kCloseWithoutAnswer;
      return drop;
    }
    return jsonReply(200, {{"target", r.target}});
  });
  auto c = client(config(server.port()));
  ASSERT_TRUE(c.request("GET", "/v1/first").has_value());
  auto get = c.request("GET", "/v1/again");
  ASSERT_TRUE(get.has_value()) << get.error().describe();
  EXPECT_EQ(json::parse(get->body)["target"], "/v1/again");
  EXPECT_EQ(server.connections(), 2);

  // The retried GET was the 1st on connection 2; a POST is its 2nd, and is dropped.
  auto post = c.request("POST", "/v1/vms", "{}");
  ASSERT_FALSE(post.has_value());
  EXPECT_EQ(post.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(post.error().message.find("POST /v1/vms"), std::string::npos) << post.error().message;
  int posts = 0;
  for (const auto& r : server.requests()) posts += r.method == "POST" ? 1 : 0;
  EXPECT_EQ(posts, 1);  // never sent twice
  EXPECT_EQ(server.connections(), 2);
  // And the client recovers, on a third connection.
  EXPECT_TRUE(c.request("GET", "/v1/after").has_value());
  EXPECT_EQ(server.connections(), 3);
}

TEST_F(ClientTest, TimesOutWhenTheServerDoesNotAnswer) {
  TestServer server([](const SeenRequest&) {
    Reply r;
    r.kind = Reply::Kind::kHang;
    return r;
  });
  auto c = client(config(server.port(), "127.0.0.1", 300));
  auto start = Clock::now();
  auto r = c.request("GET", "/v1/slow");
  auto took = Clock::now() - start;
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kTimeout);
  EXPECT_NE(r.error().message.find("no answer to GET /v1/slow"), std::string::npos)
      << r.error().message;
  EXPECT_NE(r.error().message.find("300 ms"), std::string::npos);
  EXPECT_GE(took, std::chrono::milliseconds(250));
  EXPECT_LT(took, std::chrono::seconds(3));
  EXPECT_EQ(server.requests().size(), 1u);  // a timed-out GET is not sent again
}

TEST_F(ClientTest, TimesOutInTheHandshake) {
  TestServer silent([](const SeenRequest&) { return Reply{}; }, {.tls = false});
  auto c = client(config(silent.port(), "127.0.0.1", 300));
  auto start = Clock::now();
  auto r = c.request("GET", "/v1/x");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kTimeout);
  EXPECT_EQ(r.error().message, "TLS handshake with 127.0.0.1:" + std::to_string(silent.port()) +
                                   " failed: timed out after 300 ms");
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(3));
}

TEST_F(ClientTest, ConnectionRefusedIsClear) {
  int port;
  {
    TestServer gone([](const SeenRequest&) { return Reply{}; });
    port = gone.port();
  }
  auto c = client(config(port));
  auto r = c.request("GET", "/v1/x");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::kUnavailable);
  EXPECT_NE(r.error().message.find("cannot connect to 127.0.0.1:" + std::to_string(port)),
            std::string::npos)
      << r.error().message;
}

TEST_F(ClientTest, RefusesAServerCertificateFromAnotherCa) {
  TestServer server([](const SeenRequest&) { return jsonReply(200, {}); },
                    {.cert = "server-other-ca"});
  auto c = client(config(server.port()));
  auto r = c.request("GET", "/v1/vms");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message, "TLS handshake with 127.0.0.1:" + std::to_string(server.port()) +
                                   " failed: certificate verify failed (unable to get local "
                                   "issuer certificate)");
  EXPECT_TRUE(server.requests().empty());
}

TEST_F(ClientTest, VerifiesTheServersNameOrAddress) {
  TestServer wrong([](const SeenRequest&) { return jsonReply(200, {}); },
                   {.cert = "server-wrong-name"});
  auto c = client(config(wrong.port()));
  auto r = c.request("GET", "/v1/vms");
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("certificate verify failed (IP address mismatch)"),
            std::string::npos)
      << r.error().message;
  EXPECT_TRUE(wrong.requests().empty());

  // A DNS name is checked against the certificate's DNS names.
  TestServer right([](const SeenRequest&) { return jsonReply(200, {}); });
  auto by_name = client(config(right.port(), "localhost"));
  auto ok = by_name.request("GET", "/v1/vms");
  ASSERT_TRUE(ok.has_value()) << ok.error().describe();
  EXPECT_EQ(right.requests().at(0).host, "localhost:" + std::to_string(right.port()));
  TestServer wrong_by_name([](const SeenRequest&) { return jsonReply(200, {}); },
                           {.cert = "server-wrong-name"});
  auto c2 = client(config(wrong_by_name.port(), "localhost"));
  auto r2 = c2.request("GET", "/v1/vms");
  ASSERT_FALSE(r2.has_value());
  EXPECT_NE(r2.error().message.find("(hostname mismatch)"), std::string::npos)
      << r2.error().message;
}

TEST_F(ClientTest, SpeaksToAnIpv6Endpoint) {
  std::unique_ptr<TestServer> server;
  try {
    server = std::make_unique<TestServer>(
        [](const SeenRequest&) {
          return jsonReply(200, {{"ok", true}});
        },
        ServerOptions{.address = "::1"});
  } catch (const std::exception& e) {
    GTEST_SKIP() << "no IPv6 loopback here: " << e.what();
  }
  auto c = client(config(server->port(), "[::1]"));
  auto r = c.request("GET", "/v1/healthz");
  ASSERT_TRUE(r.has_value()) << r.error().describe();
  EXPECT_EQ(server->requests().at(0).host, "[::1]:" + std::to_string(server->port()));
}

TEST_F(ClientTest, TheServerRefusesAClientWithoutCertificate) {
  TestServer server([](const SeenRequest&) { return jsonReply(200, {}); });
  ClientConfig c = config(server.port());
  c.cert.clear();
  c.key.clear();
  auto anonymous = client(c);
  auto r = anonymous.request("GET", "/v1/vms");
  EXPECT_FALSE(r.has_value());
  EXPECT_TRUE(server.requests().empty());
}

TEST_F(ClientTest, CreateNamesTheFileItCannotUse) {
  ClientConfig c = config(8443);
  c.ca = pki().path("missing-ca.crt");
  auto r = ApiClient::create(c);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("CA certificate " + c.ca), std::string::npos);
  EXPECT_NE(r.error().message.find("No such file"), std::string::npos);

  c = config(8443);
  c.key = pki().path("nope.key");
  r = ApiClient::create(c);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("client key " + c.key), std::string::npos);

  c = config(8443);
  c.key = pki().path("server.key");  // not the certificate's key
  r = ApiClient::create(c);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("does not belong"), std::string::npos) << r.error().message;

  c = config(8443);
  c.ca = pki().path("client.ext");  // not PEM
  r = ApiClient::create(c);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find("cannot load the CA certificate"), std::string::npos);

  c = config(8443);
  c.key.clear();
  EXPECT_FALSE(ApiClient::create(c).has_value());
}

TEST_F(ClientTest, EndpointForms) {
  for (const char* good :
       {"https://127.0.0.1:8443", "https://[::1]:8443", "https://node-1.example:8443",
        "https://localhost:1/", "https://10.0.0.5"}) {
    ClientConfig c = config(8443);
    c.endpoint = good;
    auto r = ApiClient::create(c);
    EXPECT_TRUE(r.has_value()) << good << ": " << r.error().message;
  }
  for (const char* bad : {"http://127.0.0.1:8443", "https://[::1:8443", "https://::1:8443",
                          "https://host:0", "https://host:99999", "https://:8443",
                          "https://host:8443/v1", "https://ho st:8443", "127.0.0.1:8443"}) {
    ClientConfig c = config(8443);
    c.endpoint = bad;
    auto r = ApiClient::create(c);
    EXPECT_FALSE(r.has_value()) << bad;
    if (!r) {
      EXPECT_NE(r.error().message.find(bad), std::string::npos) << r.error().message;
    }
  }
}

// ---- server-sent events -------------------------------------------------------------------

Reply eventStream(std::vector<std::string> chunks, bool end = true) {
  Reply r;
  r.kind = Reply::Kind::kEventStream;
  r.chunks = std::move(chunks);
  r.end_stream = end;
  return r;
}

TEST_F(ClientTest, EventsAreParsedAcrossChunkBoundaries) {
  TestServer server([](const SeenRequest&) {
    return eventStream(
        {"ev", "ent: vm\nda", "ta: {\"name\":\"web1\"}", "\n", "\n", ": keepalive\n\n",
         "event: task\r\ndata: line one\r\ndata:line two\r\n\r\nda", "ta: plain\n\n"});
  });
  auto c = client(config(server.port()));
  std::vector<std::pair<std::string, std::string>> events;
  auto st = c.streamEvents(
      "/v1/events",
      [&](std::string_view type, std::string_view data) {
        events.emplace_back(type, data);
        return true;
      },
      10000);
  ASSERT_TRUE(st.has_value()) << st.error().describe();
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0], (std::pair<std::string, std::string>{"vm", R"({"name":"web1"})"}));
  EXPECT_EQ(events[1], (std::pair<std::string, std::string>{"task", "line one\nline two"}));
  EXPECT_EQ(events[2], (std::pair<std::string, std::string>{"message", "plain"}));
  EXPECT_EQ(server.requests().at(0).target, "/v1/events");
  // The stream's connection is its own: requests still work afterwards.
  EXPECT_TRUE(c.request("GET", "/v1/healthz").has_value());
}

TEST_F(ClientTest, EventsStopWhenTheCallbackSaysSo) {
  TestServer server([](const SeenRequest&) {
    return eventStream({"event: vm\ndata: 1\n\n", "event: vm\ndata: 2\n\n"}, false);
  });
  auto c = client(config(server.port()));
  int seen = 0;
  auto start = Clock::now();
  auto st = c.streamEvents(
      "/v1/events",
      [&](std::string_view, std::string_view) {
        ++seen;
        return false;
      },
      0);
  EXPECT_TRUE(st.has_value());
  EXPECT_EQ(seen, 1);
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(5));
}

TEST_F(ClientTest, EventsEndAtTheTimeout) {
  TestServer server([](const SeenRequest&) {
    return eventStream({"event: vm\ndata: 1\n\n", ": keepalive\n\n"}, false);
  });
  auto c = client(config(server.port()));
  int seen = 0;
  auto start = Clock::now();
  auto st = c.streamEvents(
      "/v1/events",
      [&](std::string_view, std::string_view) {
        ++seen;
        return true;
      },
      500);
  auto took = Clock::now() - start;
  EXPECT_TRUE(st.has_value()) << st.error().describe();
  EXPECT_EQ(seen, 1);
  EXPECT_GE(took, std::chrono::milliseconds(450));
  EXPECT_LT(took, std::chrono::seconds(5));
}

TEST_F(ClientTest, EventsRefusedByTheServerAreAnError) {
  TestServer server([](const SeenRequest&) {
    return apiError(403, "permission_denied", "viewer may not watch tenant b");
  });
  auto c = client(config(server.port()));
  auto st = c.streamEvents(
      "/v1/events?tenant=b", [](auto, auto) { return true; }, 1000);
  ASSERT_FALSE(st.has_value());
  EXPECT_EQ(st.error().code, ErrorCode::kPermissionDenied);
  EXPECT_EQ(st.error().message, "viewer may not watch tenant b");
}

// ---- qiaoctl against a scripted API -------------------------------------------------------

struct CliRun {
  int rc = -1;
  std::string out, err;
};

std::string slurp(std::FILE* f) {
  std::rewind(f);
  std::string s;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) s.append(buf, n);
  std::fclose(f);
  return s;
}

json vmObject(const std::string& tenant, const std::string& name, const std::string& state) {
  return {{"name", name},
          {"tenant", tenant},
          {"uuid", "0b7c3c1e-6f1a-4a55-9d0c-1a2b3c4d5e6f"},
          {"domain", tenant + "." + name},
          {"state", state},
          {"last_error", ""},
          {"spec",
           {{"name", name},
            {"tenant", tenant},
            {"arch", "x86_64"},
            {"vcpus", 2},
            {"memory_mib", 2048},
            {"labels", {{"app", "web"}}}}},
          {"created_at", "2024-01-01T00:00:00Z"},
          {"updated_at", "2024-01-01T00:00:00Z"},
          {"host", "host-a"}};
}

json taskObject(const std::string& id, const std::string& state, int progress,
                const std::string& message, const std::string& kind = "vm.create",
                const std::string& target = "web1") {
  return {{"id", id},
          {"kind", kind},
          {"tenant", "acme"},
          {"target", target},
          {"state", state},
          {"progress", progress},
          {"message", message},
          {"error", nullptr},
          {"identity", "qiao://test/user/admin"},
          {"created_at", "2024-01-01T00:00:00Z"},
          {"updated_at", "2024-01-01T00:00:00Z"}};
}

class QiaoctlTest : public ClientTest {
 protected:
  void start(Handler handler) {
    server_ = std::make_unique<TestServer>(std::move(handler));
    // Relative certificate paths: relative to the configuration file's directory.
    config_ = pki().path("qiaoctl-" + std::to_string(server_->port()) + ".toml");
    std::ofstream(config_) << "endpoint = \"https://127.0.0.1:" << server_->port()
                           << "\"\nca = \"ca.crt\"\ncert = \"client.crt\"\nkey = \"client.key\"\n";
  }

  CliRun run(std::vector<std::string> args, const std::string& stdin_text = "",
             bool terminal = false) {
    args.insert(args.begin(), {"--config", config_});
    CliIo io;
    io.out = std::tmpfile();
    io.err = std::tmpfile();
    io.in = std::tmpfile();
    io.err_is_terminal = terminal;
    io.poll_interval_ms = 10;
    std::fwrite(stdin_text.data(), 1, stdin_text.size(), io.in);
    std::rewind(io.in);
    CliRun r;
    r.rc = runQiaoctl(args, io);
    r.out = slurp(io.out);
    r.err = slurp(io.err);
    std::fclose(io.in);
    return r;
  }

  std::vector<std::string> targets() const {
    std::vector<std::string> t;
    for (const auto& r : server_->requests()) t.push_back(r.method + " " + r.target);
    return t;
  }

  std::unique_ptr<TestServer> server_;
  std::string config_;
};

TEST_F(QiaoctlTest, VmListFollowsPagesAndAlignsColumns) {
  start([](const SeenRequest& r) {
    if (r.target.find("page_token=p2") != std::string::npos) {
      return jsonReply(
          200, {{"items", {vmObject("beta", "db-primary-1", "shutoff")}}, {"next_page_token", ""}});
    }
    return jsonReply(200,
                     {{"items", {vmObject("acme", "web1", "running")}}, {"next_page_token", "p2"}});
  });
  auto all = run({"vm", "list", "--state", "running", "--label", "app=web", "--label", "tier=a b",
                  "--all", "--tenant", "acme"});
  ASSERT_EQ(all.rc, 0) << all.err;
  EXPECT_EQ(targets(),
            (std::vector<std::string>{
                "GET /v1/vms?tenant=acme&state=running&label=app%3Dweb&label=tier%3Da%20b",
                "GET /v1/vms?tenant=acme&state=running&label=app%3Dweb&label=tier%3Da%20b"
                "&page_token=p2"}));
  const std::string age = ageSince("2024-01-01T00:00:00Z", std::time(nullptr));
  EXPECT_EQ(all.out,
            "TENANT  NAME          STATE    HOST    VCPUS  MEMORY  ARCH    AGE\n"
            "acme    web1          running  host-a  2      2Gi     x86_64  " +
                age +
                "\n"
                "beta    db-primary-1  shutoff  host-a  2      2Gi     x86_64  " +
                age + "\n");
  EXPECT_TRUE(age.ends_with("d")) << age;
  EXPECT_EQ(all.err, "");

  // One page without --all, and a note that there are more.
  auto one = run({"vm", "list"});
  ASSERT_EQ(one.rc, 0);
  EXPECT_EQ(targets().back(), "GET /v1/vms");
  EXPECT_EQ(one.out.find("db-primary-1"), std::string::npos);
  EXPECT_NE(one.err.find("--all"), std::string::npos);

  // -o json prints the API's JSON.
  auto js = run({"-o", "json", "vm", "list"});
  ASSERT_EQ(js.rc, 0);
  auto parsed = json::parse(js.out);
  EXPECT_EQ(parsed["next_page_token"], "p2");
  EXPECT_EQ(parsed["items"][0]["name"], "web1");
}

TEST_F(QiaoctlTest, ApiErrorsPrintMessageAndDetails) {
  start([](const SeenRequest&) {
    return apiError(409, "conflict", "ambiguous: vm web1 exists in tenants a, b; pass ?tenant=",
                    {{"tenants", {"a", "b"}}, {"subsystem", "api"}});
  });
  auto r = run({"vm", "get", "web1"});
  EXPECT_EQ(r.rc, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err,
            "error: ambiguous: vm web1 exists in tenants a, b; pass ?tenant=\n"
            "  tenants: [\"a\",\"b\"]\n");
  EXPECT_EQ(targets(), std::vector<std::string>{"GET /v1/vms/web1"});
}

TEST_F(QiaoctlTest, VmGetAsJsonAndTable) {
  start([](const SeenRequest&) { return jsonReply(200, vmObject("acme", "web1", "running")); });
  auto js = run({"vm", "get", "web1", "-o", "json", "--tenant", "acme"});
  ASSERT_EQ(js.rc, 0) << js.err;
  EXPECT_EQ(json::parse(js.out), vmObject("acme", "web1", "running"));
  EXPECT_EQ(targets().back(), "GET /v1/vms/web1?tenant=acme");
  auto table = run({"vm", "get", "web1"});
  ASSERT_EQ(table.rc, 0);
  EXPECT_NE(table.out.find("state     running\n"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("labels    app=web\n"), std::string::npos) << table.out;
}

TEST_F(QiaoctlTest, CreateWaitsForTheTaskAndPrintsTheVm) {
  std::atomic<int> polls{0};
  start([&](const SeenRequest& r) {
    if (r.method == "POST") return jsonReply(202, taskObject("t1", "queued", 0, "queued"));
    if (r.target == "/v1/tasks/t1") {
      int n = ++polls;
      if (n < 3) return jsonReply(200, taskObject("t1", "running", 40, "defining domain"));
      if (n < 5) return jsonReply(200, taskObject("t1", "running", 80, "starting"));
      return jsonReply(200, taskObject("t1", "succeeded", 100, "done"));
    }
    return jsonReply(200, vmObject("acme", "web1", "running"));
  });
  auto r = run({"--tenant", "acme", "vm", "create", "-f", "-", "--wait"},
               R"({"name": "web1", "vcpus": 2})");
  ASSERT_EQ(r.rc, 0) << r.err;
  auto reqs = server_->requests();
  ASSERT_GE(reqs.size(), 3u);
  EXPECT_EQ(reqs[0].method + " " + reqs[0].target, "POST /v1/vms");
  // --tenant went into the spec (the route takes no ?tenant).
  EXPECT_EQ(json::parse(reqs[0].body), (json{{"name", "web1"}, {"vcpus", 2}, {"tenant", "acme"}}));
  EXPECT_EQ(targets().back(), "GET /v1/vms/web1?tenant=acme");
  EXPECT_NE(r.out.find("name      web1\n"), std::string::npos) << r.out;
  // Not a terminal: one line per change, not per poll.
  EXPECT_EQ(r.err,
            "task t1 vm.create running 40% defining domain\n"
            "task t1 vm.create running 80% starting\n"
            "task t1 vm.create succeeded 100% done\n");

  // Without --wait: the task id, and ?start=false for --no-start.
  const std::string spec_file = pki().path("spec-" + std::to_string(server_->port()) + ".json");
  fs::remove(spec_file);
  auto quick = run({"vm", "create", "-f", spec_file, "--no-start"});
  EXPECT_EQ(quick.rc, 1);  // no such file
  EXPECT_NE(quick.err.find("cannot read the VM spec"), std::string::npos);
  std::ofstream(spec_file) << R"({"name":"web1","tenant":"acme"})";
  quick = run({"vm", "create", "-f", spec_file, "--no-start"});
  ASSERT_EQ(quick.rc, 0) << quick.err;
  EXPECT_EQ(quick.out, "t1\n");
  EXPECT_EQ(targets().back(), "POST /v1/vms?start=false");

  // A spec that is not JSON, or names another tenant than --tenant, never reaches the server.
  size_t before = server_->requests().size();
  EXPECT_EQ(run({"vm", "create", "-f", "-"}, "{nope").rc, 1);
  auto other = run({"--tenant", "beta", "vm", "create", "-f", spec_file});
  EXPECT_EQ(other.rc, 1);
  EXPECT_NE(other.err.find("names tenant acme but --tenant says beta"), std::string::npos);
  EXPECT_EQ(server_->requests().size(), before);
}

TEST_F(QiaoctlTest, ProgressBarOnATerminal) {
  std::atomic<int> polls{0};
  start([&](const SeenRequest& r) {
    if (r.method == "POST") return jsonReply(202, taskObject("t9", "queued", 0, "", "vm.stop"));
    if (r.target == "/v1/tasks/t9") {
      return ++polls < 3
                 ? jsonReply(200, taskObject("t9", "running", 50, "shutting down", "vm.stop"))
                 : jsonReply(200, taskObject("t9", "succeeded", 100, "stopped", "vm.stop"));
    }
    return jsonReply(200, vmObject("acme", "web1", "shutoff"));
  });
  auto r = run({"vm", "stop", "web1", "--wait"}, "", /*terminal=*/true);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out, "vm web1: shutoff\n");
  EXPECT_NE(r.err.find("\r[##########----------]  50% vm.stop web1: shutting down\033[K"),
            std::string::npos)
      << r.err;
  EXPECT_TRUE(r.err.ends_with("\r[####################] 100% vm.stop web1: stopped\033[K\n"))
      << r.err;
  EXPECT_EQ(targets().front(), "POST /v1/vms/web1/actions/stop");
}

TEST_F(QiaoctlTest, TaskWaitFailsWithTheTasksError) {
  start([](const SeenRequest& r) {
    if (r.target == "/v1/tasks/t2") {
      json t = taskObject("t2", "failed", 60, "starting", "vm.start");
      t["error"] = {{"code", "unavailable"},
                    {"message", "libvirt: cannot start domain acme.web1: no space left"},
                    {"details", {{"domain", "acme.web1"}}}};
      return jsonReply(200, t);
    }
    if (r.target == "/v1/tasks/t3") return jsonReply(200, taskObject("t3", "running", 10, "slow"));
    return apiError(404, "not_found", "task nope not found");
  });
  auto failed = run({"task", "wait", "t2"});
  EXPECT_EQ(failed.rc, 1);
  EXPECT_NE(failed.err.find("error: task t2 (vm.start web1) failed: libvirt: cannot start domain "
                            "acme.web1: no space left\n  domain: acme.web1\n"),
            std::string::npos)
      << failed.err;

  auto start_time = Clock::now();
  auto slow = run({"task", "wait", "t3", "--timeout", "1"});
  EXPECT_EQ(slow.rc, 1);
  EXPECT_NE(slow.err.find("did not end within 1 s"), std::string::npos) << slow.err;
  EXPECT_LT(Clock::now() - start_time, std::chrono::seconds(4));

  auto missing = run({"task", "wait", "nope"});
  EXPECT_EQ(missing.rc, 1);
  EXPECT_EQ(missing.err, "error: task nope not found\n");
}

TEST_F(QiaoctlTest, DeleteConsoleLogAndTaskList) {
  start([](const SeenRequest& r) {
    if (r.method == "DELETE") return jsonReply(202, taskObject("t5", "queued", 0, "", "vm.delete"));
    if (r.target.starts_with("/v1/vms/web1/console-log")) {
      Reply text;
      text.content_type = "text/plain";
      text.body = "boot ok\n{\"not\": \"json\"}\n";
      return text;
    }
    return jsonReply(200,
                     {{"items", {taskObject("t5", "running", 30, "powering off", "vm.delete")}},
                      {"next_page_token", ""}});
  });
  auto del = run({"vm", "delete", "web1", "--force", "--tenant", "acme"});
  ASSERT_EQ(del.rc, 0) << del.err;
  EXPECT_EQ(del.out, "t5\n");
  EXPECT_EQ(targets().back(), "DELETE /v1/vms/web1?tenant=acme&force=true");

  auto log = run({"-o", "json", "vm", "console-log", "web1", "--tail", "100"});
  ASSERT_EQ(log.rc, 0) << log.err;
  EXPECT_EQ(log.out, "boot ok\n{\"not\": \"json\"}\n");  // as is, whatever -o says
  EXPECT_EQ(targets().back(), "GET /v1/vms/web1/console-log?tail_bytes=100");

  auto tasks = run({"task", "list", "--state", "running", "--vm", "web1"});
  ASSERT_EQ(tasks.rc, 0) << tasks.err;
  EXPECT_EQ(targets().back(), "GET /v1/tasks?state=running&target=web1");
  EXPECT_TRUE(tasks.out.starts_with("ID  KIND       TENANT  VM    STATE    PROGRESS  AGE"))
      << tasks.out;
  EXPECT_NE(tasks.out.find("t5  vm.delete  acme    web1  running  30%"), std::string::npos);
}

TEST_F(QiaoctlTest, HostAndHostCheck) {
  std::atomic<bool> failing{false};
  start([&](const SeenRequest& r) {
    if (r.target == "/v1/host/check") {
      json checks = {{{"name", "baseline"}, {"verdict", "pass"}, {"detail", "/etc/qiao/b.toml"}},
                     {{"name", "accelerator"},
                      {"verdict", failing ? "fail" : "warn"},
                      {"detail", "tcg: configured"}}};
      return jsonReply(
          200, {{"baseline_file", "/etc/qiao/b.toml"}, {"checks", checks}, {"ok", !failing}});
    }
    return jsonReply(200, {{"hostname", "node1"},
                           {"arch", "x86_64"},
                           {"accelerator", "tcg"},
                           {"accelerator_reason", "configured accel = tcg"},
                           {"kvm_device", true},
                           {"libvirt_version", "9.0.0"},
                           {"cores", 2}});
  });
  auto host = run({"host"});
  ASSERT_EQ(host.rc, 0) << host.err;
  EXPECT_NE(host.out.find("accelerator         tcg\n"), std::string::npos) << host.out;
  EXPECT_NE(host.out.find("cores               2\n"), std::string::npos) << host.out;

  auto check = run({"host", "check"});
  EXPECT_EQ(check.rc, 0) << check.err;
  EXPECT_EQ(check.out,
            "pass  baseline     /etc/qiao/b.toml\n"
            "warn  accelerator  tcg: configured\n"
            "This host may take guests.\n");
  EXPECT_EQ(targets().back(), "GET /v1/host/check");

  failing = true;
  auto broken = run({"host", "check"});
  EXPECT_EQ(broken.rc, 1);
  EXPECT_NE(broken.out.find("fail  accelerator"), std::string::npos) << broken.out;
  EXPECT_NE(broken.out.find("must not take guests"), std::string::npos) << broken.out;
  auto j = json::parse(run({"-o", "json", "host", "check"}).out);
  EXPECT_EQ(j["ok"], false);
  EXPECT_EQ(j["checks"][1]["verdict"], "fail");
}

TEST_F(QiaoctlTest, EndpointFlagOverridesTheConfiguration) {
  start([](const SeenRequest&) { return jsonReply(200, {{"items", json::array()}}); });
  int closed_port;
  {
    TestServer gone([](const SeenRequest&) { return Reply{}; });
    closed_port = gone.port();
  }
  auto r = run({"--endpoint", "https://127.0.0.1:" + std::to_string(closed_port), "vm", "list"});
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("error: cannot connect to 127.0.0.1:" + std::to_string(closed_port)),
            std::string::npos)
      << r.err;
  EXPECT_TRUE(server_->requests().empty());
}

}  // namespace
}  // namespace qiao
