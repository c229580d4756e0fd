-- Not a spec of the suite (no _spec suffix): spec/integration/cli_spec.lua
-- runs it as `jararaca test <this file>`: a spec that fails before stopping
-- the process it started. Its pid goes to the file named by PID_FILE.
local process = require "jararaca.core.process"

describe("a spec that forgets its process", function()
  it("starts one and fails", function()
    local p = assert(process.spawn { "/bin/sh", "-c", "exec sleep 300" })
    local f = assert(io.open(assert(os.getenv("PID_FILE")), "w"))
    f:write(tostring(p:pid()))
    f:close()
    assert.equal(1, 2)
  end)
end)
