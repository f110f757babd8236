-- 024: `window_aggregates.late_events`: events that arrived while the window was current but
-- after one of their own windows had closed (each late event is counted once per window
-- family, in the windows holding the partition's frontier; the events themselves are in
-- `late_events`, 022). What the `LateEvents` alert rule reads. 0 for rows written before.
ALTER TABLE window_aggregates ADD COLUMN IF NOT EXISTS late_events UInt64 DEFAULT 0;
