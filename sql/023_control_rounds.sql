-- Rounds that one control instance does for all (issue 12): each interval goes to the instance
-- whose claim moves `next_at` on first; any instance claims the next one, so a stopped instance's
-- rounds are taken over within an interval, with no leader to elect. `runs` and `holder` say who
-- did how many (docs/operations.md, "Several control instances").
CREATE TABLE control_rounds (
  name text PRIMARY KEY,
  next_at timestamptz NOT NULL,
  runs bigint NOT NULL DEFAULT 0,
  holder text NOT NULL
);
