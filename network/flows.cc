#include "network/flows.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <map>
#include <sstream>

#include "base/process.h"

namespace qiao {

namespace {

constexpr int kTableClassify = 0;
constexpr int kTableEgress = 10;
constexpr int kTableL2 = 20;
constexpr int kTableIngress = 30;

std::string head(int table, int priority) {
  char buf[80];
  std::snprintf(buf, sizeof buf, "cookie=0x%" PRIx64 ",table=%d,priority=%d", kQiaoCookie, table,
                priority);
  return buf;
}

std::string cookieMatch() {
  char buf[64];
  std::snprintf(buf, sizeof buf, "cookie=0x%" PRIx64 "/-1", kQiaoCookie);
  return buf;
}

Error ofctlError(const std::string& what, const ProcessResult& r) {
  std::string err = r.err.empty() ? r.out : r.err;
  while (!err.empty() && (err.back() == '\n' || err.back() == ' ')) err.pop_back();
  // ovs-ofctl cannot reach a bridge that is not there or a vswitchd that is down.
  bool down = err.find("is not a bridge or a socket") != std::string::npos ||
              err.find("Connection refused") != std::string::npos ||
              err.find("No such file") != std::string::npos;
  return Error{down ? ErrorCode::kUnavailable : ErrorCode::kInternal, "ovs",
               what + ": " + (r.timed_out ? std::string("timed out") : err)};
}

class OfctlInstaller : public FlowInstaller {
 public:
  explicit OfctlInstaller(OfctlOptions options) : options_(std::move(options)) {}

  Status replace(const std::string& bridge, const std::vector<std::string>& flows) override {
    std::string text = "delete " + cookieMatch() + "\n";
    for (const auto& f : flows) text += "add " + f + "\n";
    auto r = run({"--bundle", "add-flows", bridge, "-"}, text);
    if (!r) return std::unexpected(r.error());
    if (r->exit_code != 0) return std::unexpected(ofctlError("installing flows on " + bridge, *r));
    return {};
  }

  Result<std::vector<std::string>> dump(const std::string& bridge) override {
    auto r = run({"--no-stats", "dump-flows", bridge, cookieMatch()}, {});
    if (!r) return std::unexpected(r.error());
    if (r->exit_code != 0) return std::unexpected(ofctlError("reading flows of " + bridge, *r));
    std::vector<std::string> lines;
    std::istringstream in(r->out);
    for (std::string line; std::getline(in, line);) {
      size_t b = line.find_first_not_of(' ');
      if (b == std::string::npos || line.compare(b, 7, "cookie=") != 0) continue;
      lines.push_back(line.substr(b));
    }
    std::sort(lines.begin(), lines.end());
    return lines;
  }

 private:
  Result<ProcessResult> run(std::vector<std::string> args, std::string stdin_data) {
    ProcessOptions p;
    p.argv = {options_.program, "-O", "OpenFlow14"};
    p.argv.insert(p.argv.end(), args.begin(), args.end());
    p.stdin_data = std::move(stdin_data);
    p.timeout_ms = options_.timeout_ms;
    p.max_output_bytes = 64 << 20;
    auto r = runProcess(p);
    if (!r) {
      return makeError(ErrorCode::kUnavailable, "ovs",
                       "cannot run " + options_.program + ": " + r.error().message);
    }
    return r;
  }

  OfctlOptions options_;
};

}  // namespace

std::vector<std::string> buildFlows(const std::vector<FlowPort>& ports) {
  std::vector<std::string> flows;
  // Everything not matched below is dropped.
  flows.push_back(head(kTableClassify, 0) + ",actions=drop");
  flows.push_back(head(kTableEgress, 0) + ",actions=resubmit(," + std::to_string(kTableL2) + ")");
  flows.push_back(head(kTableL2, 0) + ",actions=drop");
  flows.push_back(head(kTableIngress, 0) + ",actions=output:NXM_NX_REG7[]");

  std::map<int64_t, std::vector<int64_t>> members;  // network -> ofports, in port order
  std::vector<FlowPort> sorted = ports;
  std::sort(sorted.begin(), sorted.end(),
            [](const FlowPort& a, const FlowPort& b) { return a.ofport < b.ofport; });
  for (const auto& p : sorted) {
    if (p.ofport <= 0 || p.network <= 0) continue;
    const std::string in = ",in_port=" + std::to_string(p.ofport);
    const std::string tag = "load:" + std::to_string(p.network) + "->NXM_NX_REG6[]";
    const std::string to_l2 = tag + ",resubmit(," + std::to_string(kTableL2) + ")";
    const std::string to_egress = tag + ",resubmit(," + std::to_string(kTableEgress) + ")";
    members[p.network].push_back(p.ofport);
    if (p.trusted) {
      flows.push_back(head(kTableClassify, 200) + in + ",actions=" + to_l2);
    } else {
      const std::string src = in + ",dl_src=" + p.mac;
      // A guest answering DHCP, or speaking IPv6 (router advertisements), is dropped first.
      flows.push_back(head(kTableClassify, 300) + in + ",udp,tp_src=67,actions=drop");
      flows.push_back(head(kTableClassify, 300) + in + ",ipv6,actions=drop");
      for (const auto& ip : p.ips) {
        flows.push_back(head(kTableClassify, 200) + src + ",arp,arp_spa=" + ip +
                        ",arp_sha=" + p.mac + ",actions=" + to_l2);
        flows.push_back(head(kTableClassify, 200) + src + ",ip,nw_src=" + ip +
                        ",actions=" + to_egress);
      }
      // DHCP discover/request before the guest has its address.
      flows.push_back(head(kTableClassify, 200) + src +
                      ",udp,nw_src=0.0.0.0,tp_src=68,tp_dst=67,actions=" + to_l2);
      flows.push_back(head(kTableClassify, 100) + in + ",actions=drop");
    }
    flows.push_back(head(kTableL2, 100) + ",reg6=" + std::to_string(p.network) +
                    ",dl_dst=" + p.mac + ",actions=load:" + std::to_string(p.ofport) +
                    "->NXM_NX_REG7[],resubmit(," + std::to_string(kTableIngress) + ")");
  }
  for (const auto& [network, ofports] : members) {
    std::string out;
    for (int64_t o : ofports) out += (out.empty() ? "" : ",") + ("output:" + std::to_string(o));
    flows.push_back(head(kTableL2, 50) + ",reg6=" + std::to_string(network) +
                    ",dl_dst=01:00:00:00:00:00/01:00:00:00:00:00,actions=" + out);
  }
  return flows;
}

std::unique_ptr<FlowInstaller> makeOfctlInstaller(const OfctlOptions& options) {
  return std::make_unique<OfctlInstaller>(options);
}

}  // namespace qiao
