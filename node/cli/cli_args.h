// qiaoctl's command line: what a command is (CommandSpec: its words, operand, options, help
// and the function that runs it), the parser, and the help texts, all made from the one table
// of commands (so the help lists exactly what the parser accepts and the dispatch runs).
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

class Cli;  // one command run (commands.cc)

struct CommandSpec {
  std::string_view group;    // "host", "vm", "task"
  std::string_view name;     // "list", "disk add"; "" for `qiaoctl host`
  std::string_view operand;  // "NAME", "ID" or "" (none)
  int (Cli::*run)();         // what the command does; 0 ok, 1 failed
  std::string_view summary;  // one line, for the lists of commands
  std::string_view description;
  std::vector<FlagSpec> flags;
};

// Every command, in the order the help lists them (the rows are in commands.cc, beside the
// functions they name).
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
