// bench_storage: Qiao's storage work next to the floor of the same work done directly against
// the same Ceph (the stack's, scripts/ceph-stack) and libvirt:
//   1. volume create (POST /v1/volumes, wait for the task) vs `rbd create`;
//   2. create+start of a VM whose disk is a clone of a golden image (POST /v1/vms, wait until
//      running) vs `rbd clone` + `rbd resize` + `virsh define` (the same domain XML) +
//      `virsh start`;
//   3. import of an S MiB qcow2 (source_path: probe, qemu-img into RBD, digest, golden
//      snapshot) vs `qemu-img convert` of the same file into RBD: throughput.
// Usage: bench_storage [--n N] [--image-mib S]      (defaults: 10, 1024)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "tests/bench/bench_util.h"
#include "tests/integration/harness.h"

using namespace qiao;
using namespace qiao::testing;
using nlohmann::json;
using qiao::bench::Clock;
using qiao::bench::ms;
using qiao::bench::percentile;

namespace {

const std::string kCephDir = "/var/lib/qiao-ceph";

void rbd(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"rbd", "--conf", kCephDir + "/ceph.conf", "--id", "qiao",
                                   "--keyring", kCephDir + "/client.qiao.keyring"};
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = runCommand(argv, 300000);
  if (r.exit_code != 0) {
    std::fprintf(stderr, "rbd %s failed: %s\n", args[0].c_str(), r.err.c_str());
    std::exit(1);
  }
}

json finish(ApiClient& c, const JsonResponse& r) {
  if (r.status != 202) {
    std::fprintf(stderr, "answer %d: %s\n", r.status, r.raw.c_str());
    std::exit(1);
  }
  json t = waitTask(c, r.body["id"], std::chrono::seconds(600), std::chrono::milliseconds(5));
  if (t["state"] != "succeeded") {
    std::fprintf(stderr, "task failed: %s\n", t.dump().c_str());
    std::exit(1);
  }
  return t;
}

void row(const char* what, const std::vector<double>& qiao, const std::vector<double>& floor) {
  const double q50 = percentile(qiao, 50), f50 = percentile(floor, 50);
  std::printf("%-28s qiao p50 %8.1f ms p95 %8.1f ms | floor p50 %8.1f ms p95 %8.1f ms | %.2fx\n",
              what, q50, percentile(qiao, 95), f50, percentile(floor, 95),
              f50 > 0 ? q50 / f50 : 0.0);
}

}  // namespace

