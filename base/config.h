// qiaod's configuration: /etc/qiao/qiaod.toml. One table of options (config.cc) holds every
// key's type, default, range and help; parsing, validation, the default file and the
// reference documentation all come from it. Unknown keys, wrong types and values out of range
// fail the start with the file and the key's name.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace qiao {

struct Config {
  struct Api {
    std::vector<std::string> listen{"127.0.0.1:8443"};
    int64_t max_body_bytes = 1 << 20;
    int max_connections = 256;
    int max_connections_per_source = 32;
    int max_connections_per_identity = 32;
    int admin_reserved_connections = 16;
    int max_event_streams = 64;
    int max_event_streams_per_identity = 4;
    int admin_reserved_event_streams = 8;
    int event_stream_max_s = 3600;
    int request_timeout_s = 30;
    int audit_summary_interval_s = 60;
  } api;
  // The audit log's rotation and shipping (docs/operators/security.md).
  struct Audit {
    std::string export_dir;  // "" = <state.dir>/audit
    int64_t segment_entries = 50000;
    int rotate_check_s = 60;
    std::string syslog;  // "" = not shipped; unix:/path or tls://host:port
    std::string syslog_ca_file;
    std::string syslog_cert_file;  // "" = this node's certificate (pki.dir/node.crt)
    std::string syslog_key_file;   // "" = pki.dir/node.key
    int syslog_confirm_s = 5;
  } audit;
  struct Pki {
    std::string dir = "/etc/qiao/pki";
  } pki;
  struct State {
    std::string dir = "/var/lib/qiao";
  } state;
  struct Libvirt {
    std::string uri = "qemu:///system";
    int workers = 4;
    int keepalive_interval_s = 5;
  } libvirt;
  struct Vm {
    std::string accelerator = "auto";
    int shutdown_timeout_s = 60;
    int dependency_timeout_s = 900;
    int64_t console_log_max_bytes = 2 << 20;
    std::string machine_x86_64 = "q35";
    std::string machine_aarch64 = "virt";
    std::string cpu_model_aarch64_tcg = "cortex-a72";
    std::string kvm_probe_kernel;  // "" = /boot/vmlinuz-<running release> when readable
    int max_vcpus = 64;
    int64_t max_memory_mib = 262144;
    int cpu_overcommit_percent = 400;
    int memory_overcommit_percent = 100;
  } vm;
  struct Storage {
    std::string backend = "auto";
    std::string local_dir = "/var/lib/qiao/volumes";
    std::string ceph_conf = "/etc/ceph/ceph.conf";
    std::string ceph_user = "qiao";
    std::string ceph_keyring;
    std::string ceph_pool = "qiao";
    std::vector<std::string> ceph_other_pools;  // pools a volume may be made or copied in
    int ceph_timeout_s = 30;
    int64_t max_volume_gib = 16384;
  } storage;
  // Membership of a cluster whose state lives in Ceph (docs/operators/cluster.md).
  struct Cluster {
    std::string mode = "standalone";  // standalone | member
    std::string pool = "qiao-cluster";
    std::string host;      // this host's name in the cluster; "" = the machine's host name
    std::string endpoint;  // "https://ADDRESS:PORT" others reach its API at; "" = api.listen[0]
    int lease_s = 10;
    std::string site;
    std::vector<std::string> labels;  // "key=value"
  } cluster;
  struct Host {
    std::string baseline_file = "/etc/qiao/baseline.toml";
  } host;
  struct Network {
    std::string mode = "auto";  // auto | ovs | off
    std::string ovsdb_socket = "/var/run/openvswitch/db.sock";
    std::string bridge = "br-int";
    std::string datapath_type = "netdev";
    int check_interval_ms = 1000;
    std::string run_dir = "/run/qiao/dhcp";
    int ovs_timeout_ms = 5000;
    std::string vlan_uplink;
    std::string vlan_bridge = "br-vlan";
    std::string tunnel_ip;                  // "" = no tunnels
    std::vector<std::string> tunnel_peers;  // the other hosts' tunnel_ip
  } network;
  // Each tenant's quotas unless an admin set its own (qiaoctl quota set); -1 is no limit.
  struct Quota {
    int64_t vms = -1;
    int64_t vcpus = -1;
    int64_t memory_mib = -1;
    int64_t volume_gib = -1;
    int64_t images = -1;
    int64_t networks = -1;
  } quota;
  struct Images {
    int64_t max_upload_bytes = int64_t{64} << 30;
    int max_parallel_uploads = 2;
    int64_t upload_reserve_mib = 2048;
    int64_t max_virtual_gib = 2048;
    int convert_cpu_seconds = 1200;
    int64_t convert_memory_mib = 3072;
  } images;
  struct Log {
    std::string level = "info";
    std::string file;
  } log;
};

Result<Config> parseConfig(std::string_view toml_text, std::string_view source_name);
// must_exist=false: a missing file gives the defaults.
Result<Config> loadConfig(const std::string& path, bool must_exist);
// Markdown: one section per table, each key with type, default, range and help.
std::string configReferenceMarkdown();
// Every key commented out with its default and help: the shipped /etc/qiao/qiaod.toml.
std::string defaultConfigToml();

}  // namespace qiao
