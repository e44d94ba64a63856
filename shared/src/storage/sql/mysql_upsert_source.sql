-- Stores a source's new position and its lease.
INSERT INTO source_offsets (source, fingerprint, byte_offset, line_count, owner, lease_until)
VALUES (?, ?, ?, ?, ?, ?)
ON DUPLICATE KEY UPDATE
    fingerprint = VALUES(fingerprint), byte_offset = VALUES(byte_offset),
    line_count = VALUES(line_count), owner = VALUES(owner), lease_until = VALUES(lease_until)
