-- The telemetry writers' register check, shared by every writer instance (issue 12): each
-- terminal's newest stored reading, locked row by row for the length of a batch's transaction so
-- that two writers never check a terminal's readings against marks the other is moving. A terminal
-- gets its row (seeded from its newest stored reading, or empty) the first time a writer sees it.
-- Milliseconds and mWh, as the writer compares them. Updated once per terminal and batch: room
-- left on each page for HOT updates.
CREATE TABLE reading_marks (
  terminal_id text PRIMARY KEY,
  ts bigint,
  seq bigint,
  energy_mwh bigint
) WITH (fillfactor = 50);
