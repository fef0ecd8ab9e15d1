#!/usr/bin/env bash
# tests/packaging/install_test.sh: builds the amd64 .deb (scripts/package) and installs it into
# a fresh root with its own empty dpkg database (dpkg --root, maintainer scripts run
# chrootless with DPKG_ROOT set), never touching the host's packages or /etc. Checks the file
# list, the conffile, the systemd unit (ExecStart names the installed qiaod, and
# `systemd-analyze verify` accepts it), the state directory's mode, that the installed qiaod
# runs `--version` and `config check` on the installed conffile, that a reinstall keeps an
# edited conffile, that `dpkg -r` keeps the conffile, and that purge removes it (and keeps a
# store that is not empty). Every failed check is reported; the exit status is 1 if any failed.
#
# Usage: tests/packaging/install_test.sh --build-dir DIR [--deb FILE] [--keep] [--help]
#   --build-dir DIR  the native (amd64) build to package (ctest passes its own)
#   --deb FILE       test this .deb instead of building one (DIR still gives the version)
#   --keep           keep the scratch directory (printed) for a look afterwards
set -euo pipefail

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=
deb=
keep=0
while (($#)); do
  case "$1" in
    --build-dir) build=${2:?--build-dir needs a directory}; shift 2 ;;
    --deb) deb=${2:?--deb needs a file}; shift 2 ;;
    --keep) keep=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install_test: unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ -n "$build" && -f "$build/CMakeCache.txt" ]] || { echo "install_test: --build-dir DIR (a configured build) is required" >&2; exit 2; }
for tool in dpkg dpkg-deb dpkg-query systemd-analyze cpack; do
  command -v "$tool" >/dev/null || { echo "install_test: $tool is missing (scripts/install-deps)" >&2; exit 1; }
done

work=$(mktemp -d /tmp/qiao-install-test.XXXXXX)
if ((keep)); then
  echo "install_test: scratch directory $work"
else
  trap 'rm -rf -- "$work"' EXIT
fi

failures=0
pass() { echo "ok    $*"; }
fail() { echo "FAIL  $*"; failures=$((failures + 1)); }
check() {  # check DESCRIPTION COMMAND...: passes when the command succeeds
  local what=$1; shift
  if "$@"; then pass "$what"; else fail "$what"; fi
}

version=$(sed -n 's/^CMAKE_PROJECT_VERSION:[A-Z]*=//p' "$build/CMakeCache.txt")
[[ -n "$version" ]] || { echo "install_test: no CMAKE_PROJECT_VERSION in $build/CMakeCache.txt" >&2; exit 1; }

if [[ -z "$deb" ]]; then
  deb=$("$repo/scripts/package" --arch amd64 --build-dir "$build" --out "$work/out")
fi
check "package file is qiao_${version}_amd64.deb" test "$(basename "$deb")" = "qiao_${version}_amd64.deb"

# --- The control fields ------------------------------------------------------------------------
field() { dpkg-deb --field "$deb" "$1"; }
check "Package: qiao" test "$(field Package)" = qiao
check "Version: $version (the CMake project version)" test "$(field Version)" = "$version"
check "Architecture: amd64" test "$(field Architecture)" = amd64
names() { field "$1" | tr ',|' '\n\n' | sed 's/^ *//; s/[ (].*//' | sed '/^$/d'; }
echo "      Depends: $(field Depends)"
depends=$(names Depends)
for lib in libc6 libstdc++6 libgcc-s1 libssl3 libsqlite3-0 libxml2 libvirt0 librbd1 librados2 libtomlplusplus3; do
  check "Depends names $lib" grep -qxF "$lib" <<<"$depends"
done
recommends=$(names Recommends)
for p in libvirt-daemon-system qemu-system-x86 ovmf openvswitch-switch ceph-common dnsmasq-base; do
  check "Recommends names $p" grep -qxF "$p" <<<"$recommends"
done
check "conffiles lists /etc/qiao/qiaod.toml" \
  bash -c 'dpkg-deb --info "$1" conffiles | grep -qx /etc/qiao/qiaod.toml' _ "$deb"

# --- Install into a fresh root -------------------------------------------------------------------
root=$work/root
mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates" "$root/var/lib/dpkg/triggers" \
         "$root/var/log"
: >"$root/var/lib/dpkg/status"
rdpkg() {
  dpkg --root="$root" --log="$work/dpkg.log" --force-script-chrootless --force-depends \
       --force-confold "$@"
}
if ! rdpkg -i "$deb" >"$work/install.out" 2>&1; then
  cat "$work/install.out"
  fail "dpkg --root -i installs the package"
  echo "install_test: $failures check(s) failed"; exit 1
fi
pass "dpkg --root -i installs the package"
status() { dpkg-query --admindir="$root/var/lib/dpkg" -W -f='${Status}' qiao 2>/dev/null || true; }
check "package status is installed" test "$(status)" = "install ok installed"

