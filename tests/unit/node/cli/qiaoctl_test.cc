// qiaoctl without a server: the parser and its help, usage errors, the client configuration,
// the output formats and errorFromResponse.
#include "node/cli/qiaoctl.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "node/cli/cli_args.h"
#include "node/cli/commands.h"
#include "node/cli/output.h"
#include "node/client/client.h"
#include "node/state/states.h"

namespace qiao {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Outcome = ParsedCommandLine::Outcome;

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

CliRun run(const std::vector<std::string>& args) {
  CliIo io;
  io.out = std::tmpfile();
  io.err = std::tmpfile();
  CliRun r;
  r.rc = runQiaoctl(args, io);
  r.out = slurp(io.out);
  r.err = slurp(io.err);
  return r;
}

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/qiaoctl-test-XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

// ---- the parser ---------------------------------------------------------------------------

// A valid value for each kind of flag.
std::string sampleValue(const FlagSpec& f) {
  switch (f.check) {
    case FlagCheck::kCount: return "7";
    case FlagCheck::kLabel: return "app=web";
    case FlagCheck::kVmState: return "running";
    case FlagCheck::kTaskState: return "failed";
    case FlagCheck::kNone: return "x.json";
  }
  return "x";
}

std::vector<std::string> minimalArgs(const CommandSpec& c) {
  std::vector<std::string> args = {std::string(c.group)};
  if (!c.name.empty()) args.emplace_back(c.name);
  if (!c.operand.empty()) args.emplace_back("web1");
  for (const auto& f : c.flags) {
    if (f.required) {
      args.emplace_back(f.name);
      args.push_back(sampleValue(f));
    }
  }
  return args;
}

TEST(Parser, EveryCommandParses) {
  std::set<std::string> seen;
  for (const auto& c : commandSpecs()) {
    auto args = minimalArgs(c);
    auto parsed = parseCommandLine(args);
    ASSERT_EQ(parsed.outcome, Outcome::kRun) << args[0] << " " << c.name << ": " << parsed.text;
    EXPECT_EQ(parsed.invocation.command, &c);
    EXPECT_EQ(parsed.invocation.operand, c.operand.empty() ? "" : "web1");
    seen.insert(std::string(c.group) + " " + std::string(c.name));
  }
  // The commands of the issue, all of them.
  for (const char* want : {"host ",
                           "host check",
                           "host list",
                           "host get",
                           "host remove",
                           "cluster status",
                           "cluster token create",
                           "vm list",
                           "vm get",
                           "vm create",
                           "vm start",
                           "vm stop",
                           "vm force-stop",
                           "vm reboot",
                           "vm pause",
                           "vm resume",
                           "vm delete",
                           "vm console-log",
                           "vm disk add",
                           "vm disk remove",
                           "vm nic add",
                           "vm nic remove",
                           "vm resize",
                           "vm stats",
                           "task list",
                           "task get",
                           "task wait",
                           "task cancel",
                           "volume list",
                           "volume get",
                           "volume create",
                           "volume resize",
                           "volume copy",
                           "volume limits",
                           "volume delete",
                           "image list",
                           "image get",
                           "image create",
                           "image delete",
                           "quota get",
                           "quota set"}) {
    EXPECT_TRUE(seen.contains(want)) << want;
  }
  EXPECT_EQ(seen.size(), 50u);
  // Commands of two words, typed as two words.
  auto disk = parseCommandLine({"vm", "disk", "remove", "web1", "--volume", "data"});
  ASSERT_EQ(disk.outcome, Outcome::kRun) << disk.text;
  EXPECT_EQ(disk.invocation.command->name, "disk remove");
  EXPECT_EQ(disk.invocation.operand, "web1");
  EXPECT_EQ(disk.invocation.value("--volume"), "data");
  EXPECT_EQ(parseCommandLine({"vm", "disk", "web1"}).outcome, Outcome::kUsageError);
}

TEST(Parser, EveryFlagInTheHelpIsAcceptedAndEveryAcceptedFlagIsInTheHelp) {
  for (const auto& c : commandSpecs()) {
    const std::string help = commandHelp(c);
    for (const auto& f : c.flags) {
      EXPECT_NE(help.find(std::string(f.name)), std::string::npos) << f.name;
      auto args = minimalArgs(c);
      if (!f.required) {
        args.emplace_back(f.name);
        if (!f.value_name.empty()) args.push_back(sampleValue(f));
        if (f.name == "--timeout" && c.group == "vm") args.emplace_back("--wait");
      }
      auto parsed = parseCommandLine(args);
      ASSERT_EQ(parsed.outcome, Outcome::kRun) << c.name << " " << f.name << ": " << parsed.text;
      EXPECT_TRUE(parsed.invocation.has(f.name));
      if (!f.value_name.empty()) {
        EXPECT_EQ(parsed.invocation.value(f.name), sampleValue(f));
      }
    }
    // The group's help lists the command, the top help too.
    std::string words = std::string(c.group) + (c.name.empty() ? "" : " " + std::string(c.name));
    EXPECT_NE(groupHelp(c.group).find(words), std::string::npos) << words;
    EXPECT_NE(topHelp().find(words), std::string::npos) << words;
  }
}

TEST(Parser, GlobalOptionsGoAnywhere) {
  auto p = parseCommandLine({"--config", "/etc/q.toml", "vm", "-o", "json", "list", "--tenant",
                             "acme", "--state=running", "--endpoint=https://[::1]:9"});
  ASSERT_EQ(p.outcome, Outcome::kRun) << p.text;
  const Invocation& inv = p.invocation;
  EXPECT_TRUE(inv.is("vm", "list"));
  EXPECT_EQ(inv.config_path, "/etc/q.toml");
  EXPECT_EQ(inv.tenant, "acme");
  EXPECT_EQ(inv.endpoint, "https://[::1]:9");
  EXPECT_TRUE(inv.json_output);
  EXPECT_EQ(inv.value("--state"), "running");

  p = parseCommandLine({"--output=table", "vm", "list", "--label", "a=1", "--label", "b=2"});
  ASSERT_EQ(p.outcome, Outcome::kRun);
  EXPECT_FALSE(p.invocation.json_output);
  EXPECT_EQ(p.invocation.values("--label"), (std::vector<std::string>{"a=1", "b=2"}));

  p = parseCommandLine({"vm", "create", "-f", "-", "--wait", "--timeout", "30"});
  ASSERT_EQ(p.outcome, Outcome::kRun) << p.text;
  EXPECT_EQ(p.invocation.value("-f"), "-");

  // After --, a word is an operand even when it looks like an option.
  p = parseCommandLine({"vm", "get", "--", "-odd"});
  ASSERT_EQ(p.outcome, Outcome::kRun) << p.text;
  EXPECT_EQ(p.invocation.operand, "-odd");

  p = parseCommandLine({"host"});
  ASSERT_EQ(p.outcome, Outcome::kRun);
  EXPECT_TRUE(p.invocation.is("host", ""));
  p = parseCommandLine({"--tenant", "t", "host", "check"});
  ASSERT_EQ(p.outcome, Outcome::kRun);
  EXPECT_TRUE(p.invocation.is("host", "check"));
}

TEST(Parser, UsageErrorsExitTwoWithAShortHintAndNeverConnect) {
  // No configuration exists at this path: reaching the network would give 1, not 2.
  setenv("QIAO_CONFIG", "/nonexistent/qiao.toml", 1);
  const std::vector<std::vector<std::string>> bad = {
      {},
      {"frobnicate"},
      {"vm"},
      {"task"},
      {"vm", "explode", "x"},
      {"vm", "get"},            // missing NAME
      {"vm", "get", "a", "b"},  // two names
      {"vm", "list", "extra"},
      {"vm", "list", "--bogus"},
      {"vm", "list", "--state"},  // no value
      {"vm", "list", "--state", "sleepy"},
      {"vm", "list", "--limit", "0"},
      {"vm", "list", "--limit", "ten"},
      {"vm", "list", "--label", "novalue"},
      {"vm", "list", "--all=yes"},
      {"vm", "create"},  // -f is required
      {"vm", "create", "-f", "a", "-f", "b"},
      {"vm", "create", "-f", "a", "--timeout", "5"},  // --timeout without --wait
      {"vm", "start", "web1", "--force"},
      {"vm", "delete", "web1", "--tail", "5"},
      {"vm", "console-log", "web1", "--tail", "-5"},
      {"vm", "--wait", "start", "web1"},
      {"task", "list", "--state", "running-ish"},
      {"task", "get"},
      {"task", "wait", "t1", "--timeout", "soon"},
      {"host", "extra"},
      {"host", "check", "--wait"},
      {"-o", "yaml", "vm", "list"},
      {"vm", "list", "--tenant"},
      {"--bogus", "vm", "list"},
  };
  for (const auto& args : bad) {
    std::string line;
    for (const auto& a : args) line += a + " ";
    auto r = run(args);
    EXPECT_EQ(r.rc, 2) << line << "\n" << r.err;
    EXPECT_EQ(r.out, "") << line;
    EXPECT_NE(r.err.find("--help' for usage."), std::string::npos) << line << "\n" << r.err;
    EXPECT_LE(std::count(r.err.begin(), r.err.end(), '\n'), 2) << line << "\n" << r.err;
  }
  auto r = run({"vm", "list", "--bogus"});
  EXPECT_EQ(r.err,
            "qiaoctl vm list: unknown option --bogus\n"
            "Run 'qiaoctl vm list --help' for usage.\n");
  unsetenv("QIAO_CONFIG");
}

// qiaoctl keeps its own lists of the states a list may filter by (it does not link the store):
// each of the API's names (node/state/states.h) is accepted and named in the help, and a name
// that is none of them is refused.
template <typename E>
void expectStateFilter(const std::string& group) {
  const CommandSpec* list = nullptr;
  for (const auto& c : commandSpecs()) {
    if (c.group == group && c.name == "list") list = &c;
  }
  ASSERT_NE(list, nullptr) << group;
  std::string help;
  for (const auto& f : list->flags) {
    if (f.name == "--state") help = std::string(f.help);
  }
  for (const auto& [value, name] : EnumNames<E>::kNames) {
    auto p = parseCommandLine({group, "list", "--state", std::string(name)});
    EXPECT_EQ(p.outcome, Outcome::kRun) << group << " " << name << ": " << p.text;
    EXPECT_NE(help.find(std::string(name)), std::string::npos) << group << " " << name;
  }
  auto bad = parseCommandLine({group, "list", "--state", "no-such-state"});
  EXPECT_NE(bad.outcome, Outcome::kRun) << group;
}

TEST(Parser, StateFiltersAcceptTheApisStates) {
  expectStateFilter<VmState>("vm");
  expectStateFilter<TaskState>("task");
}

TEST(Parser, HelpIsEverywhereAndExitsZero) {
  auto top = run({"--help"});
  EXPECT_EQ(top.rc, 0);
  EXPECT_EQ(top.out, topHelp());
  EXPECT_NE(top.out.find("--config FILE"), std::string::npos);
  EXPECT_EQ(run({"help"}).out, topHelp());
  EXPECT_EQ(run({"vm", "--help"}).out, groupHelp("vm"));
  EXPECT_EQ(run({"vm", "-h"}).out, groupHelp("vm"));
  EXPECT_EQ(run({"task", "--help"}).out, groupHelp("task"));
  auto create = run({"vm", "create", "--help"});
  EXPECT_EQ(create.rc, 0);
  EXPECT_TRUE(create.out.starts_with(
      "Usage: qiaoctl [GLOBAL OPTIONS] vm create -f FILE|- [--no-start] [--host NAME] [--wait]\n"
      "            [--timeout SECONDS]\n"))
      << create.out;
  // Help wins over what else is wrong on the line.
  EXPECT_EQ(run({"vm", "create", "--bogus", "--help"}).rc, 0);
  EXPECT_EQ(run({"vm", "list", "--state", "x", "-h"}).rc, 0);
  EXPECT_TRUE(
      run({"task", "wait", "--help"})
          .out.starts_with("Usage: qiaoctl [GLOBAL OPTIONS] task wait ID [--timeout SECONDS]\n"));
  EXPECT_TRUE(run({"host", "check", "--help"})
                  .out.starts_with("Usage: qiaoctl [GLOBAL OPTIONS] host check\n"));
  EXPECT_TRUE(run({"vm", "list", "--help"})
                  .out.starts_with("Usage: qiaoctl [GLOBAL OPTIONS] vm list [--state S] [--label "
                                   "KEY=VALUE]... [--limit N] "
                                   "[--all]\n"));
  auto version = run({"--version"});
  EXPECT_EQ(version.rc, 0);
  EXPECT_TRUE(version.out.starts_with("qiaoctl 0.")) << version.out;
  // No help line is wider than 100 columns.
  for (const std::string& text : {topHelp(), groupHelp("vm"), groupHelp("host")}) {
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) EXPECT_LE(line.size(), 100u) << line;
  }
  for (const auto& c : commandSpecs()) {
    std::istringstream lines(commandHelp(c));
    for (std::string line; std::getline(lines, line);) EXPECT_LE(line.size(), 100u) << line;
  }
}

