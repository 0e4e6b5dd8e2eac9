// Reads behind the GraphStore interface. Pages use keyset pagination ($after, $limit) so each
// page is its own short read transaction, retried by the driver if the cluster asks.

// name: category_ids
MATCH (n:Category) RETURN n.id AS id;

// name: product_ids
MATCH (n:Product) RETURN n.id AS id;

// name: shopper_ids
MATCH (n:Shopper) RETURN n.id AS id;

// name: look_ids
MATCH (n:Look) RETURN n.id AS id;

// name: session_ids
MATCH (n:Session) RETURN n.id AS id;

// name: session_owners
UNWIND $ids AS sessionId
MATCH (s:Session {id: sessionId})
OPTIONAL MATCH (u:Shopper)-[:HAD_SESSION]->(s)
RETURN s.id AS id, u.id AS shopper_id;

// name: categories_page
MATCH (c:Category)
WHERE c.id > $after
WITH c ORDER BY c.id LIMIT $limit
OPTIONAL MATCH (c)-[:CHILD_OF]->(parent:Category)
RETURN c.id AS id, c.name AS name, parent.id AS parent_id
ORDER BY id;

// name: products_page
MATCH (p:Product)
WHERE p.id > $after
WITH p ORDER BY p.id LIMIT $limit
OPTIONAL MATCH (p)-[:IN_CATEGORY]->(c:Category)
RETURN p.id AS id, p.name AS name, c.id AS category_id, p.price AS price,
       [(p)-[:HAS_ATTRIBUTE]->(a:Attribute) | a {.kind, .value}] AS attributes,
       p.availability AS availability, p.unavailable_in AS unavailable_in
ORDER BY id;

// name: shoppers_page
MATCH (s:Shopper)
WHERE s.id > $after
RETURN s.id AS id, s.home_location AS home_location
ORDER BY id LIMIT $limit;

// name: looks_page
MATCH (l:Look)
WHERE l.id > $after
WITH l ORDER BY l.id LIMIT $limit
OPTIONAL MATCH (l)-[:FOUND_IN]->(s:Session)
RETURN l.id AS id, l.name AS name, s.id AS session_id, coalesce(l.mined, false) AS mined, l.support AS support,
       l.lift AS lift, [(l)-[i:INCLUDES]->(p:Product) | {position: i.position, id: p.id}] AS items
ORDER BY id;

// Events in time order (ties by id), as the embedded store streams them, so that both stores
// export the same graph for training. Keyset paging: after ($after_ts, $after).
// name: events_page
MATCH (s:Session)-[i:INTERACTED]->(p:Product)
WHERE i.ts >= $after_ts AND (i.ts > $after_ts OR i.event_id > $after)
WITH s, i, p ORDER BY i.ts, i.event_id LIMIT $limit
OPTIONAL MATCH (u:Shopper)-[:HAD_SESSION]->(s)
RETURN i.event_id AS id, s.id AS session_id, p.id AS product_id, i.type AS type, i.ts AS ts,
       u.id AS shopper_id, i.location AS location, i.gift AS gift
ORDER BY ts, id;

// name: saved_looks_page
MATCH (u:Shopper)-[saved:SAVED]->(l:Look)
WHERE u.id > $after_shopper OR (u.id = $after_shopper AND l.id > $after_look)
RETURN u.id AS shopper_id, l.id AS look_id, saved.ts AS ts
ORDER BY shopper_id, look_id LIMIT $limit;

// name: get_category
MATCH (c:Category {id: $id})
OPTIONAL MATCH (c)-[:CHILD_OF]->(parent:Category)
RETURN c.id AS id, c.name AS name, parent.id AS parent_id;

// name: get_product
MATCH (p:Product {id: $id})
OPTIONAL MATCH (p)-[:IN_CATEGORY]->(c:Category)
RETURN p.id AS id, p.name AS name, c.id AS category_id, p.price AS price,
       [(p)-[:HAS_ATTRIBUTE]->(a:Attribute) | a {.kind, .value}] AS attributes,
       p.availability AS availability, p.unavailable_in AS unavailable_in;

// name: get_shopper
MATCH (s:Shopper {id: $id})
RETURN s.id AS id, s.home_location AS home_location;

// name: get_look
MATCH (l:Look {id: $id})
OPTIONAL MATCH (l)-[:FOUND_IN]->(s:Session)
RETURN l.id AS id, l.name AS name, s.id AS session_id, coalesce(l.mined, false) AS mined, l.support AS support,
       l.lift AS lift, [(l)-[i:INCLUDES]->(p:Product) | {position: i.position, id: p.id}] AS items;

