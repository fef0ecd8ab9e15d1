#include "node/cli/cli_args.h"

#include <algorithm>
#include <array>
#include <cctype>

namespace qiao {
namespace {

// The API's names (node/state/states.h, which qiaoctl does not link: qiaoctl_test checks that
// these accept exactly those).
constexpr std::array<std::string_view, 11> kVmStates = {
    "creating", "running",     "blocked",  "paused", "shutdown", "shutoff",
    "crashed",  "pmsuspended", "deleting", "error",  "nostate"};
constexpr std::array<std::string_view, 5> kTaskStates = {"queued", "running", "succeeded", "failed",
                                                         "cancelled"};

// Global options, valid anywhere on the line.
struct GlobalOption {
  std::string_view name;
  std::string_view alias;
  std::string_view value_name;
  std::string_view help;
};
constexpr std::array<GlobalOption, 6> kGlobals = {{
    {"--config", "", "FILE",
     "client configuration (TOML, keys endpoint, ca, cert, key); default $QIAO_CONFIG, else "
     "~/.config/qiao/config.toml"},
    {"--endpoint", "", "URL",
     "the node API to talk to, overriding the configuration "
     "(https://HOST:PORT)"},
    {"--tenant", "", "T", "act in tenant T (needed when a name exists in several tenants)"},
    {"--output", "-o", "FORMAT", "table (default) or json (the API's objects as JSON)"},
    {"--version", "", "", "print qiaoctl's version"},
    {"--help", "-h", "", "help: qiaoctl --help, qiaoctl vm --help, qiaoctl vm create --help, ..."},
}};

bool isGroup(std::string_view g) {
  return std::any_of(commandSpecs().begin(), commandSpecs().end(),
                     [&](const CommandSpec& c) { return c.group == g; });
}

// "host, vm, ...": the groups in the order of the rows.
std::string groupList() {
  std::vector<std::string_view> groups;
  for (const auto& c : commandSpecs()) {
    if (std::find(groups.begin(), groups.end(), c.group) == groups.end()) groups.push_back(c.group);
  }
  std::string out;
  for (auto g : groups) out += (out.empty() ? "" : ", ") + std::string(g);
  return out;
}

// Options wrap onto indented lines so that "Usage: " + the synopsis stays within 100 columns.
std::string synopsis(const CommandSpec& c) {
  std::string s = "qiaoctl [GLOBAL OPTIONS] " + std::string(c.group);
  if (!c.name.empty()) s += " " + std::string(c.name);
  if (!c.operand.empty()) s += " " + std::string(c.operand);
  size_t line_start = 0;
  size_t limit = 93;  // the first line follows "Usage: "
  for (const auto& f : c.flags) {
    std::string item(f.name);
    if (!f.value_name.empty()) item += " " + std::string(f.value_name);
    item = f.required ? item : "[" + item + "]";
    if (f.repeatable) item += "...";
    if (s.size() - line_start + 1 + item.size() > limit) {
      s += "\n";
      line_start = s.size();
      s += "           ";
      limit = 100;
    }
    s += " " + item;
  }
  return s;
}

std::string commandWords(const CommandSpec& c) {
  std::string s(c.group);
  if (!c.name.empty()) s += " " + std::string(c.name);
  if (!c.operand.empty()) s += " " + std::string(c.operand);
  return s;
}

// "  NAME   text" lines with the texts aligned.
std::string twoColumns(const std::vector<std::pair<std::string, std::string>>& rows) {
  size_t width = 0;
  for (const auto& [left, right] : rows) width = std::max(width, left.size());
  // Texts wrap at 100 columns, under their own start.
  constexpr size_t kColumns = 100;
  const size_t indent = width + 4;
  std::string out;
  for (const auto& [left, right] : rows) {
    std::string line = "  " + left + std::string(width - left.size() + 2, ' ');
    size_t pos = 0;
    while (pos < right.size()) {
      size_t room = kColumns > indent ? kColumns - indent : 40;
      size_t take = right.size() - pos;
      if (take > room) {
        size_t space = right.rfind(' ', pos + room);
        take = space != std::string::npos && space > pos ? space - pos : room;
      }
      line += right.substr(pos, take);
      out += line + "\n";
      pos += take;
      while (pos < right.size() && right[pos] == ' ') ++pos;
      line = std::string(indent, ' ');
    }
    if (right.empty()) out += line + "\n";
  }
  return out;
}

std::string globalOptionsHelp() {
  std::vector<std::pair<std::string, std::string>> rows;
  for (const auto& g : kGlobals) {
    std::string left =
        g.alias.empty() ? std::string(g.name) : std::string(g.alias) + ", " + std::string(g.name);
    if (!g.value_name.empty()) left += " " + std::string(g.value_name);
    rows.emplace_back(left, std::string(g.help));
  }
  return twoColumns(rows);
}

const GlobalOption* findGlobal(std::string_view name) {
  for (const auto& g : kGlobals) {
    if (g.name == name || (!g.alias.empty() && g.alias == name)) return &g;
  }
  return nullptr;
}

std::optional<std::string> checkValue(const FlagSpec& flag, const std::string& value) {
  auto listed = [&](const auto& allowed) -> std::optional<std::string> {
    if (std::find(allowed.begin(), allowed.end(), value) != allowed.end()) return std::nullopt;
    std::string list;
    for (auto a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
    return std::string(flag.name) + " must be one of " + list + ", not \"" + value + "\"";
  };
  switch (flag.check) {
    case FlagCheck::kNone:
      if (value.empty()) return std::string(flag.name) + " needs a non-empty value";
      return std::nullopt;
    case FlagCheck::kCount:
      if (value.empty() || value.size() > 9 ||
          value.find_first_not_of("0123456789") != std::string::npos || std::stol(value) == 0) {
        return std::string(flag.name) + " must be a positive whole number, not \"" + value + "\"";
      }
      return std::nullopt;
    case FlagCheck::kLabel:
      if (auto eq = value.find('='); eq == std::string::npos || eq == 0) {
        return std::string(flag.name) + " must be KEY=VALUE, not \"" + value + "\"";
      }
      return std::nullopt;
    case FlagCheck::kVmState: return listed(kVmStates);
    case FlagCheck::kTaskState: return listed(kTaskStates);
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::string> Invocation::value(std::string_view flag) const {
  auto it = flags.find(flag);
  if (it == flags.end() || it->second.empty()) return std::nullopt;
  return it->second.back();
}

std::vector<std::string> Invocation::values(std::string_view flag) const {
  auto it = flags.find(flag);
  return it == flags.end() ? std::vector<std::string>{} : it->second;
}

std::string topHelp() {
  std::string out =
      "Usage: qiaoctl [GLOBAL OPTIONS] COMMAND [ARGS]\n"
      "\n"
      "The command line of a Qiao node's API (HTTPS with mutual TLS).\n"
      "\n"
      "Commands:\n";
  std::vector<std::pair<std::string, std::string>> rows;
  for (const auto& c : commandSpecs()) rows.emplace_back(commandWords(c), std::string(c.summary));
  out += twoColumns(rows);
  out += "\nGlobal options (anywhere on the line):\n";
  out += globalOptionsHelp();
  out +=
      "\n'qiaoctl COMMAND --help' shows a command's options (e.g. qiaoctl vm create --help).\n"
      "Exit status: 0 ok; 1 failed (an API or connection error, a failed task, a timeout); "
      "2 usage error.\n"
      "\nEnvironment: QIAO_CONFIG (see --config); QIAO_API_TRACE=FILE appends every request\n"
      "and answer to FILE as a JSON line (for debugging; upload bodies are left out).\n";
  return out;
}

std::string groupHelp(std::string_view group) {
  std::string out = "Usage: qiaoctl [GLOBAL OPTIONS] " + std::string(group) + " " +
                    (group == "host" ? "[check | list | get NAME]" : "COMMAND [ARGS]") + "\n\nCommands:\n";
  std::vector<std::pair<std::string, std::string>> rows;
  for (const auto& c : commandSpecs()) {
    if (c.group == group) rows.emplace_back(commandWords(c), std::string(c.summary));
  }
  out += twoColumns(rows);
  out += "\n'qiaoctl " + std::string(group) + (group == "host" ? " list" : " COMMAND") +
         " --help' shows a command's options; 'qiaoctl --help' the global options.\n";
  return out;
}

std::string commandHelp(const CommandSpec& c) {
  std::string out = "Usage: " + synopsis(c) + "\n\n";
  std::string summary(c.summary);
  if (!summary.empty()) summary[0] = static_cast<char>(std::toupper(summary[0]));
  out += summary + ".\n\n" + std::string(c.description) + "\n";
  if (!c.flags.empty()) {
    out += "\nOptions:\n";
    std::vector<std::pair<std::string, std::string>> rows;
    for (const auto& f : c.flags) {
      std::string left(f.name);
      if (!f.value_name.empty()) left += " " + std::string(f.value_name);
      std::string help(f.help);
      if (f.required) help += " (required)";
      rows.emplace_back(left, help);
    }
    out += twoColumns(rows);
  }
  out += "\nGlobal options (--config, --endpoint, --tenant, -o, ...): qiaoctl --help.\n";
  return out;
}

ParsedCommandLine parseCommandLine(const std::vector<std::string>& args) {
  ParsedCommandLine result;
  Invocation& inv = result.invocation;
  std::string group;
  std::string output = "table";

  // --help anywhere wins over everything else but an unknown command.
  bool help = false;
  bool version = false;
  for (const auto& a : args) {
    if (a == "--") break;
    help = help || a == "-h" || a == "--help";
    version = version || a == "--version";
  }
  auto usage = [&](const std::string& message) {
    std::string where = "qiaoctl";
    if (!group.empty()) where += " " + group;
    if (inv.command != nullptr && !inv.command->name.empty()) {
      where += " " + std::string(inv.command->name);
    }
    result.outcome = ParsedCommandLine::Outcome::kUsageError;
    result.text = where + ": " + message + "\nRun '" + where + " --help' for usage.\n";
    return result;
  };
  auto defaultCommand = [&]() -> const CommandSpec* {
    for (const auto& c : commandSpecs()) {
      if (c.group == group && c.name.empty()) return &c;
    }
    return nullptr;
  };

  bool positional_only = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (!positional_only && a == "--") {
      positional_only = true;
      continue;
    }
    if (!positional_only && a.size() > 1 && a[0] == '-') {
      std::string name = a;
      std::optional<std::string> inline_value;
      if (auto eq = a.find('='); a.starts_with("--") && eq != std::string::npos) {
        name = a.substr(0, eq);
        inline_value = a.substr(eq + 1);
      }
      auto takeValue = [&](std::string* into) -> bool {
        if (inline_value) {
          *into = *inline_value;
          return true;
        }
        if (i + 1 >= args.size()) return false;
        *into = args[++i];
        return true;
      };
      if (name == "-h" || name == "--help" || name == "--version") continue;
      if (const GlobalOption* g = findGlobal(name)) {
        std::string value;
        if (!takeValue(&value)) return usage(std::string(g->name) + " needs a value");
        if (g->name == "--config") inv.config_path = value;
        if (g->name == "--endpoint") inv.endpoint = value;
        if (g->name == "--tenant") inv.tenant = value;
        if (g->name == "--output") output = value;
        continue;
      }
      if (inv.command == nullptr) inv.command = defaultCommand();
      if (inv.command == nullptr) {
        if (help) continue;
        if (group.empty()) return usage("unknown option " + name);
        return usage("option " + name + " before the command; options go after it");
      }
      auto flag = std::find_if(inv.command->flags.begin(), inv.command->flags.end(),
                               [&](const FlagSpec& f) { return f.name == name; });
      if (flag == inv.command->flags.end()) {
        if (help) continue;
        return usage("unknown option " + name);
      }
      std::string value;
      if (flag->value_name.empty()) {
        if (inline_value) return usage(name + " takes no value");
      } else if (!takeValue(&value)) {
        return usage(name + " needs a value (" + std::string(flag->value_name) + ")");
      }
      if (help) continue;
      if (!flag->value_name.empty()) {
        if (auto bad = checkValue(*flag, value)) return usage(*bad);
      }
      auto& values = inv.flags[std::string(flag->name)];
      if (!values.empty() && !flag->repeatable) return usage(name + " given twice");
      values.push_back(value);
      continue;
    }
    // A word: the group, then the command, then the operand.
    if (group.empty()) {
      if (a == "help") {
        help = true;
        continue;
      }
      group = a;
      if (!isGroup(group)) {
        group.clear();
        return usage("unknown command \"" + a + "\" (commands: " + groupList() + ")");
      }
      continue;
    }
    if (inv.command == nullptr) {
      // Commands of two words ("disk add") first.
      if (i + 1 < args.size()) {
        const std::string two = a + " " + args[i + 1];
        for (const auto& c : commandSpecs()) {
          if (c.group == group && c.name == two) inv.command = &c;
        }
        if (inv.command != nullptr) {
          ++i;
          continue;
        }
      }
      for (const auto& c : commandSpecs()) {
        if (c.group == group && c.name == a) inv.command = &c;
      }
      if (inv.command != nullptr) continue;
      inv.command = defaultCommand();
      if (inv.command == nullptr) {
        std::string list;
        for (const auto& c : commandSpecs()) {
          if (c.group == group) list += (list.empty() ? "" : ", ") + std::string(c.name);
        }
        return usage("unknown command \"" + a + "\" (" + list + ")");
      }
    }
    if (help) continue;
    if (inv.command->operand.empty()) {
      return usage("unexpected argument \"" + a + "\"");
    }
    if (!inv.operand.empty()) {
      return usage("takes one " + std::string(inv.command->operand) + ", got \"" + inv.operand +
                   "\" and \"" + a + "\"");
    }
    if (a.empty()) return usage(std::string(inv.command->operand) + " must not be empty");
    inv.operand = a;
  }

  if (help) {
    result.outcome = ParsedCommandLine::Outcome::kHelp;
    result.text = inv.command != nullptr ? commandHelp(*inv.command)
                  : !group.empty()       ? groupHelp(group)
                                         : topHelp();
    return result;
  }
  if (version) {
    result.outcome = ParsedCommandLine::Outcome::kVersion;
    return result;
  }
  if (output != "table" && output != "json") {
    return usage("-o must be table or json, not \"" + output + "\"");
  }
  inv.json_output = output == "json";
  if (group.empty()) return usage("no command given (host, vm or task)");
  if (inv.command == nullptr) inv.command = defaultCommand();
  if (inv.command == nullptr) {
    std::string list;
    for (const auto& c : commandSpecs()) {
      if (c.group == group) list += (list.empty() ? "" : ", ") + std::string(c.name);
    }
    return usage("no command given (" + list + ")");
  }
  if (!inv.command->operand.empty() && inv.operand.empty()) {
    return usage("missing " + std::string(inv.command->operand));
  }
  for (const auto& f : inv.command->flags) {
    if (f.required && !inv.has(f.name)) {
      return usage(std::string(f.name) + " " + std::string(f.value_name) + " is required");
    }
  }
  if (inv.has("--timeout") && !inv.has("--wait") && inv.command->group == "vm") {
    return usage("--timeout goes with --wait");
  }
  result.outcome = ParsedCommandLine::Outcome::kRun;
  return result;
}

}  // namespace qiao
