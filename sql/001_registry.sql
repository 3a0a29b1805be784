-- Registry: who and what the platform knows. Times are timestamptz; the wire's epoch
-- milliseconds convert exactly through vv_ms_to_ts / vv_ts_to_ms (no float division).

CREATE FUNCTION vv_ms_to_ts(ms bigint) RETURNS timestamptz
  LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
  AS $$ SELECT 'epoch'::timestamptz + ms * interval '1 millisecond' $$;

CREATE FUNCTION vv_ts_to_ms(t timestamptz) RETURNS bigint
  LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
  AS $$ SELECT (extract(epoch FROM t) * 1000)::bigint $$;

CREATE TABLE regions (
  region_id   text PRIMARY KEY,
  name        text NOT NULL,
  timezone    text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE franchisees (
  franchisee_id text PRIMARY KEY,
  name          text NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE gateways (
  gateway_id  text PRIMARY KEY,
  region_id   text NOT NULL REFERENCES regions,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE terminals (
  terminal_id   text PRIMARY KEY,
  qr            text NOT NULL UNIQUE,
  gateway_id    text NOT NULL REFERENCES gateways,
  region_id     text NOT NULL REFERENCES regions,
  franchisee_id text NOT NULL REFERENCES franchisees,
  profile       jsonb NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX terminals_franchisee ON terminals (franchisee_id);
CREATE INDEX terminals_region ON terminals (region_id);

-- A tariff is never edited: each change is a new version in force from effective_from.
CREATE TABLE tariff_versions (
  region_id      text NOT NULL REFERENCES regions,
  version        integer NOT NULL,
  effective_from timestamptz NOT NULL,
  periods        jsonb NOT NULL,
  created_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (region_id, version)
);
CREATE INDEX tariff_versions_in_force ON tariff_versions (region_id, effective_from DESC, version DESC);
