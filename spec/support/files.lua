-- spec/support/files.lua: small file helpers for the specs.
local M = {}

--- The size of the file at path in bytes; 0 when it does not exist.
function M.size_of(path)
  local f = io.open(path, "rb")
  if not f then return 0 end
  local n = f:seek("end")
  f:close()
  return n
end

return M
