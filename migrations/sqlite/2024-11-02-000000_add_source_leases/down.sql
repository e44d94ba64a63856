ALTER TABLE source_offsets DROP COLUMN lease_until;
ALTER TABLE source_offsets DROP COLUMN owner;
