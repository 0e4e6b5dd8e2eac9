// What exploration earned (recommend/exploration.py): one (:ExplorationState) node holding the
// counts per arm as JSON text and `through`, the time through which impressions were counted.

// name: exploration_state
MATCH (s:ExplorationState {id: 'exploration'})
RETURN s.state AS state;

// Saved only if no other process saved since `expected` was read (compare and set): the node is
// written first (the manual's lost-update pattern), so two savers cannot both find it unchanged.
// name: save_exploration_state
MERGE (s:ExplorationState {id: 'exploration'})
SET s.saving = true
WITH s, coalesce(s.through, -1.0) = coalesce($expected, -1.0) AS free
SET s.state = CASE WHEN free THEN $state ELSE s.state END,
    s.through = CASE WHEN free THEN $through ELSE s.through END
REMOVE s.saving
RETURN free AS saved;
