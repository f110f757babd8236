-- 025: clock skew. Agents' clocks are not trusted: an event whose event time is further ahead
-- of its arrival in Kafka than CLAWSTREAM_MAX_CLOCK_SKEW_S is refused by the windows (it moves
-- no watermark and counts in no window) and lands in `late_events` with reason 'clock_skew'.
-- * late_events.reason: 'late' (missed some closed windows) | 'clock_skew' (refused);
--   rows written before are all 'late'.
-- * late_events.arrival_time: the arrival (broker timestamp) the event was judged against;
--   event_time - arrival_time is how far the agent's clock was ahead.
-- * window_aggregates.clock_skew_events: refused events counted in the window that was open
--   at their arrival (what the AgentClockSkew alert rule reads).
ALTER TABLE late_events ADD COLUMN IF NOT EXISTS reason LowCardinality(String) DEFAULT 'late';
ALTER TABLE late_events ADD COLUMN IF NOT EXISTS arrival_time Nullable(DateTime64(3, 'UTC'));
ALTER TABLE window_aggregates ADD COLUMN IF NOT EXISTS clock_skew_events UInt64 DEFAULT 0;
