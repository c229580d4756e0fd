-- The tests' Redis (spec/support/redis.lua over spec/services/redis.sh):
-- the shared server answers, and a private one stops, restarts on the same
-- port with the same options, and goes away.
local redis = require "spec.support.redis"

describe("the test Redis", function()
  it("shares one server for the run", function()
    local url = redis.url()
    assert.matches("^redis://127%.0%.0%.1:%d+$", url)
    assert.equal(url, redis.url())
    assert.equal("PONG", redis.cli("PING"))
    assert.equal("OK", redis.cli("SET", "jr:spec:k", "v"))
    assert.equal("v", redis.cli("GET", "jr:spec:k"))
    assert.equal("1", redis.cli("DEL", "jr:spec:k"))
  end)

  it("gives a spec a private server it can stop and restart", function()
    local own = redis.private { "--requirepass", "s3cret" }
    local url, port = own.url, own.port
    assert.are_not.equal(redis.url(), url)
    local ok, err = own:cli("PING")
    assert.is_nil(ok)
    assert.matches("NOAUTH", err)
    local authed = "redis://:s3cret@127.0.0.1:" .. port
    assert.equal("PONG", redis.cli_at(authed, "PING"))
    assert.equal("OK", redis.cli_at(authed, "SET", "k", "v"))
    own:stop()
    assert.is_nil(redis.cli_at(authed, "PING"))
    own:restart()
    assert.equal(port, own.port)
    -- same options (the password), and empty: no persistence
    assert.equal("PONG", redis.cli_at(authed, "PING"))
    assert.equal("", redis.cli_at(authed, "GET", "k"))
    own:close()
    assert.is_nil(redis.cli_at(authed, "PING"))
  end)
end)