// ---- configuration ------------------------------------------------------------------------

TEST(Config, KeysPathsAndErrors) {
  TempDir dir;
  std::ofstream(dir / "ok.toml") << "endpoint = \"https://[::1]:9443\"\nca = \"pki/ca.crt\"\n"
                                    "cert = \"/abs/client.crt\"\nkey = \"client.key\"\n";
  auto ok = loadClientConfig(dir / "ok.toml");
  ASSERT_TRUE(ok.has_value()) << ok.error().message;
  EXPECT_EQ(ok->endpoint, "https://[::1]:9443");
  EXPECT_EQ(ok->ca, dir / "pki/ca.crt");
  EXPECT_EQ(ok->cert, "/abs/client.crt");
  EXPECT_EQ(ok->key, dir / "client.key");

  std::ofstream(dir / "unknown.toml") << "endpoint = \"https://127.0.0.1:1\"\nsurprise = \"x\"\n";
  auto unknown = loadClientConfig(dir / "unknown.toml");
  ASSERT_FALSE(unknown.has_value());
  EXPECT_NE(unknown.error().message.find("unknown key \"surprise\""), std::string::npos)
      << unknown.error().message;
  EXPECT_NE(unknown.error().message.find(dir / "unknown.toml"), std::string::npos);

  std::ofstream(dir / "table.toml") << "[tls]\nca = \"x\"\n";
  auto table = loadClientConfig(dir / "table.toml");
  ASSERT_FALSE(table.has_value());
  EXPECT_NE(table.error().message.find("unknown key \"tls\""), std::string::npos);

  std::ofstream(dir / "type.toml") << "ca = 5\n";
  auto type = loadClientConfig(dir / "type.toml");
  ASSERT_FALSE(type.has_value());
  EXPECT_NE(type.error().message.find("ca must be a string"), std::string::npos);

  std::ofstream(dir / "syntax.toml") << "endpoint = \n";
  auto syntax = loadClientConfig(dir / "syntax.toml");
  ASSERT_FALSE(syntax.has_value());
  EXPECT_NE(syntax.error().message.find(dir / "syntax.toml" + ":1"), std::string::npos)
      << syntax.error().message;

  auto missing = loadClientConfig(dir / "missing.toml");
  ASSERT_FALSE(missing.has_value());
  EXPECT_NE(missing.error().message.find(dir / "missing.toml"), std::string::npos);
  EXPECT_NE(missing.error().message.find("No such file"), std::string::npos);

  // Defaults: the built-in endpoint when the file leaves it out.
  std::ofstream(dir / "min.toml") << "ca = \"ca.crt\"\n";
  auto min = loadClientConfig(dir / "min.toml");
  ASSERT_TRUE(min.has_value());
  EXPECT_EQ(min->endpoint, "https://127.0.0.1:8443");
}

