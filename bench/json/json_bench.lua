-- bench/json/json_bench.lua - jararaca.json decode/encode speed, run inside
-- the runtime:
--
--   build/jararaca test bench/json/json_bench.lua
--   (env: JSON_BENCH_SECONDS=0.5 per round, JSON_BENCH_ROUNDS=5,
--    JSON_BENCH_ONLY=lua-pattern on "<document> <decode|encode>",
--    JSON_BENCH_ITERS=n: exactly n calls per case and no timing, for an
--    instruction count under valgrind --tool=cachegrind, which a busy
--    machine does not disturb: compare n and 0)
--
-- Three documents: a typical ~1 KB API object (mostly ASCII, one accented
-- name), a ~100 KB ASCII-heavy one (an array of records with long text
-- fields), and a ~100 KB one whose text is Cyrillic (two-byte UTF-8
-- throughout, the worst case for the ASCII fast paths). Prints the median
-- of the rounds in MB/s of JSON text and in documents/s (CPU time); asserts
-- nothing about speed, only that each document round-trips.
local json = require "jararaca.json"

local SECONDS = tonumber(os.getenv("JSON_BENCH_SECONDS")) or 0.5
local ROUNDS = tonumber(os.getenv("JSON_BENCH_ROUNDS")) or 5
local ONLY = os.getenv("JSON_BENCH_ONLY")
local ITERS = tonumber(os.getenv("JSON_BENCH_ITERS"))
local clock = os.clock
local decode, encode = json.decode, json.encode

local function typical_1k()
  return json.encode {
    id = 123456, uuid = "3f2b8c1e-9d4a-4f6b-8e2a-1c5d7f9b0a3e", name = "Zoë Ferreira-Gonçalves",
    email = "zoe.ferreira@example.com", active = true, score = 87.25, balance = -1520.5,
    created_at = "2024-03-18T09:41:27.512Z", updated_at = "2024-05-02T17:03:11.004Z",
    roles = json.array { "admin", "billing", "support" },
    address = { street = "1600 Amphitheatre Parkway", city = "Mountain View", zip = "94043",
      country = "US", geo = { lat = 37.4224764, lng = -122.0842499 } },
    tags = json.array { "priority", "beta-tester", "newsletter", "eu", "verified" },
    prefs = { theme = "dark", locale = "pt-BR", tz = "America/Sao_Paulo", digest = "weekly" },
    bio = ("Writes about distributed systems, coffee and cycling. "):rep(4),
    orders = json.array {
      { id = 1, total = 19.99, status = "shipped", items = 2 },
      { id = 2, total = 5.5, status = "pending", items = 1 },
      { id = 3, total = 120, status = "delivered", items = 7 },
    },
    note = json.null,
  }
end

local function records_100k(text)
  local rows = json.array()
  local i = 0
  local doc
  repeat
    i = i + 1
    rows[i] = { id = i, title = "record " .. i, body = text, done = i % 3 == 0, weight = i * 0.5 }
    doc = json.encode(rows)
  until #doc >= 100 * 1024
  return doc
end

local function measure(fn, arg, bytes)
  local rates = {}
  for r = 1, ROUNDS do
    local n, t0 = 0, clock()
    local deadline = t0 + SECONDS
    local t
    repeat
      for _ = 1, 16 do fn(arg) end
      n = n + 16
      t = clock()
    until t >= deadline
    rates[r] = n / (t - t0)
  end
  table.sort(rates)
  local per_s = rates[math.floor((ROUNDS + 1) / 2)]
  return per_s, per_s * bytes / 1e6
end

local function run(label, text)
  local v = assert(decode(text))
  assert.same(v, decode(assert(encode(v))))
  if ITERS then
    for op, fn in pairs { decode = decode, encode = encode } do
      if not ONLY or (label .. " " .. op):find(ONLY) then
        local arg = op == "decode" and text or v
        for _ = 1, ITERS do fn(arg) end
      end
    end
    return
  end
  if ONLY and not label:find(ONLY) then return end
  local dps, dmb = measure(decode, text, #text)
  local eps, emb = measure(encode, v, #text)
  print(("  %-22s %7d B  decode %8.0f/s %7.1f MB/s   encode %8.0f/s %7.1f MB/s"):format(
    label, #text, dps, dmb, eps, emb))
end

describe("jararaca.json speed", function()
  it("decodes and encodes a 1 KB and two 100 KB documents", function()
    print()
    run("typical 1 KB", typical_1k())
    run("ASCII-heavy 100 KB", records_100k(("The quick brown fox jumps over the lazy dog. "):rep(20)))
    run("Cyrillic 100 KB", records_100k(("Съешь же ещё этих мягких французских булок. "):rep(20)))
  end)
end)
