-- Sets the version of every customer of the array $1 to $2: two parameters however many
-- customers.
INSERT INTO customer_versions (customer_id, version)
SELECT customer_id, $2::int8 FROM unnest($1::text[]) AS customer_id
ON CONFLICT (customer_id) DO UPDATE SET version = excluded.version
