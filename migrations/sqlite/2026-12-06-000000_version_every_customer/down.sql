-- The versions given stay: they are valid versions of customers with rows.
SELECT 1;
