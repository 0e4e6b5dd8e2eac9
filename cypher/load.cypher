// Batched, idempotent writes: each statement takes a list of rows as $rows (UNWIND ... MERGE),
// so re-running a load changes nothing and an interrupted load is completed by running it again.

// name: upsert_categories
UNWIND $rows AS row
MERGE (c:Category {id: row.id})
SET c.name = row.name
WITH c, row
OPTIONAL MATCH (c)-[old:CHILD_OF]->()
DELETE old
WITH DISTINCT c, row
WHERE row.parent_id IS NOT NULL
MERGE (parent:Category {id: row.parent_id})
MERGE (c)-[:CHILD_OF]->(parent);

// A product's category and attributes are replaced, not accumulated.
// name: upsert_products
UNWIND $rows AS row
MERGE (p:Product {id: row.id})
SET p.name = row.name, p.price = row.price, p.availability = row.availability, p.unavailable_in = row.unavailable_in
WITH p, row
OPTIONAL MATCH (p)-[old:IN_CATEGORY|HAS_ATTRIBUTE]->()
DELETE old
WITH DISTINCT p, row
FOREACH (categoryId IN CASE WHEN row.category_id IS NULL THEN [] ELSE [row.category_id] END |
  MERGE (c:Category {id: categoryId})
  MERGE (p)-[:IN_CATEGORY]->(c)
)
FOREACH (attribute IN row.attributes |
  MERGE (a:Attribute {key: attribute.key})
    ON CREATE SET a.kind = attribute.kind, a.value = attribute.value
  MERGE (p)-[:HAS_ATTRIBUTE]->(a)
);

// name: upsert_shoppers
UNWIND $rows AS row
MERGE (s:Shopper {id: row.id})
SET s.home_location = coalesce(row.home_location, s.home_location);

// Which of the delivered event ids are stored already: a replay changes nothing.
// name: stored_event_ids
UNWIND $ids AS eventId
MATCH ()-[seen:INTERACTED {event_id: eventId}]->()
RETURN DISTINCT seen.event_id AS id;

// Lock each session that new events name (made on first sight), as the manual's lost-update
// pattern does (a write to a dummy property), and read its owner after the lock: of two
// transactions claiming one new session, the second waits and then sees the first's owner.
// `stored`: the session held events before (so a missing owner means an anonymous visitor).
// name: claim_sessions
UNWIND $session_ids AS sessionId
MERGE (s:Session {id: sessionId})
SET s._LOCK_ = true
REMOVE s._LOCK_
WITH s
OPTIONAL MATCH (owner:Shopper)-[:HAD_SESSION]->(s)
RETURN s.id AS session_id, owner.id AS owner, EXISTS { (s)-[:INTERACTED]->() } AS stored;

// Events already stored (by event_id) are skipped, and so are repeats of an id within the batch
// (the first is kept); the rest fill their session (claimed above, in the same transaction)
// and create their shopper on first sight. A session's location is where it started; it is
// a gift session if any event is.
// name: append_events
UNWIND $rows AS delivered
WITH delivered.event_id AS eventId, collect(delivered)[0] AS row
OPTIONAL MATCH ()-[seen:INTERACTED {event_id: eventId}]->()
WITH row WHERE seen IS NULL
MATCH (p:Product {id: row.product_id})
MERGE (s:Session {id: row.session_id})
WITH row, p, s, s.started_at IS NULL OR row.ts < s.started_at AS earlier
SET s.location = CASE WHEN earlier THEN row.location ELSE s.location END,
    s.started_at = CASE WHEN earlier THEN row.ts ELSE s.started_at END,
    s.gift = coalesce(s.gift, false) OR row.gift
FOREACH (shopperId IN CASE WHEN row.shopper_id IS NULL THEN [] ELSE [row.shopper_id] END |
  MERGE (u:Shopper {id: shopperId})
  MERGE (u)-[:HAD_SESSION]->(s)
)
CREATE (s)-[:INTERACTED {event_id: row.event_id, type: row.type, ts: row.ts,
                         location: row.location, gift: row.gift}]->(p)
RETURN count(*) AS new_events;

// A create that must be new: MERGE under the uniqueness constraint makes one of two
// concurrent creators the creator; `created` is false for an id already taken.
// name: claim_product_id
MERGE (p:Product {id: $id})
  ON CREATE SET p._NEW_ = true
WITH p, p._NEW_ IS NOT NULL AS created
REMOVE p._NEW_
RETURN created;

// name: claim_look_id
MERGE (l:Look {id: $id})
  ON CREATE SET l._NEW_ = true
WITH l, l._NEW_ IS NOT NULL AS created
REMOVE l._NEW_
RETURN created;

// A look's items (in order) and its session are replaced, not accumulated.
// name: upsert_looks
UNWIND $rows AS row
MERGE (l:Look {id: row.id})
SET l.name = row.name, l.mined = row.mined, l.support = row.support, l.lift = row.lift
WITH l, row
OPTIONAL MATCH (l)-[old:INCLUDES|FOUND_IN]->()
DELETE old
WITH DISTINCT l, row
FOREACH (sessionId IN CASE WHEN row.session_id IS NULL THEN [] ELSE [row.session_id] END |
  MERGE (s:Session {id: sessionId})
  MERGE (l)-[:FOUND_IN]->(s)
)
WITH l, row
UNWIND range(0, size(row.product_ids) - 1) AS position
MATCH (p:Product {id: row.product_ids[position]})
CREATE (l)-[:INCLUDES {position: position}]->(p);

// name: save_looks
UNWIND $rows AS row
MATCH (u:Shopper {id: row.shopper_id})
MATCH (l:Look {id: row.look_id})
MERGE (u)-[saved:SAVED]->(l)
SET saved.ts = CASE WHEN saved.ts IS NULL OR row.ts > saved.ts THEN row.ts ELSE saved.ts END;

// Mined looks other than $keep (the ids of the new ones) go, with their relationships.
// name: delete_other_mined_looks
MATCH (l:Look)
WHERE l.mined = true AND NOT l.id IN $keep
DETACH DELETE l
RETURN count(*) AS deleted;
