-- A Lua migration: a function(session) run in the migration's transaction.
return function(session)
  assert(session:execute("INSERT INTO tasks (name) VALUES (?)", { "seeded by a Lua migration" }))
end