# The file list, exactly (directories aside).
{
  printf '%s\n' /usr/bin/qiaod /usr/bin/qiaoctl /usr/lib/systemd/system/qiaod.service \
    /etc/qiao/qiaod.toml /usr/share/doc/qiao/README.md /usr/share/doc/qiao/copyright
  for f in "$repo"/docs/operators/*.md; do echo "/usr/share/doc/qiao/operators/$(basename "$f")"; done
} | LC_ALL=C sort >"$work/files.want"
dpkg-query --admindir="$root/var/lib/dpkg" -L qiao | while IFS= read -r p; do
  [[ -d "$root$p" && ! -L "$root$p" ]] || echo "$p"
done | LC_ALL=C sort >"$work/files.have"
if diff -u "$work/files.want" "$work/files.have" >"$work/files.diff"; then
  pass "file list is exactly the expected $(wc -l <"$work/files.want") files"
else
  fail "file list (- expected, + packaged):"; sed 's/^/      /' "$work/files.diff"
fi
for f in /usr/bin/qiaod /usr/bin/qiaoctl; do
  check "$f is an executable file (0755)" test "$(stat -c %a "$root$f")" = 755
done

# The conffile.
conffiles=$(dpkg-query --admindir="$root/var/lib/dpkg" -W -f='${Conffiles}' qiao)
check "dpkg registered /etc/qiao/qiaod.toml as a conffile" grep -qE '^ /etc/qiao/qiaod.toml [0-9a-f]{32}$' <<<"$conffiles"

# The unit: ExecStart names the installed binary, and systemd-analyze accepts it. verify needs
# systemd's own units (sysinit.target, ...): it runs on a copy root with the host's units, the
# installed unit and the installed qiaod.
unit=$root/usr/lib/systemd/system/qiaod.service
exec_start=$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$unit")
check "ExecStart is /usr/bin/qiaod (is: '$exec_start')" test "$exec_start" = /usr/bin/qiaod
check "ExecStart's binary is installed and executable" test -x "$root$exec_start"
check "unit keeps KillMode=process (stopping qiaod never stops guests)" grep -qx 'KillMode=process' "$unit"
vroot=$work/verify-root
mkdir -p "$vroot/usr/lib/systemd" "$vroot/usr/bin"
cp -a /usr/lib/systemd/system "$vroot/usr/lib/systemd/"
cp -a "$unit" "$vroot/usr/lib/systemd/system/qiaod.service"
if [[ -e "$root$exec_start" ]]; then
  mkdir -p "$vroot$(dirname "$exec_start")"
  cp -a "$root$exec_start" "$vroot$exec_start"
fi
if systemd-analyze --root="$vroot" --man=no verify qiaod.service >"$work/verify.out" 2>&1 &&
   [[ ! -s "$work/verify.out" ]]; then
  pass "systemd-analyze verify accepts the unit (no errors, no warnings)"
else
  fail "systemd-analyze verify:"; sed 's/^/      /' "$work/verify.out"
fi

# The state directory, made by postinst.
check "/var/lib/qiao exists with mode 0700, owned by root" \
  test "$(stat -c '%a %U' "$root/var/lib/qiao" 2>/dev/null)" = "700 root"

# The installed qiaod runs, and accepts the installed configuration.
if out=$("$root/usr/bin/qiaod" --version 2>&1) && grep -qF "$version" <<<"$out"; then
  pass "installed qiaod --version ($out)"
else
  fail "installed qiaod --version: $out"
fi
if out=$("$root/usr/bin/qiaoctl" --version 2>&1) && grep -qF "$version" <<<"$out"; then
  pass "installed qiaoctl --version ($out)"
else
  fail "installed qiaoctl --version: $out"
fi
conf=$root/etc/qiao/qiaod.toml
if out=$("$root/usr/bin/qiaod" --config "$conf" config check 2>&1); then
  pass "installed qiaod config check accepts the installed conffile"
else
  fail "installed qiaod config check: $out"
fi
check "the conffile is what the installed qiaod prints as its default" \
  cmp -s "$conf" <("$root/usr/bin/qiaod" config default)

# A reinstall (an upgrade's path through the maintainer scripts) keeps an edited conffile.
echo "# edited by install_test" >>"$conf"
if rdpkg -i "$deb" >"$work/reinstall.out" 2>&1; then
  pass "reinstall over the installed package"
else
  fail "reinstall:"; sed 's/^/      /' "$work/reinstall.out"
fi
check "reinstall kept the edited conffile" grep -qx '# edited by install_test' "$conf"
check "reinstall kept /var/lib/qiao at 0700" test "$(stat -c %a "$root/var/lib/qiao")" = 700

# Remove: the files go, the conffile stays.
if rdpkg -r qiao >"$work/remove.out" 2>&1; then pass "dpkg --root -r"; else fail "dpkg --root -r:"; sed 's/^/      /' "$work/remove.out"; fi
check "after remove: status is config-files" test "$(status)" = "deinstall ok config-files"
for f in /usr/bin/qiaod /usr/bin/qiaoctl /usr/lib/systemd/system/qiaod.service /usr/share/doc/qiao/README.md; do
  check "after remove: $f is gone" test ! -e "$root$f"
done
check "after remove: the conffile is kept (with the edit)" grep -qx '# edited by install_test' "$conf"

# Purge: the conffile goes; an empty state directory goes too.
if rdpkg -P qiao >"$work/purge.out" 2>&1; then pass "dpkg --root -P"; else fail "dpkg --root -P:"; sed 's/^/      /' "$work/purge.out"; fi
check "after purge: the package is unknown to dpkg" test -z "$(status)"
check "after purge: /etc/qiao/qiaod.toml is gone" test ! -e "$conf"
check "after purge: the empty /var/lib/qiao is gone" test ! -e "$root/var/lib/qiao"

# Purge never deletes a store: install again, give qiaod's state directory a file, purge.
rdpkg -i "$deb" >"$work/install2.out" 2>&1 || { fail "second install:"; sed 's/^/      /' "$work/install2.out"; }
echo store >"$root/var/lib/qiao/qiao.db"
rdpkg -P qiao >"$work/purge2.out" 2>&1 || { fail "second purge:"; sed 's/^/      /' "$work/purge2.out"; }
check "purge keeps a /var/lib/qiao that holds a store" test -f "$root/var/lib/qiao/qiao.db"

if ((failures)); then
  echo "install_test: $failures check(s) failed"
  exit 1
fi
echo "install_test: all checks passed"
