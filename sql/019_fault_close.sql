-- A fault closed by hand by its franchisee (a scan-failure report that was a user's mistake):
-- who closed it and why. The status is `resolved`, as for a fault that cleared by itself.
ALTER TABLE faults ADD COLUMN closed_by text;
ALTER TABLE faults ADD COLUMN close_note text;
