-- 023: `plan_progress`, steps done and failed per plan, from the raw tables: a step is done
-- when its action has a success outcome, failed when its outcome is failure, timeout or
-- lost (lost = the correlator's synthetic outcome for an action that never got one) and no
-- success. A view, so it is always current; read with final=1 like the raw tables. (The
-- worker also emits plan progress as it happens on the internal topic
-- `<app id>-plan-progress`.)
CREATE VIEW IF NOT EXISTS plan_progress AS
SELECT
    toString(p.event_id) AS plan_id,
    p.agent_id AS agent_id,
    p.session_id AS session_id,
    p.app AS app,
    p.goal AS goal,
    p.event_time AS planned_at,
    p.step_count AS steps_total,
    length(arrayDistinct(groupArrayIf(s.step_index, s.status = 'success'))) AS steps_done,
    length(arrayDistinct(arrayFilter(
        x -> NOT has(groupArrayIf(s.step_index, s.status = 'success'), x),
        groupArrayIf(s.step_index, s.status IN ('failure', 'timeout', 'lost'))
    ))) AS steps_failed,
    steps_done + steps_failed >= steps_total AND steps_total > 0 AS complete,
    maxIf(s.outcome_time, s.status != '') AS last_outcome_at
FROM plans AS p
LEFT JOIN
(
    SELECT assumeNotNull(a.plan_id) AS plan_id, assumeNotNull(a.step_index) AS step_index,
           o.status AS status, o.event_time AS outcome_time
    FROM actions AS a
    INNER JOIN outcomes AS o ON o.action_id = toString(a.event_id)
    WHERE a.plan_id IS NOT NULL AND a.step_index IS NOT NULL
) AS s ON s.plan_id = toString(p.event_id)
GROUP BY plan_id, agent_id, session_id, app, goal, planned_at, steps_total;
