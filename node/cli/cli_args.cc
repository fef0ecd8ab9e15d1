#include "node/cli/cli_args.h"

#include <algorithm>
#include <array>
#include <cctype>

namespace qiao {
namespace {

constexpr std::array<std::string_view, 9> kVmStates = {"creating", "running",  "paused",
                                                       "shutoff",  "shutdown", "crashed",
                                                       "deleting", "error",    "pmsuspended"};
constexpr std::array<std::string_view, 5> kTaskStates = {"queued", "running", "succeeded", "failed",
                                                         "cancelled"};

const FlagSpec kWait{"--wait", "",
                     "wait for the task: a progress bar on a terminal, else a line "
                     "per change, on stderr"};
const FlagSpec kWaitTimeout{"--timeout", "SECONDS",
                            "with --wait: give up waiting after SECONDS (default 600); the task "
                            "goes on",
                            FlagCheck::kCount};

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

// One row per command; the help is made from these rows (kept as written, not reflowed).
// clang-format off
std::vector<CommandSpec> makeSpecs() {
  std::vector<CommandSpec> specs = {
      {"host", "", "", "show this host: arch, CPU, memory, accelerator, versions",
       "Prints GET /v1/host as a two-column table (-o json: the API's JSON).",
       {}},
      {"host", "check", "", "check this host against the cluster's baseline: pass, warn or fail per item",
       "qiaod judges its host against its baseline file (host.baseline_file, by default\n"
       "/etc/qiao/baseline.toml; see docs/operators/installing.md) and this prints one line\n"
       "per item (GET /v1/host/check):\n"
       "  baseline     the file read (warn: none, the defaults; fail: it does not parse)\n"
       "  libvirt      qiaod reaches libvirtd\n"
       "  versions     libvirt and QEMU against min_libvirt, min_qemu\n"
       "  accelerator  kvm passes; tcg fails, warns or passes as the baseline's kvm says\n"
       "  cpu          the CPU features the baseline lists\n"
       "  firmware     a UEFI build for each guest arch the baseline lists\n"
       "  bios         the host's BIOS date against min_bios_date\n"
       "  iommu        IOMMU groups (required, preferred or ignored)\n"
       "  hugepages    HugePages_Total against min_hugepages\n"
       "  time         the kernel's clock synchronized (NTP, chrony)\n"
       "Items the baseline does not ask for are left out. Exit status 1 when an item fails\n"
       "(the host must not take guests), else 0 (warnings included).",
       {}},
      {"vm", "list", "", "list VMs",
       "Lists the VMs of the tenants you may see (only tenant T with --tenant T). Columns: "
       "TENANT NAME STATE\nVCPUS MEMORY ARCH AGE. Without --all, one page: a note on stderr "
       "says when there are more.",
       {{"--state", "S",
         "only VMs in state S: creating, running, paused, shutoff, shutdown, crashed, deleting, "
         "error, pmsuspended",
         FlagCheck::kVmState},
        {"--label", "KEY=VALUE", "only VMs with this label; repeat it to require several",
         FlagCheck::kLabel, true},
        {"--limit", "N", "at most N VMs a page (the server's default when not given)",
         FlagCheck::kCount},
        {"--all", "", "follow every page"}}},
      {"vm", "get", "NAME", "show one VM", "Prints the VM as a two-column table.", {}},
      {"vm", "create", "", "create a VM from a JSON spec",
       "Sends the VM spec (JSON, the API's VmSpec: name, tenant, arch, vcpus, memory_mib, "
       "firmware,\naccel, boot, disks, nics, labels) to POST /v1/vms. The tenant may be left out "
       "when your identity\nhas one tenant, or come from --tenant. Prints the task's id, or with "
       "--wait the VM once created.",
       {{"-f", "FILE|-", "the spec; - reads it from standard input", FlagCheck::kNone, false, true},
        {"--no-start", "", "define the VM but do not start it"},
        kWait,
        kWaitTimeout}},
      {"vm", "start", "NAME", "start a VM",
       "Prints the task's id, or with --wait the VM's state once done.", {kWait, kWaitTimeout}},
      {"vm", "stop", "NAME", "shut a VM down (ACPI power button)",
       "Prints the task's id, or with --wait the VM's state once done.", {kWait, kWaitTimeout}},
      {"vm", "force-stop", "NAME", "power a VM off at once",
       "Prints the task's id, or with --wait the VM's state once done.", {kWait, kWaitTimeout}},
      {"vm", "reboot", "NAME", "reboot a VM",
       "Prints the task's id, or with --wait the VM's state once done.", {kWait, kWaitTimeout}},
      {"vm", "pause", "NAME", "pause a VM's CPUs",
       "Prints the task's id, or with --wait the VM's state once done.", {kWait, kWaitTimeout}},
      {"vm", "resume", "NAME", "resume a paused VM",
       "Prints the task's id, or with --wait the VM's state once done.", {kWait, kWaitTimeout}},
      {"vm", "delete", "NAME", "delete a VM",
       "A running VM is refused (conflict) unless --force, which powers it off first. Prints the "
       "task's id,\nor with --wait a line once the VM is gone.",
       {{"--force", "", "delete a running VM too (powered off first)"}, kWait, kWaitTimeout}},
      {"vm", "disk add", "NAME", "add a disk to a VM, running or not",
       "A volume of the VM's tenant (--volume), or a new volume made from an image (--image,\n"
       "named --volume or <vm>-disk<k>). A running VM gets it at once (hot-plug; RBD volumes),\n"
       "a stopped one at its next start. Prints the task's id, or with --wait the VM once done.",
       {{"--volume", "V", "the volume to attach (with --image: the new volume's name)"},
        {"--image", "I", "make the disk from image I (a copy-on-write clone)"},
        {"--size-gib", "N", "with --image: its size in GiB (default: the image's)",
         FlagCheck::kCount},
        {"--keep", "", "with --image: keep the volume when the VM is deleted"},
        kWait,
        kWaitTimeout}},
      {"vm", "disk remove", "NAME", "remove a disk from a VM, running or not",
       "A running VM's guest is asked to release the disk (PCIe hot-unplug) and the task waits\n"
       "for it (30 s; a guest that does not let go keeps the disk and the task fails). The\n"
       "volume stays, available. Prints the task's id, or with --wait the VM once done.",
       {{"--volume", "V", "the disk's volume", FlagCheck::kNone, false, true},
        kWait,
        kWaitTimeout}},
      {"vm", "nic add", "NAME", "add a NIC to a VM, running or not",
       "A port on the network (address, MAC, flows) and, in a running VM, the device at once\n"
       "(hot-plug); a stopped VM has it at its next start. Prints the task's id, or with --wait\n"
       "the VM once done (its ports show the address and MAC).",
       {{"--network", "N", "a network of the VM's tenant", FlagCheck::kNone, false, true},
        {"--ip", "A", "a fixed address in the network's subnet (default: the lowest free)"},
        {"--mac", "M", "its MAC (default: derived from the port)"},
        {"--security-group", "G", "a security group of the tenant (default: default)",
         FlagCheck::kNone, true},
        kWait,
        kWaitTimeout}},
      {"vm", "nic remove", "NAME", "remove a NIC from a VM, running or not",
       "A running VM's guest is asked to release the NIC (PCIe hot-unplug), 30 s at most; then\n"
       "its port, address and flows go. Prints the task's id, or with --wait the VM once done.",
       {{"--mac", "M", "the NIC's MAC (qiaoctl vm get shows the ports)", FlagCheck::kNone, false,
         true},
        kWait,
        kWaitTimeout}},
      {"vm", "resize", "NAME", "change a VM's vCPUs or memory, running or not",
       "Within the max_vcpus and max_memory_mib its spec fixed at create: a running VM gets\n"
       "vCPUs hot-plugged or unplugged and its balloon set at once; a stopped one has them at\n"
       "its next start. Prints the task's id, or with --wait the VM once done.",
       {{"--vcpus", "N", "vCPUs", FlagCheck::kCount},
        {"--memory-mib", "M", "memory in MiB", FlagCheck::kCount},
        kWait,
        kWaitTimeout}},
      {"vm", "console-log", "NAME", "print the end of a VM's serial console output",
       "Prints the text as it is (no table, no JSON), whatever -o says.",
       {{"--tail", "BYTES", "the last BYTES bytes (default 65536, the server's limit applies)",
         FlagCheck::kCount}}},
      {"vm", "stats", "NAME", "show a running VM's CPU, memory, disk and NIC figures",
       "Prints CPU time, memory (the guest's own figures when its balloon driver reports "
       "them),\neach disk's reads and writes (by volume) and each NIC's traffic (by MAC and "
       "network).\nCounters since the VM started. Figures that could not be read are listed "
       "at the end.\nA VM that is not running is refused (conflict).",
       {}},
      {"volume", "list", "", "list volumes",
       "Columns: TENANT NAME SIZE STATE VM BACKEND AGE (only tenant T with --tenant T).", {}},
      {"volume", "get", "NAME", "show one volume", "Prints the volume as a two-column table.", {}},
      {"volume", "create", "NAME", "create an empty volume",
       "Prints the task's id, or with --wait the volume once created.",
       {{"--size-gib", "N", "its size in GiB", FlagCheck::kCount, false, true},
        {"--pool", "P", "the RBD pool (default: storage.ceph_pool)"},
        {"--iops", "N", "I/O operations a second at most (default: no limit)", FlagCheck::kCount},
        {"--bytes-per-sec", "N", "bytes a second at most (default: no limit)", FlagCheck::kCount},
        kWait,
        kWaitTimeout}},
      {"volume", "resize", "NAME", "grow a volume (volumes never shrink)",
       "Prints the task's id, or with --wait the volume once grown.",
       {{"--size-gib", "N", "the new size in GiB", FlagCheck::kCount, false, true},
        kWait,
        kWaitTimeout}},
      {"volume", "limits", "NAME", "set a volume's I/O limits (replacing all of them)",
       "Each limit given is set, every other one removed; --none removes them all. A total and\n"
       "its read/write split exclude each other. A VM using an RBD volume obeys the new limits\n"
       "within seconds, without a restart. Prints the task's id, or with --wait the volume.",
       {{"--iops", "N", "I/O operations a second, reads and writes together", FlagCheck::kCount},
        {"--bytes-per-sec", "N", "bytes a second, reads and writes together", FlagCheck::kCount},
        {"--read-iops", "N", "read operations a second", FlagCheck::kCount},
        {"--write-iops", "N", "write operations a second", FlagCheck::kCount},
        {"--read-bytes-per-sec", "N", "bytes read a second", FlagCheck::kCount},
        {"--write-bytes-per-sec", "N", "bytes written a second", FlagCheck::kCount},
        {"--none", "", "no limits at all"},
        kWait,
        kWaitTimeout}},
      {"volume", "copy", "NAME", "copy a volume into a new one, with progress",
       "A full copy of the volume as it was when the copy began, made by a QEMU block job: live\n"
       "in the running VM that has it attached (RBD), else in a qemu-storage-daemon. While it\n"
       "runs the volume cannot be resized, deleted or attached, nor its VM started, stopped or\n"
       "deleted; qiaoctl task cancel ID stops it and removes the partial copy, the source\n"
       "untouched. Prints the task's id, or with --wait the new volume.",
       {{"--to", "NAME", "the new volume's name", FlagCheck::kNone, false, true},
        {"--pool", "P", "the RBD pool of the copy (default: storage.ceph_pool)"},
        {"--bandwidth-mib-s", "N", "copy at most N MiB a second (default: no cap)",
         FlagCheck::kCount},
        kWait,
        kWaitTimeout}},
      {"volume", "delete", "NAME", "delete a volume",
       "Refused (conflict) while a VM uses the volume or a Ceph client has it open; the error "
       "names them.\nPrints the task's id, or with --wait a line once the volume is gone.",
       {kWait, kWaitTimeout}},
      {"network", "list", "", "list networks",
       "Columns: TENANT NAME TYPE SEGMENT SUBNET GATEWAY DHCP STATE AGE (only tenant T with "
       "--tenant T).",
       {}},
      {"network", "get", "NAME", "show one network and its ports",
       "Prints the network as a two-column table, then its ports (VM, NIC, device, MAC, IP).",
       {}},
      {"network", "create", "NAME", "create a tenant network",
       "Two tenants may use the same subnet: their traffic never meets. A tenant's own networks "
       "never\noverlap. The gateway defaults to the subnet's first address, the DHCP server takes "
       "the next free\none. Prints the task's id, or with --wait the network once ready.",
       {{"--subnet", "CIDR", "its IPv4 subnet, e.g. 10.0.0.0/24 (prefix 8 to 29)",
         FlagCheck::kNone, false, true},
        {"--type", "T", "vxlan (default), geneve or vlan"},
        {"--segment-id", "N", "VNI or VLAN id (default: the lowest free one)", FlagCheck::kCount},
        {"--gateway", "IP|none", "the gateway guests get (default: the first address)"},
        {"--no-dhcp", "", "no DHCP server: guests configure their addresses themselves"},
        {"--dns", "IP", "a DNS server for the guests; repeat for up to 3 (default: the "
         "network's DHCP server,\nwhich answers for the VM names)", FlagCheck::kNone, true},
        {"--mtu", "N", "guest MTU (default 1450 for vxlan/geneve, 1500 for vlan)",
         FlagCheck::kCount},
        kWait,
        kWaitTimeout}},
      {"network", "delete", "NAME", "delete a network",
       "Refused (conflict) while VMs have NICs on it; the error names them. Prints the task's "
       "id, or with\n--wait a line once the network is gone.",
       {kWait, kWaitTimeout}},
      {"security-group", "list", "", "list security groups",
       "Columns: TENANT NAME RULES AGE (only tenant T with --tenant T).", {}},
      {"security-group", "get", "NAME", "show one security group and its rules",
       "Prints the group, then its rules as a table.", {}},
      {"security-group", "create", "NAME", "create a security group",
       "Rules allow new connections; replies always pass (stateful). A rule is\n"
       "DIRECTION[:PROTOCOL[:PORTS[:REMOTE]]]: ingress or egress; any, tcp, udp or icmp; a port "
       "or\nMIN-MAX; a CIDR or group=NAME. e.g. --rule ingress:tcp:443 --rule "
       "ingress:any::group=web.",
       {{"--rule", "RULE", "a rule; repeat it (none: the group allows nothing new)",
         FlagCheck::kNone, true}}},
      {"security-group", "set-rules", "NAME", "replace a group's rules",
       "The flows of every NIC in the group change at once. RULE as for create.",
       {{"--rule", "RULE", "a rule; repeat it (none: the group allows nothing new)",
         FlagCheck::kNone, true}}},
      {"security-group", "delete", "NAME", "delete a security group",
       "Refused (conflict) while NICs use it; the error names their VMs.", {}},
      {"image", "list", "", "list images (yours and the public ones)",
       "Columns: TENANT NAME STATE FORMAT SIZE SHA256 AGE; public images show TENANT (public).",
       {}},
      {"image", "get", "NAME", "show one image", "Prints the image as a two-column table.", {}},
      {"image", "create", "NAME", "import an image: a file of yours, or a host path (admins)",
       "With --file, uploads FILE (streamed, of any size up to the server's limit) and starts "
       "the import.\nWith --source-path, the server imports a file of its own host (admins "
       "only). The format comes\nfrom the content (raw, qcow2, ISO 9660); a hostile or "
       "mismatching image is refused and nothing\nis kept. Prints the task's id, or with --wait "
       "the image once ready.",
       {{"--file", "FILE", "the image to upload from this machine"},
        {"--source-path", "PATH", "a file on the server's host (admins only)"},
        {"--format", "F", "the format you expect: raw, qcow2 or iso (checked against the content)"},
        {"--public", "", "every tenant may use it (admins only)"},
        kWait,
        kWaitTimeout}},
      {"image", "delete", "NAME", "delete an image",
       "Refused (conflict) while volumes cloned from it exist. Prints the task's id, or with "
       "--wait a\nline once the image is gone.",
       {kWait, kWaitTimeout}},
      {"quota", "get", "TENANT", "show a tenant's quotas and what it uses",
       "Columns: QUOTA LIMIT USED. A limit of 'none' is no limit. vCPUs and memory count the\n"
       "maximums a VM may grow to; volume GiB include VM disks made from images; uploads are\n"
       "those in progress.",
       {}},
      {"quota", "set", "TENANT", "set a tenant's quotas (admins)",
       "Each quota given is set; the others stay. A value is a number, 'none' for no limit, or\n"
       "'default' for the node's default again ([quota] in qiaod.toml). A create that would\n"
       "pass a quota is refused (conflict) with the figures. Prints the quotas as 'quota get'.",
       {{"--vms", "N", "VMs"},
        {"--vcpus", "N", "vCPUs of all its VMs"},
        {"--memory-mib", "N", "memory (MiB) of all its VMs"},
        {"--volume-gib", "N", "GiB of all its volumes"},
        {"--images", "N", "images it owns"},
        {"--networks", "N", "networks"},
        {"--uploads", "N", "image uploads in progress at once"}}},
      {"task", "list", "", "list tasks",
       "Columns: ID KIND TENANT VM STATE PROGRESS AGE MESSAGE; newest first, one page.",
       {{"--state", "S", "only tasks in state S: queued, running, succeeded, failed, cancelled",
         FlagCheck::kTaskState},
        {"--vm", "NAME", "only tasks on the VM NAME"},
        {"--limit", "N", "at most N tasks (the server's default when not given)",
         FlagCheck::kCount}}},
      {"task", "get", "ID", "show one task", "Prints the task as a two-column table.", {}},
      {"task", "cancel", "ID", "stop a running task",
       "Only tasks that can stop half way are cancelled (volume copies); others answer a\n"
       "conflict. The task undoes what it did and ends 'cancelled'; one that finishes first\n"
       "keeps its outcome. Prints a line, or with --wait waits for the task to end: exit status\n"
       "0 when it ended cancelled, 1 otherwise.",
       {kWait, kWaitTimeout}},
      {"task", "wait", "ID", "wait for a task to end",
       "Polls the task every 200 ms: a progress bar on stderr when it is a terminal, else a line "
       "on stderr\nper change. Exit status 0 when it succeeded; 1 when it failed or was "
       "cancelled (its error is\nprinted), or when the timeout passes (the task goes on).",
       {{"--timeout", "SECONDS", "give up after SECONDS (default 600)", FlagCheck::kCount}}},
  };
  return specs;
}
// clang-format on

bool isGroup(std::string_view g) {
  return g == "host" || g == "vm" || g == "volume" || g == "image" || g == "network" ||
         g == "security-group" || g == "quota" || g == "task";
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

const std::vector<CommandSpec>& commandSpecs() {
  static const std::vector<CommandSpec> kSpecs = makeSpecs();
  return kSpecs;
}

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
                    (group == "host" ? "[check]" : "COMMAND [ARGS]") + "\n\nCommands:\n";
  std::vector<std::pair<std::string, std::string>> rows;
  for (const auto& c : commandSpecs()) {
    if (c.group == group) rows.emplace_back(commandWords(c), std::string(c.summary));
  }
  out += twoColumns(rows);
  out += "\n'qiaoctl " + std::string(group) + (group == "host" ? " check" : " COMMAND") +
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
        return usage("unknown command \"" + a + "\" (commands: host, vm, volume, image, network, security-group, task)");
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
