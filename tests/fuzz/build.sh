#!/usr/bin/env bash
# tests/fuzz/build.sh OUT_DIR: builds the libFuzzer targets with clang-19 (Debian's clang 14
# cannot see std::expected in GCC 12's headers), with ASan and UBSan, from the sources they need.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=${1:?usage: build.sh OUT_DIR}
mkdir -p "$out"
cxx=${QIAO_FUZZ_CXX:-clang++-19}
command -v "$cxx" >/dev/null || { echo "build.sh: $cxx not found (apt-get install clang-19 libclang-rt-19-dev)" >&2; exit 1; }
launcher=()
command -v ccache >/dev/null && launcher=(ccache)
flags=(-std=c++2b -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
       -I"$repo" -I/usr/include/libxml2)
common=("$repo/base/error.cc" "$repo/base/names.cc" "$repo/base/log.cc" "$repo/base/json_input.cc"
        "$repo/base/crypto.cc" "$repo/base/process.cc" "$repo/images/cloud_init.cc"
        "$repo/node/vm/spec.cc" "$repo/network/ipam.cc")
"${launcher[@]}" "$cxx" "${flags[@]}" -o "$out/spec_fuzz" "$here/spec_fuzz.cc" "${common[@]}" -lcrypto
"${launcher[@]}" "$cxx" "${flags[@]}" -o "$out/domain_xml_fuzz" "$here/domain_xml_fuzz.cc" \
  "${common[@]}" "$repo/node/vm/xml_writer.cc" "$repo/node/vm/domain.cc" "$repo/storage/qemu_block.cc" \
  -lxml2 -lcrypto
"${launcher[@]}" "$cxx" "${flags[@]}" -o "$out/image_probe_fuzz" "$here/image_probe_fuzz.cc" \
  "$repo/base/error.cc" "$repo/images/probe.cc"
"${launcher[@]}" "$cxx" "${flags[@]}" -pthread -o "$out/ovsdb_fuzz" "$here/ovsdb_fuzz.cc" \
  "$repo/base/error.cc" "$repo/base/names.cc" "$repo/base/log.cc" "$repo/base/json_input.cc" \
  "$repo/network/ovsdb.cc"
"${launcher[@]}" "$cxx" "${flags[@]}" -o "$out/qmp_fuzz" "$here/qmp_fuzz.cc" \
  "$repo/base/error.cc" "$repo/base/names.cc" "$repo/base/json_input.cc" "$repo/node/vm/qmp/qmp_message.cc"
# The API's request bodies, each parser built from its own spec file (no service behind it).
json_in=("$repo/base/error.cc" "$repo/base/names.cc" "$repo/base/json_input.cc")
"${launcher[@]}" "$cxx" "${flags[@]}" -o "$out/volume_fuzz" "$here/volume_fuzz.cc" "${json_in[@]}" \
  "$repo/node/volumes/volume_spec.cc" "$repo/node/state/record_json.cc"
"${launcher[@]}" "$cxx" "${flags[@]}" -o "$out/network_fuzz" "$here/network_fuzz.cc" "${json_in[@]}" \
  "$repo/node/networks/network_spec.cc" "$repo/network/ipam.cc" "$repo/base/crypto.cc" -lcrypto
"${launcher[@]}" "$cxx" "${flags[@]}" -o "$out/group_fuzz" "$here/group_fuzz.cc" "${json_in[@]}" \
  "$repo/node/networks/network_spec.cc" "$repo/network/ipam.cc" "$repo/base/crypto.cc" -lcrypto
"${launcher[@]}" "$cxx" "${flags[@]}" -o "$out/image_fuzz" "$here/image_fuzz.cc" "${json_in[@]}" \
  "$repo/node/images/image_spec.cc" "$repo/images/probe.cc"
"${launcher[@]}" "$cxx" "${flags[@]}" -o "$out/quota_fuzz" "$here/quota_fuzz.cc" "${json_in[@]}" \
  "$repo/node/quotas/quota_spec.cc"
"${launcher[@]}" "$cxx" "${flags[@]}" -o "$out/nic_fuzz" "$here/nic_fuzz.cc" "${common[@]}" -lcrypto
"${launcher[@]}" "$cxx" "${flags[@]}" -o "$out/vm_actions_fuzz" "$here/vm_actions_fuzz.cc" \
  "${common[@]}" -lcrypto
for src in "$here"/*_fuzz.cc; do
  bin="$out/$(basename "${src%.cc}")"
  [ -x "$bin" ] && [ "$bin" -nt "$src" ] || { echo "build.sh: no rule builds $(basename "$src")" >&2; exit 1; }
done
echo "build.sh: built every target of $here/*_fuzz.cc in $out"