TEST(Config, WhereItIsLookedFor) {
  TempDir dir;
  std::ofstream(dir / "env.toml") << "endpoint = \"https://env.example:1\"\n";
  fs::create_directories(dir / "home/.config/qiao");
  std::ofstream(dir / "home/.config/qiao/config.toml") << "endpoint = \"https://home.example:1\"\n";
  std::string old_home = std::getenv("HOME") != nullptr ? std::getenv("HOME") : "";
  setenv("HOME", (dir / "home").c_str(), 1);
  unsetenv("QIAO_CONFIG");
  auto home = loadClientConfig("");
  ASSERT_TRUE(home.has_value()) << home.error().message;
  EXPECT_EQ(home->endpoint, "https://home.example:1");
  setenv("QIAO_CONFIG", (dir / "env.toml").c_str(), 1);
  auto env = loadClientConfig("");
  ASSERT_TRUE(env.has_value());
  EXPECT_EQ(env->endpoint, "https://env.example:1");
  // An explicit path (--config) wins over both.
  std::ofstream(dir / "explicit.toml") << "endpoint = \"https://explicit.example:1\"\n";
  EXPECT_EQ(loadClientConfig(dir / "explicit.toml")->endpoint, "https://explicit.example:1");
  unsetenv("QIAO_CONFIG");
  setenv("HOME", old_home.c_str(), 1);

  // qiaoctl reports a configuration it cannot read as a failure (1), not a usage error.
  auto r = run({"--config", dir / "missing.toml", "vm", "list"});
  EXPECT_EQ(r.rc, 1);
  EXPECT_TRUE(
      r.err.starts_with("error: cannot read the client configuration " + (dir / "missing.toml")))
      << r.err;
  std::ofstream(dir / "noca.toml") << "ca = \"nothere.crt\"\n";
  r = run({"--config", dir / "noca.toml", "vm", "list"});
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find(dir / "nothere.crt"), std::string::npos) << r.err;
}

