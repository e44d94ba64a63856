ALTER TABLE daily_stats RESET (toast_tuple_target);
