-- Local rockspec: `luarocks --lua-version=5.1 make rocks/jararaca-scm-1.rockspec`
-- builds the jararaca binary with CMake and installs it with its Lua files.
rockspec_format = "3.0"
package = "jararaca"
version = "scm-1"
source = { url = "git+file://." }
description = {
  summary = "Microservices in Lua on a C core (libuv, llhttp, LuaJIT)",
  detailed = [[
    One binary serves Lua controllers, providers and interceptors over
    HTTP/1.1 with coroutine-based waits on a libuv loop.
  ]],
  license = "MIT",
}
dependencies = { "lua == 5.1" }
build = {
  type = "cmake",
  variables = {
    CMAKE_INSTALL_PREFIX = "$(PREFIX)",
    CMAKE_BUILD_TYPE = "Release",
  },
}
