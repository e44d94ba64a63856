-- Stores a source's new position and its lease.
INSERT INTO source_offsets (source, fingerprint, byte_offset, line_count, owner, lease_until)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (source) DO UPDATE SET
    fingerprint = excluded.fingerprint, byte_offset = excluded.byte_offset,
    line_count = excluded.line_count, owner = excluded.owner, lease_until = excluded.lease_until
