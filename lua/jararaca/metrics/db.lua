-- jararaca.metrics.db: SQLite's built-in metrics, per database name.
--
--   jararaca_db_statements_total{database}        counter (statements run, any outcome)
--   jararaca_db_commit_batch_size{database}       histogram (transactions per group commit)
--   jararaca_db_writer_wait_seconds{database}     histogram (time a write transaction queued for the writer)
--
-- Hooks (jararaca.db.tx, jararaca.db.writer) call in only when M.on.
local M = { on = false }

local statements, batch, wait

M.BATCH_BUCKETS = { 1, 2, 4, 8, 16, 32, 64, 128, 256 }
M.WAIT_BUCKETS = { 0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5 }

function M.enable(reg)
  statements = reg:counter("jararaca_db_statements_total", "SQL statements run (any outcome), by database.",
    { "database" })
  batch = reg:histogram("jararaca_db_commit_batch_size",
    "Write transactions committed by one SQLite COMMIT (group commit), by database.", { "database" },
    M.BATCH_BUCKETS)
  wait = reg:histogram("jararaca_db_writer_wait_seconds",
    "Time a write transaction waited for its turn at the writer (0 when it was free), by database.",
    { "database" }, M.WAIT_BUCKETS)
  M.on = true
end

function M.statement(database)
  local s = statements:with(database)
  s.value = s.value + 1
end

function M.committed(database, n) batch:with(database):observe(n) end

function M.waited(database, seconds) wait:with(database):observe(seconds) end

return M
