DROP TABLE fleet_days_pending;
DROP TABLE fleet_days;
