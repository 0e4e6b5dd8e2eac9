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

// The looks' category complements, materialized: (:Category)-[:GOES_WITH {looks, lift, updated_at}]->(:Category),
// as graph/crowd.py's goes_with computes them from every look's items' leaf categories. They are
// rewritten in one transaction after every write that changes looks, which first locks the
// node below (the manual's lost-update pattern): each rewrite reads every look committed
// before it, so the last one is never stale, and a reader sees the rows before it or after.
// name: lock_goes_with
MERGE (state:CrowdRefresh {id: 'goes_with'})
SET state.at = $at;

// name: look_categories
MATCH (look:Look)-[:INCLUDES]->(p:Product)
OPTIONAL MATCH (p)-[:IN_CATEGORY]->(c:Category)
RETURN look.id AS look_id, collect(c.id) AS categories
ORDER BY look_id;

// A few rows a category: all of them deleted, then written, in the one transaction.
// name: delete_goes_with
MATCH ()-[r:GOES_WITH]->()
DELETE r;

// name: write_goes_with
UNWIND $rows AS row
MATCH (a:Category {id: row.category_id})
MATCH (b:Category {id: row.other_id})
CREATE (a)-[:GOES_WITH {looks: row.looks, lift: row.lift, updated_at: $at}]->(b);

// Every GOES_WITH, by category, each category's partners most looks first.
// name: goes_with_rows
MATCH (a:Category)-[r:GOES_WITH]->(b:Category)
RETURN a.id AS category_id, b.id AS other_id, r.looks AS looks, r.lift AS lift
ORDER BY category_id, looks DESC, other_id;

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
