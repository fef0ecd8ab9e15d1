# Layering, checked by the build. Each library owns the headers of its folder (a sub-folder
# with a library of its own belongs to that one) and may include the headers of the libraries
# it links, directly or through their links, and nothing else: an include of a library that is
# not linked fails the build with the file, the header and the library named. DESIGN.md's rule
# (base <- firmware, images, storage, network <- node, cluster) is thereby the link graph,
# written once in the CMakeLists files, and no longer kept by habit.
#
# qiao_library registers its library; qiao_layer registers the other targets (an executable
# checks its sources, a library its sources and the headers of its folder).

# qiao_layer(TARGET [DIR folder]): DIR makes TARGET the owner of that folder's headers.
function(qiao_layer target)
  cmake_parse_arguments(L "" "DIR" "" ${ARGN})
  set_property(GLOBAL APPEND PROPERTY QIAO_LAYERED ${target})
  if(L_DIR)
    file(RELATIVE_PATH rel ${CMAKE_SOURCE_DIR} ${L_DIR})
    set_property(TARGET ${target} PROPERTY QIAO_DIR ${rel})
    set_property(GLOBAL APPEND PROPERTY QIAO_OWNERS "${rel}|${target}")
  endif()
endfunction()

# The Qiao libraries TARGET links, directly or through what they link.
function(qiao_link_closure target out)
  get_property(layered GLOBAL PROPERTY QIAO_LAYERED)
  set(seen)
  set(todo ${target})
  while(todo)
    list(POP_FRONT todo t)
    get_target_property(links ${t} LINK_LIBRARIES)
    if(NOT links)
      continue()
    endif()
    foreach(l ${links})
      if(l IN_LIST layered AND NOT l IN_LIST seen)
        list(APPEND seen ${l})
        list(APPEND todo ${l})
      endif()
    endforeach()
  endwhile()
  set(${out} ${seen} PARENT_SCOPE)
endfunction()

# Called once, after every target exists: one check per registered target, run before it
# compiles and again whenever one of its files changes.
function(qiao_check_layering)
  get_property(layered GLOBAL PROPERTY QIAO_LAYERED)
  get_property(owners GLOBAL PROPERTY QIAO_OWNERS)
  foreach(t ${layered})
    get_target_property(srcs ${t} SOURCES)
    get_target_property(src_dir ${t} SOURCE_DIR)
    set(files)
    foreach(s ${srcs})
      cmake_path(ABSOLUTE_PATH s BASE_DIRECTORY ${src_dir} OUTPUT_VARIABLE abs)
      if(NOT abs MATCHES "/cmake/empty\\.cc$")
        list(APPEND files ${abs})
      endif()
    endforeach()
    get_target_property(dir ${t} QIAO_DIR)
    if(dir)
      file(GLOB headers CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/${dir}/*.h)
      list(APPEND files ${headers})
    endif()
    qiao_link_closure(${t} allowed)
    list(APPEND allowed ${t})
    set(config ${CMAKE_BINARY_DIR}/layering/${t}.cmake)
    set(stamp ${CMAKE_BINARY_DIR}/layering/${t}.stamp)
    file(WRITE ${config}.new "set(TARGET \"${t}\")\nset(FILES \"${files}\")\n"
         "set(ALLOWED \"${allowed}\")\nset(OWNERS \"${owners}\")\n"
         "set(SOURCE_DIR \"${CMAKE_SOURCE_DIR}\")\n")
    file(COPY_FILE ${config}.new ${config} ONLY_IF_DIFFERENT)
    add_custom_command(OUTPUT ${stamp}
      COMMAND ${CMAKE_COMMAND} -DCONFIG=${config} -DSTAMP=${stamp}
              -P ${CMAKE_SOURCE_DIR}/cmake/CheckIncludes.cmake
      DEPENDS ${files} ${config} ${CMAKE_SOURCE_DIR}/cmake/CheckIncludes.cmake
      COMMENT "Checking the includes of ${t} against what it links" VERBATIM)
    add_custom_target(${t}_layering DEPENDS ${stamp})
    add_dependencies(${t} ${t}_layering)
  endforeach()
endfunction()