// ---- output -------------------------------------------------------------------------------

TEST(Output, Tables) {
  EXPECT_EQ(formatTable({{"A", "BB", "C"}, {"ccc", "d", ""}}), "A    BB  C\nccc  d\n");
  EXPECT_EQ(formatTable({}), "");
  // Widths count characters, not bytes.
  EXPECT_EQ(formatTable({{"NAME", "X"}, {"桥桥", "y"}}), "NAME  X\n桥桥    y\n");
}

TEST(Output, AgesSizesAndProgress) {
  const long long now = 1700000000;  // 2023-11-14T22:13:20Z
  EXPECT_EQ(ageSince("2023-11-14T22:13:10Z", now), "10s");
  EXPECT_EQ(ageSince("2023-11-14T22:13:10.123456Z", now), "10s");
  EXPECT_EQ(ageSince("2023-11-14T22:03:20Z", now), "10m");
  EXPECT_EQ(ageSince("2023-11-14T20:13:20Z", now), "2h");
  EXPECT_EQ(ageSince("2023-11-10T22:13:20Z", now), "4d");
  EXPECT_EQ(ageSince("2023-11-15T00:13:10+02:00", now), "10s");
  EXPECT_EQ(ageSince("2023-11-15T22:13:20Z", now), "0s");  // clock skew: never negative
  EXPECT_EQ(ageSince("garbage", now), "-");
  EXPECT_EQ(ageSince("2023-11-14T22:13:10", now), "-");  // no zone
  EXPECT_EQ(ageSince("", now), "-");

  EXPECT_EQ(formatMib(512), "512Mi");
  EXPECT_EQ(formatMib(2048), "2Gi");
  EXPECT_EQ(formatMib(1536), "1536Mi");
  EXPECT_EQ(formatMib(1048576), "1Ti");

  EXPECT_EQ(progressLine(0, "vm.create", "web1", "queued", 100),
            "[--------------------]   0% vm.create web1: queued");
  EXPECT_EQ(progressLine(45, "vm.create", "web1", "defining domain", 100),
            "[#########-----------]  45% vm.create web1: defining domain");
  EXPECT_EQ(progressLine(150, "vm.stop", "", "", 100), "[####################] 100% vm.stop");
  EXPECT_EQ(progressLine(10, "k", "t", "line\nbreak\x1b[2J", 100).find('\n'), std::string::npos);
  EXPECT_EQ(progressLine(10, "k", "t", std::string(300, 'm'), 80).size(), 80u);

  EXPECT_EQ(colourize("pass", Colour::kGreen, false), "pass");
  EXPECT_EQ(colourize("fail", Colour::kRed, true), "\033[31mfail\033[0m");
}

