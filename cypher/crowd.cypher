// The crowd's co-engagement, materialized: (:Product)-[:BOUGHT_WITH {sessions, lift, updated_at}]->(:Product),
// each product's companions in sessions as graph/crowd.py computes them (the same rows the
// embedded store writes). A refresh writes every row stamped $at, then deletes the rows older
// than $at, then records what it was computed from: a request meanwhile reads each product's
// companions either as before or as after.

// name: write_bought_with
UNWIND $rows AS row
MATCH (a:Product {id: row.product_id})
MATCH (b:Product {id: row.other_id})
MERGE (a)-[r:BOUGHT_WITH]->(b)
SET r.sessions = row.sessions, r.lift = row.lift, r.updated_at = $at;

// name: delete_stale_bought_with
MATCH ()-[r:BOUGHT_WITH]->()
WHERE r.updated_at < $at
WITH r
LIMIT $batch
DELETE r
RETURN count(*) AS deleted;

// name: set_bought_with_state
MERGE (state:CrowdRefresh {id: 'bought_with'})
SET state.events = $events, state.changes = $changes, state.at = $at;

// name: bought_with_state
OPTIONAL MATCH (state:CrowdRefresh {id: 'bought_with'})
RETURN state.events AS events, state.changes AS changes, state.at AS at;

// Every BOUGHT_WITH, $products products at a time after the product id $after.
// name: bought_with_page
MATCH (a:Product)
WHERE a.id > $after AND EXISTS { (a)-[:BOUGHT_WITH]->() }
WITH a
ORDER BY a.id
LIMIT $products
MATCH (a)-[r:BOUGHT_WITH]->(b:Product)
RETURN a.id AS product_id, b.id AS other_id, r.sessions AS sessions, r.lift AS lift
ORDER BY product_id, sessions DESC, other_id;

// The lease on recomputing BOUGHT_WITH: one process at a time. The node is locked first (the
// manual's lost-update pattern) so that two claimants cannot both read it free.
// name: claim_crowd_refresh
MERGE (state:CrowdRefresh {id: 'bought_with'})
SET state.claiming = true
WITH state, coalesce(state.running_until, 0.0) < $now AS free
SET state.running_until = CASE WHEN free THEN $until ELSE state.running_until END
REMOVE state.claiming
RETURN free AS claimed;

// name: release_crowd_refresh
MATCH (state:CrowdRefresh {id: 'bought_with'})
REMOVE state.running_until;

// Every interaction, $limit at a time after ($after_ts, $after) in (time, event id) order, as
// the co-engagement counts it (graph/crowd.py leaves dismissals out).
// name: engagements_page
MATCH (s:Session)-[i:INTERACTED]->(p:Product)
WHERE i.ts >= $after_ts AND (i.ts > $after_ts OR i.event_id > $after)
RETURN i.event_id AS id, i.ts AS ts, i.type AS type, s.id AS session_id, p.id AS product_id
ORDER BY ts, id
LIMIT $limit;
