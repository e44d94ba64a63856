-- Sets customers' versions. The marker after VALUES is replaced by one group of two parameters
-- per customer.
INSERT INTO customer_versions (customer_id, version) VALUES {rows}
ON DUPLICATE KEY UPDATE version = VALUES(version)