// The newest $limit events (all when $limit is null) of one shopper, at or after $since, newest
// first, as one record: [id, session, product, type, ts, shopper, location, gift] each (a
// record costs the Python driver about 45 microseconds, a list inside one next to nothing).
// name: shopper_events
MATCH (u:Shopper {id: $shopper_id})-[:HAD_SESSION]->(s:Session)-[i:INTERACTED]->(p:Product)
WHERE i.ts >= $since
WITH u, s, i, p
ORDER BY i.ts DESC, i.event_id DESC
LIMIT coalesce($limit, 9223372036854775807)
RETURN collect([i.event_id, s.id, p.id, i.type, i.ts, u.id, i.location, i.gift]) AS events;

// Look ids in id order, a page at a time; with $product_id only the looks including it.
// name: look_page
MATCH (l:Look)
WHERE $product_id IS NULL OR EXISTS { (l)-[:INCLUDES]->(:Product {id: $product_id}) }
RETURN l.id AS id
ORDER BY id
SKIP $offset
LIMIT $limit;

// The stored events among $ids (a load compares what it re-delivers with what is stored).
// name: events_by_id
UNWIND $ids AS eventId
MATCH (s:Session)-[i:INTERACTED {event_id: eventId}]->(p:Product)
OPTIONAL MATCH (u:Shopper)-[:HAD_SESSION]->(s)
RETURN i.event_id AS id, s.id AS session_id, p.id AS product_id, i.type AS type, i.ts AS ts,
       u.id AS shopper_id, i.location AS location, i.gift AS gift;

// What a feed reads of a shopper, in one statement (graph/store.py's shopper_history): the
// shopper, their newest $events events and the newest $lists lists they were shown, each as the
// rows of shopper_events and impressions.latest_impressions, newest first.
// name: shopper_history
MATCH (u:Shopper {id: $shopper_id})
RETURN u.home_location AS home_location,
       COLLECT {
         MATCH (u)-[:HAD_SESSION]->(s:Session)-[i:INTERACTED]->(p:Product)
         WITH s, i, p
         ORDER BY i.ts DESC, i.event_id DESC
         LIMIT $events
         RETURN [i.event_id, s.id, p.id, i.type, i.ts, u.id, i.location, i.gift]
       } AS events,
       COLLECT {
         MATCH (shown:Impression {shopper_id: $shopper_id})
         WITH shown
         ORDER BY shown.at DESC, shown.id DESC
         LIMIT $lists
         RETURN [shown.id, shown.list, shown.at, shown.shopper_id, shown.session_id, shown.product_id, shown.model,
                 shown.ranker, shown.variant, shown.context, shown.items]
       } AS impressions;

// name: session_events
MATCH (s:Session {id: $session_id})-[i:INTERACTED]->(p:Product)
WHERE i.ts >= $since
OPTIONAL MATCH (u:Shopper)-[:HAD_SESSION]->(s)
WITH u, s, i, p
ORDER BY i.ts DESC, i.event_id DESC
LIMIT coalesce($limit, 9223372036854775807)
RETURN collect([i.event_id, s.id, p.id, i.type, i.ts, u.id, i.location, i.gift]) AS events;

// name: count_nodes
RETURN COUNT { (:Shopper) } AS Shopper, COUNT { (:Session) } AS Session,
       COUNT { (:Product) } AS Product, COUNT { (:Category) } AS Category,
       COUNT { (:Attribute) } AS Attribute, COUNT { (:Look) } AS Look;

// name: count_relationships
RETURN COUNT { ()-[:HAD_SESSION]->() } AS HAD_SESSION,
       COUNT { ()-[:INTERACTED]->() } AS INTERACTED,
       COUNT { ()-[:IN_CATEGORY]->() } AS IN_CATEGORY,
       COUNT { ()-[:CHILD_OF]->() } AS CHILD_OF,
       COUNT { ()-[:HAS_ATTRIBUTE]->() } AS HAS_ATTRIBUTE,
       COUNT { ()-[:INCLUDES]->() } AS INCLUDES,
       COUNT { ()-[:FOUND_IN]->() } AS FOUND_IN,
       COUNT { ()-[:SAVED]->() } AS SAVED,
       COUNT { ()-[:BOUGHT_WITH]->() } AS BOUGHT_WITH,
       COUNT { ()-[:GOES_WITH]->() } AS GOES_WITH;

// Products per category, counting every product in or below it.
// name: top_categories
MATCH (p:Product)-[:IN_CATEGORY]->(:Category)-[:CHILD_OF*0..]->(c:Category)
RETURN c.id AS id, c.name AS name, count(DISTINCT p) AS products
ORDER BY products DESC, id
LIMIT $top;
