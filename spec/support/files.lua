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

--- A new empty temporary directory, and a function that names fresh
--- files in it ("<dir>/<prefix><n><suffix>"). Remove it with remove_dir.
function M.temp_dir(prefix, suffix)
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p '" .. dir .. "'") == 0, "cannot create " .. dir)
  local n = 0
  return dir, function()
    n = n + 1
    return ("%s/%s%d%s"):format(dir, prefix or "file", n, suffix or "")
  end
end

--- Remove a directory made by temp_dir, with what is in it.
function M.remove_dir(dir)
  os.execute("rm -rf '" .. dir .. "'")
end

return M
