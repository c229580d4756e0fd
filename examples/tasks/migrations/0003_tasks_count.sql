-- The total of the list (its unpaginated_total when no filter applies),
-- kept by triggers in the same transactions as the rows: counting 100,000
-- rows takes milliseconds, and a list read after every insert would count
-- again each time. persistence.Query reads it through its count_sql option.
CREATE TABLE tasks_count (n INTEGER NOT NULL);
INSERT INTO tasks_count SELECT count(*) FROM tasks;
CREATE TRIGGER tasks_count_insert AFTER INSERT ON tasks BEGIN UPDATE tasks_count SET n = n + 1; END;
CREATE TRIGGER tasks_count_delete AFTER DELETE ON tasks BEGIN UPDATE tasks_count SET n = n - 1; END;
