# Build-time step (cmake -P): writes the packaged /etc/qiao/qiaod.toml as the qiaod being
# packaged prints it (`qiaod config default`), so the file always matches that binary's
# defaults. A cross-built qiaod runs under its emulator (qemu-aarch64-static -L SYSROOT).
#   -DQIAOD=path -DEMULATOR="a|b|c" (may be empty) -DOUT=path
if(NOT QIAOD OR NOT OUT)
  message(FATAL_ERROR "default-config.cmake: QIAOD and OUT are required")
endif()
string(REPLACE "|" ";" emulator "${EMULATOR}")
if(CROSSCOMPILING AND NOT emulator)
  message(FATAL_ERROR "qiaod is cross-built and no emulator was found to run it "
                      "(qemu-aarch64-static: scripts/install-deps): cannot write qiaod.toml")
endif()
execute_process(COMMAND ${emulator} "${QIAOD}" config default
                OUTPUT_FILE "${OUT}.tmp" RESULT_VARIABLE rc ERROR_VARIABLE err)
file(SIZE "${OUT}.tmp" size)
if(NOT rc EQUAL 0 OR size EQUAL 0)
  file(REMOVE "${OUT}.tmp")
  message(FATAL_ERROR "`${emulator} ${QIAOD} config default` failed (${rc}): ${err}")
endif()
file(RENAME "${OUT}.tmp" "${OUT}")
