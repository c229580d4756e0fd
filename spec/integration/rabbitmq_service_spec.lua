-- The tests' RabbitMQ (spec/support/rabbitmq.lua over
-- spec/services/rabbitmq.sh): one node for the run, on loopback, that
-- takes messages and that rabbitmqctl reaches.
local rabbitmq = require "spec.support.rabbitmq"

describe("the test RabbitMQ", function()
  it("shares one node for the run", function()
    local url = rabbitmq.url()
    assert.matches("^amqp://guest:guest@127%.0%.0%.1:%d+$", url)
    assert.equal(url, rabbitmq.url())
  end)

  it("stores a persistent message and gives it back", function()
    local q = "jrspec.service." .. tostring(os.time()) .. "." .. tostring(math.random(1e9))
    assert.equal(q, rabbitmq.tool("amqp-declare-queue", "-d", "-q", q))
    assert(rabbitmq.tool("amqp-publish", "-p", "-r", q, "-b", "hello"))
    local listed = assert(rabbitmq.ctl("list_queues", "name", "messages"))
    assert.matches(q:gsub("%p", "%%%0") .. "%s+1", listed)
    assert.equal("hello", rabbitmq.tool("amqp-get", "-q", q))
    assert(rabbitmq.tool("amqp-delete-queue", "-q", q))
  end)

  it("reports rabbitmqctl failures as nil, err", function()
    local ok, err = rabbitmq.ctl("no_such_command")
    assert.is_nil(ok)
    assert.matches("rabbitmqctl no_such_command", err)
  end)
end)
