# Install-time step (install(SCRIPT) from packaging/CMakeLists.txt), so that these follow the
# prefix given when installing (`cmake --install --prefix`, CPack's /usr) rather than the one
# the build was configured with:
# - the systemd unit, its ExecStart naming <prefix>/bin/qiaod;
# - /etc/qiao/qiaod.toml, the path qiaod reads by default whatever the prefix. A plain install
#   onto a host (no DESTDIR) keeps an operator's existing file; a staged install (DESTDIR:
#   CPack) always writes it.
# Set before: qiao_unit_source, qiao_default_config, qiao_work_dir (for the unit as installed).
file(READ "${qiao_unit_source}" unit)
string(REGEX REPLACE "\nExecStart=[^ \n]*/qiaod " "\nExecStart=${CMAKE_INSTALL_PREFIX}/bin/qiaod "
       unit "${unit}")
if(NOT unit MATCHES "\nExecStart=${CMAKE_INSTALL_PREFIX}/bin/qiaod ")
  message(FATAL_ERROR "${qiao_unit_source}: no `ExecStart=<dir>/qiaod ...` line")
endif()
file(WRITE "${qiao_work_dir}/unit/qiaod.service" "${unit}")
# file(INSTALL) puts $DESTDIR in front of these absolute destinations.
file(INSTALL "${qiao_work_dir}/unit/qiaod.service"
     DESTINATION "${CMAKE_INSTALL_PREFIX}/lib/systemd/system"
     PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)

if("$ENV{DESTDIR}" STREQUAL "" AND EXISTS "/etc/qiao/qiaod.toml")
  message(STATUS "Keeping: /etc/qiao/qiaod.toml (an existing configuration)")
else()
  file(INSTALL "${qiao_default_config}" DESTINATION /etc/qiao
       PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
endif()