TEST(Output, UrlEncoding) {
  EXPECT_EQ(urlEncode("web-1_a.b~"), "web-1_a.b~");
  EXPECT_EQ(urlEncode("a=b&c d/é"), "a%3Db%26c%20d%2F%C3%A9");
}

// ---- errorFromResponse --------------------------------------------------------------------

TEST(ErrorFromResponse, CodeMessageAndDetails) {
  HttpResponse r;
  r.status = 409;
  r.body = R"({"error":{"code":"conflict","message":"vm a/b is busy",
               "details":{"subsystem":"store","task":"t1"}}})";
  Error e = errorFromResponse(r);
  EXPECT_EQ(e.code, ErrorCode::kConflict);
  EXPECT_EQ(e.message, "vm a/b is busy");
  EXPECT_EQ(e.subsystem, "store");
  EXPECT_EQ(json::parse(e.details_json)["task"], "t1");

  // The body's code wins over the status when it names one.
  r.status = 400;
  r.body = R"({"error":{"code":"payload_too_large","message":"too big"}})";
  EXPECT_EQ(errorFromResponse(r).code, ErrorCode::kPayloadTooLarge);
  EXPECT_EQ(errorFromResponse(r).details_json, "");
  EXPECT_EQ(errorFromResponse(r).subsystem, "api");

  // An unknown code falls back to the status.
  r.status = 404;
  r.body = R"({"error":{"code":"gone_fishing","message":"no such vm"}})";
  EXPECT_EQ(errorFromResponse(r).code, ErrorCode::kNotFound);

  const std::vector<std::pair<int, ErrorCode>> statuses = {
      {400, ErrorCode::kInvalidArgument},  {401, ErrorCode::kUnauthenticated},
      {403, ErrorCode::kPermissionDenied}, {404, ErrorCode::kNotFound},
      {409, ErrorCode::kConflict},         {413, ErrorCode::kPayloadTooLarge},
      {503, ErrorCode::kUnavailable},      {504, ErrorCode::kTimeout},
      {500, ErrorCode::kInternal},         {418, ErrorCode::kInternal}};
  for (auto [status, code] : statuses) {
    r.status = status;
    r.body = "";
    EXPECT_EQ(errorFromResponse(r).code, code) << status;
    EXPECT_EQ(errorFromResponse(r).message, "HTTP " + std::to_string(status));
  }

  // Not an API error body: its first line, printable.
  r.status = 502;
  r.body = "<html>Bad\tGateway</html>\nmore";
  EXPECT_EQ(errorFromResponse(r).message, "HTTP 502: <html>Bad Gateway</html>");
  EXPECT_EQ(errorFromResponse(r).code, ErrorCode::kUnavailable);
}

}  // namespace
}  // namespace qiao
