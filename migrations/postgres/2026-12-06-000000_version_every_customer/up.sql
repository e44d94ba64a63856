-- Every customer with rows has a version: the API answers 404 for a customer without one and
-- never reads its rows. Rows written before customer_versions existed get one here, above every
-- version stored, so the API's caches read them like any new commit.
INSERT INTO customer_versions (customer_id, version)
SELECT customer_id, (SELECT COALESCE(MAX(version), 0) + 1 FROM customer_versions)
FROM daily_stats
WHERE customer_id NOT IN (SELECT customer_id FROM customer_versions)
GROUP BY customer_id;