int main(int argc, char** argv) {
  int n = 10;
  int image_mib = 1024;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--n") n = std::stoi(argv[i + 1]);
    if (flag == "--image-mib") image_mib = std::stoi(argv[i + 1]);
  }
  Qiaod q("[storage]\nbackend = \"rbd\"\nceph_conf = \"" + kCephDir + "/ceph.conf\"\n" +
          "ceph_keyring = \"" + kCephDir + "/client.qiao.keyring\"\nceph_pool = \"qiao\"\n");
  q.start();
  auto c = q.adminClient();
  const std::string tenant = "bench" + randomSuffix(4);
  const std::string floor_ns = "floor" + randomSuffix(4);
  rbd({"namespace", "create", "qiao/" + floor_ns});

  // 1. volume create.
  std::vector<double> api_create, rbd_create;
  for (int i = 0; i < n; ++i) {
    auto t0 = Clock::now();
    finish(c, call(c, "POST", "/v1/volumes",
                   json({{"name", "v" + std::to_string(i)}, {"tenant", tenant}, {"size_gib", 10}})
                       .dump()));
    api_create.push_back(ms(Clock::now() - t0));
    t0 = Clock::now();
    rbd({"create", "--size", "10G", "qiao/" + floor_ns + "/v" + std::to_string(i)});
    rbd_create.push_back(ms(Clock::now() - t0));
  }
  row("volume create (10 GiB)", api_create, rbd_create);

  // 2. create+start of a VM from a golden image.
  {
    auto made = call(c, "POST", "/v1/images", json({{"name", "golden"}, {"tenant", tenant}}).dump());
    if (made.status != 201) return std::fprintf(stderr, "%s\n", made.raw.c_str()), 1;
    const std::string small = q.dir() + "/small.raw";
    { std::ofstream(small, std::ios::binary) << std::string(64 << 20, 'g'); }
    auto put = c.upload("/v1/images/golden/data?tenant=" + tenant, small);
    if (!put || put->status != 202) return std::fprintf(stderr, "upload failed\n"), 1;
    finish(c, JsonResponse{put->status, json::parse(put->body), put->body});
    rbd({"import", "--no-progress", small, "qiao/" + floor_ns + "/golden"});
    rbd({"snap", "create", "qiao/" + floor_ns + "/golden@golden"});
    rbd({"snap", "protect", "qiao/" + floor_ns + "/golden@golden"});
  }
  std::vector<double> api_vm, floor_vm;
  for (int i = 0; i < n; ++i) {
    const std::string vm = "d" + std::to_string(i);
    json spec = {{"name", vm}, {"tenant", tenant}, {"memory_mib", 64},
                 {"disks", json::array({{{"image", "golden"}, {"size_gib", 10}}})}};
    auto t0 = Clock::now();
    finish(c, call(c, "POST", "/v1/vms", spec.dump()));
    api_vm.push_back(ms(Clock::now() - t0));
    // The floor: the same XML, with its own name, uuid and clone.
    std::string xml = runCommand({"virsh", "-c", "qemu:///system", "dumpxml", "--inactive",
                                  tenant + "." + vm}).out;
    auto replaceAll = [&](const std::string& from, const std::string& to) {
      for (size_t at = 0; (at = xml.find(from, at)) != std::string::npos; at += to.size()) {
        xml.replace(at, from.size(), to);
      }
    };
    replaceAll(tenant + "." + vm, "floor-" + floor_ns + "-" + vm);
    replaceAll("&quot;namespace&quot;:&quot;" + tenant + "&quot;",
               "&quot;namespace&quot;:&quot;" + floor_ns + "&quot;");
    replaceAll("vol-" + vm + "-disk0", "c" + std::to_string(i));
    if (auto u = xml.find("<uuid>"); u != std::string::npos) {
      xml.erase(u, xml.find("</uuid>") + 7 - u);
    }
    // Its own console log (virtlogd holds Qiao's VM's).
    replaceAll("/state/console/", "/state/console/floor-");
    const std::string file = q.dir() + "/floor.xml";
    { std::ofstream(file) << xml; }
    t0 = Clock::now();
    rbd({"clone", "qiao/" + floor_ns + "/golden@golden", "qiao/" + floor_ns + "/c" + std::to_string(i)});
    rbd({"resize", "--no-progress", "--size", "10G", "qiao/" + floor_ns + "/c" + std::to_string(i)});
    runCommand({"virsh", "-c", "qemu:///system", "define", file});
    auto started = runCommand({"virsh", "-c", "qemu:///system", "start", "floor-" + floor_ns + "-" + vm});
    floor_vm.push_back(ms(Clock::now() - t0));
    if (started.exit_code != 0) {
      std::fprintf(stderr, "floor start failed: %s\n", started.err.c_str());
      return 1;
    }
    runCommand({"virsh", "-c", "qemu:///system", "destroy", "floor-" + floor_ns + "-" + vm});
    runCommand({"virsh", "-c", "qemu:///system", "undefine", "floor-" + floor_ns + "-" + vm});
  }
  row("vm create+start from image", api_vm, floor_vm);

  // 3. import of a qcow2 holding S MiB of data.
  const std::string raw_file = q.dir() + "/big.raw";
  const std::string qcow2_file = q.dir() + "/big.qcow2";
  {
    std::ofstream out(raw_file, std::ios::binary);
    std::string chunk(1 << 20, '\0');
    for (int m = 0; m < image_mib; ++m) {
      for (size_t k = 0; k < chunk.size(); k += 4096) chunk[k] = static_cast<char>(m + k);
      out << chunk;
    }
  }
  runCommand({"qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw_file, qcow2_file}, 600000);
  auto t_imp = Clock::now();
  finish(c, call(c, "POST", "/v1/images",
                 json({{"name", "big"}, {"tenant", tenant}, {"source_path", qcow2_file}}).dump()));
  const double api_import_s = ms(Clock::now() - t_imp) / 1000.0;
  auto t_floor = Clock::now();
  auto floor_convert = runCommand(
      {"qemu-img", "convert", "-f", "qcow2", "-O", "raw", qcow2_file,
       "rbd:qiao/" + floor_ns + "/big:id=qiao:keyring=" + kCephDir +
           "/client.qiao.keyring:conf=" + kCephDir + "/ceph.conf"},
      1800000);
  const double floor_import_s = ms(Clock::now() - t_floor) / 1000.0;
  if (floor_convert.exit_code != 0) std::fprintf(stderr, "floor: %s\n", floor_convert.err.c_str());
  std::printf("%-28s qiao %6.1f MiB/s (%.1f s) | qemu-img convert %6.1f MiB/s (%.1f s) | %.2fx\n",
              ("import qcow2 " + std::to_string(image_mib) + " MiB").c_str(),
              image_mib / api_import_s, api_import_s, image_mib / floor_import_s, floor_import_s,
              floor_import_s / api_import_s);

  // Clean up both sides.
  for (int i = 0; i < n; ++i) {
    finish(c, call(c, "DELETE", "/v1/vms/d" + std::to_string(i) + "?tenant=" + tenant + "&force=true"));
    finish(c, call(c, "DELETE", "/v1/volumes/v" + std::to_string(i) + "?tenant=" + tenant));
    rbd({"rm", "--no-progress", "qiao/" + floor_ns + "/v" + std::to_string(i)});
    rbd({"rm", "--no-progress", "qiao/" + floor_ns + "/c" + std::to_string(i)});
  }
  for (const char* image : {"golden", "big"}) {
    finish(c, call(c, "DELETE", "/v1/images/" + std::string(image) + "?tenant=" + tenant));
  }
  rbd({"snap", "unprotect", "qiao/" + floor_ns + "/golden@golden"});
  rbd({"snap", "purge", "--no-progress", "qiao/" + floor_ns + "/golden"});
  rbd({"rm", "--no-progress", "qiao/" + floor_ns + "/golden"});
  rbd({"rm", "--no-progress", "qiao/" + floor_ns + "/big"});
  rbd({"namespace", "remove", "qiao/" + floor_ns});
  return 0;
}
