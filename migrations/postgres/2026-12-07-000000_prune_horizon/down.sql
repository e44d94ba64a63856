DROP TABLE IF EXISTS prune_horizon;
