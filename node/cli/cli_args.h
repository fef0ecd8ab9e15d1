// qiaoctl's command line: the table of commands and their options, the parser, and the help
// texts made from that same table (so the help lists exactly what the parser accepts).
// Parsing needs no configuration and no server: usage errors and --help never connect.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace qiao {

enum class FlagCheck {
  kNone,
  kCount,      // a positive integer
  kLabel,      // KEY=VALUE
  kVmState,    // one of the VM states of the API
  kTaskState,  // one of the task states of the API
};

struct FlagSpec {
  std::string_view name;        // "--state", "-f"
  std::string_view value_name;  // "S"; "" for a switch
  std::string_view help;
  FlagCheck check = FlagCheck::kNone;
  bool repeatable = false;
  bool required = false;
};

struct CommandSpec {
  std::string_view group;    // "host", "vm", "task"
  std::string_view name;     // "list"; "" for `qiaoctl host`
  std::string_view operand;  // "NAME", "ID" or "" (none)
  std::string_view summary;  // one line, for the lists of commands
  std::string_view description;
  std::vector<FlagSpec> flags;
};

const std::vector<CommandSpec>& commandSpecs();

// A parsed, valid command line.
struct Invocation {
  std::string config_path;  // --config; "" = $QIAO_CONFIG, else ~/.config/qiao/config.toml
  std::string endpoint;     // --endpoint; "" = the configuration's
  std::string tenant;       // --tenant
  bool json_output = false;
  const CommandSpec* command = nullptr;
  std::string operand;
  std::map<std::string, std::vector<std::string>, std::less<>> flags;  // switches: {""}

  bool has(std::string_view flag) const { return flags.contains(flag); }
  std::optional<std::string> value(std::string_view flag) const;
  std::vector<std::string> values(std::string_view flag) const;
  bool is(std::string_view group, std::string_view name) const {
    return command != nullptr && command->group == group && command->name == name;
  }
};

struct ParsedCommandLine {
  enum class Outcome { kRun, kHelp, kVersion, kUsageError };
  Outcome outcome = Outcome::kUsageError;
  Invocation invocation;  // kRun
  std::string text;       // kHelp: the help; kUsageError: the error and a hint, for stderr
};

// args without the program name.
ParsedCommandLine parseCommandLine(const std::vector<std::string>& args);

// The help of `qiaoctl --help`, `qiaoctl vm --help`, `qiaoctl vm create --help`.
std::string topHelp();
std::string groupHelp(std::string_view group);
std::string commandHelp(const CommandSpec& command);

}  // namespace qiao
