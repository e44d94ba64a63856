DROP TABLE customer_versions;
