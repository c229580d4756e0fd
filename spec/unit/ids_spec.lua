local j = require "jararaca"
describe("ids and time", function()
it("uuid4 is random, version 4, variant 10; utcnow is RFC 3339 with ms", function()
  local seen = {}
  for i = 1, 2000 do
    local u = j.uuid4()
    assert.truthy(u:match("^%x%x%x%x%x%x%x%x%-%x%x%x%x%-4%x%x%x%-[89ab]%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"), u)
    assert.is_nil(seen[u]); seen[u] = true
  end

  assert.truthy(j.utcnow():match("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$"))
end)
end)
