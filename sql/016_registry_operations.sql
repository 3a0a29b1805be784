-- Running a network, not only building one (issue 13): objects that end are retired (never
-- deleted: their history stays), a terminal can be out of service for maintenance, terminals have
-- a place and regions a capacity.

ALTER TABLE regions ADD COLUMN retired_at timestamptz;
-- kW the site can supply: the insights set peak load against it. NULL: not known.
ALTER TABLE regions ADD COLUMN capacity_kw numeric(12, 3) CHECK (capacity_kw > 0);
ALTER TABLE franchisees ADD COLUMN retired_at timestamptz;
ALTER TABLE gateways ADD COLUMN retired_at timestamptz;
ALTER TABLE users ADD COLUMN retired_at timestamptz;

ALTER TABLE terminals ADD COLUMN retired_at timestamptz;
-- Out of service with a reason and an expected return (NULL: not known); NULL reason: in service.
ALTER TABLE terminals ADD COLUMN maintenance_reason text;
ALTER TABLE terminals ADD COLUMN maintenance_since timestamptz;
ALTER TABLE terminals ADD COLUMN maintenance_until timestamptz;
ALTER TABLE terminals ADD COLUMN latitude numeric(9, 6) CHECK (latitude BETWEEN -90 AND 90);
ALTER TABLE terminals ADD COLUMN longitude numeric(9, 6) CHECK (longitude BETWEEN -180 AND 180);
ALTER TABLE terminals ADD COLUMN address text;
CREATE INDEX terminals_gateway ON terminals (gateway_id);

-- The admin lists across the network, newest first.
CREATE INDEX sessions_created ON sessions (created_at DESC, session_id DESC);
CREATE INDEX faults_opened ON faults (opened_at DESC, fault_id DESC);
