# qiao_check_headers(TARGET DIR...): one object library that compiles every header under the
# given folders on its own, so a header that forgets an include fails the build (as Seastar's
# cmake/CheckHeaders.cmake does). Built by `ninja qiao_header_check`, and by default.
function(qiao_check_headers target)
  set(sources)
  foreach(dir ${ARGN})
    file(GLOB_RECURSE headers RELATIVE ${CMAKE_SOURCE_DIR} CONFIGURE_DEPENDS
         ${CMAKE_SOURCE_DIR}/${dir}/*.h)
    foreach(h ${headers})
      string(MAKE_C_IDENTIFIER "${h}" id)
      set(src ${CMAKE_BINARY_DIR}/header_check/${id}.cc)
      if(NOT EXISTS ${src})
        file(WRITE ${src} "#include \"${h}\"\n")
      endif()
      list(APPEND sources ${src})
    endforeach()
  endforeach()
  if(sources)
    add_library(${target} OBJECT ${sources})
    target_include_directories(${target} PRIVATE ${CMAKE_SOURCE_DIR})
    target_link_libraries(${target} PRIVATE Boost::headers nlohmann_json::nlohmann_json
                          OpenSSL::SSL PkgConfig::LIBVIRT LibXml2::LibXml2)
  endif()
endfunction()
