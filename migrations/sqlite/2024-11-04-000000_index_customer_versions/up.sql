-- Every commit now sets the versions of the customers it touched to one new number, above every
-- stored version (writers are serialized), so "what changed since version N" is one index range.
CREATE INDEX IF NOT EXISTS customer_versions_by_version ON customer_versions (version);
