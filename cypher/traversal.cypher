// The recommendation engine's walks, run inside Neo4j (graph/neo4j_traversal.py). They take a
// batch of anchor products ($anchors) so that a request costs the same round trips, whatever its
// number of anchors, and return lists inside few records (the Python driver's cost is per
// record). Their in-memory twins are in graph/memory_traversal.py; both answer alike.

// Name and leaf category of the products about to be ranked, as one record: [id, name,
// category] each (through the Python driver a record costs about 45 microseconds however
// small, and a list inside one record next to nothing).
// name: product_cards
UNWIND $ids AS productId
MATCH (p:Product {id: productId})
OPTIONAL MATCH (p)-[:IN_CATEGORY]->(c:Category)
RETURN collect([p.id, p.name, c.id]) AS cards;

// The engine's three walks from a batch of anchor products ($anchors), in one statement (a
// statement is a round trip: about 0.5 ms through the Python driver), each a COLLECT subquery
// whose rows come anchor by anchor in the order of $anchors. A walk asked for 0 per anchor
// ($looks_per_anchor, $crowd_per_anchor; $attributes false) is not walked.
//
// looks: anchor <-INCLUDES- Look -INCLUDES-> the look's items, in order (the anchor among
// them), with each item's name and leaf category; curated looks before mined ones, each by id:
// [anchor, look id, look name, mined, [item ids], [[item name, item category]]].
//
// attributes: the attributes of each anchor, every kind, with how many products hold each (for
// how telling it is: graph/traversal.py's telling_attributes picks the walked ones), and the
// anchor's leaf category: [anchor, anchor category, [[attribute key, holders]]] (the first
// half of anchor -HAS_ATTRIBUTE-> attribute <-HAS_ATTRIBUTE- other products; the second half is
// attribute_top_products). `products`, the catalogue's size, and the holders are read from
// Neo4j's count store and each node's degree, not by scanning.
//
// crowd: anchor -BOUGHT_WITH-> its companions in the crowd's sessions (materialized by
// graph/crowd.py), most sessions first: [anchor, [[companion id, sessions, name, category]]].
// name: walks
CALL () {
  MATCH (p:Product)
  RETURN count(p) AS products
}
RETURN products,
  COLLECT {
    UNWIND range(0, size($anchors) - 1) AS n
    MATCH (a:Product {id: $anchors[n]})
    CALL (a) {
      MATCH (a)<-[:INCLUDES]-(l:Look)
      WITH DISTINCT l
      RETURN l, coalesce(l.mined, false) AS mined
      ORDER BY mined, l.id
      LIMIT $looks_per_anchor
    }
    MATCH (l)-[i:INCLUDES]->(item:Product)
    OPTIONAL MATCH (item)-[:IN_CATEGORY]->(c:Category)
    WITH n, a, l, mined, item, c, i.position AS position
    ORDER BY n, mined, l.id, position
    WITH n, a, l, mined, collect(item.id) AS itemIds, collect([item.name, c.id]) AS cards
    ORDER BY n, mined, l.id
    RETURN [a.id, l.id, l.name, mined, itemIds, cards]
  } AS looks,
  COLLECT {
    UNWIND range(0, size($anchors) - 1) AS n
    MATCH (a:Product {id: $anchors[n]})-[:HAS_ATTRIBUTE]->(t:Attribute)
    WHERE $attributes
    OPTIONAL MATCH (a)-[:IN_CATEGORY]->(c:Category)
    WITH n, a, c, t
    ORDER BY n, t.key
    WITH n, a.id AS anchor, c.id AS anchorCategory, collect([t.key, COUNT { (t)<-[:HAS_ATTRIBUTE]-() }]) AS held
    ORDER BY n
    RETURN [anchor, anchorCategory, held]
  } AS attributes,
  COLLECT {
    UNWIND range(0, size($anchors) - 1) AS n
    MATCH (a:Product {id: $anchors[n]})
    CALL (a) {
      MATCH (a)-[r:BOUGHT_WITH]->(q:Product)
      RETURN q, r.sessions AS sessions
      ORDER BY sessions DESC, q.id
      LIMIT $crowd_per_anchor
    }
    OPTIONAL MATCH (q)-[:IN_CATEGORY]->(c:Category)
    WITH n, a, q, sessions, c
    ORDER BY n, sessions DESC, q.id
    WITH n, a.id AS anchor, collect([q.id, sessions, q.name, c.id]) AS companions
    ORDER BY n
    RETURN [anchor, companions]
  } AS crowd;

// The $scanned most popular products of each attribute (popularity: the product's interactions
// other than dismissals). An aggregate over every product that has the attribute: the engine
// keeps the answer for a while (graph/neo4j_traversal.py) rather than count again per request.
// name: attribute_top_products
UNWIND $attributes AS key
MATCH (t:Attribute {key: key})
CALL (t) {
  MATCH (t)<-[:HAS_ATTRIBUTE]-(q:Product)
  WITH q, COUNT { (q)<-[r:INTERACTED]-(:Session) WHERE r.type <> 'dismiss' } AS popularity
  ORDER BY popularity DESC, q.id
  LIMIT $scanned
  OPTIONAL MATCH (q)-[:IN_CATEGORY]->(c:Category)
  RETURN q.id AS id, q.name AS name, c.id AS category_id, popularity
}
RETURN key AS attribute, id, name, category_id
ORDER BY attribute, popularity DESC, id;

// Products nearest a LookGNN query vector, through the vector index of schema.cypher. The
// index is approximate (HNSW): asked for $candidates (twice $k) and cut to the best $k, it finds
// the exact top $k as the embedded store's scan does (300 of 300 queries on the test shop,
// against 299 when asked for $k alone).
// name: nearest_products
CALL db.index.vector.queryNodes('product_embedding', $candidates, $vector) YIELD node, score
RETURN node.id AS id, score
ORDER BY score DESC, id
LIMIT $k;

// The time of the newest cart or purchase: trending is measured back from it, as on the
// embedded store (graph/sqlite_store.py's carts_and_purchases).
// name: latest_sale_time
MATCH (:Session)-[r:INTERACTED]->(:Product)
WHERE r.type IN ['cart', 'purchase'] AND r.ts IS NOT NULL
RETURN r.ts AS ts
ORDER BY ts DESC
LIMIT 1;

// Carts (2) and purchases (3) since $since, per product, best first.
// name: trending_products
MATCH (:Session)-[r:INTERACTED]->(p:Product)
WHERE r.ts >= $since AND r.type IN ['cart', 'purchase']
WITH p, sum(CASE r.type WHEN 'purchase' THEN 3 ELSE 2 END) AS weight
ORDER BY weight DESC, p.id
LIMIT $limit
OPTIONAL MATCH (p)-[:IN_CATEGORY]->(c:Category)
RETURN p.id AS id, p.name AS name, c.id AS category_id, weight;

// The same per location of the event, the best $per_location of each.
// name: trending_by_location
MATCH (:Session)-[r:INTERACTED]->(p:Product)
WHERE r.ts >= $since AND r.type IN ['cart', 'purchase'] AND r.location IS NOT NULL
WITH r.location AS location, p, sum(CASE r.type WHEN 'purchase' THEN 3 ELSE 2 END) AS weight
ORDER BY location, weight DESC, p.id
WITH location, collect(p)[..$per_location] AS top
UNWIND range(0, size(top) - 1) AS rank
WITH location, rank, top[rank] AS p
OPTIONAL MATCH (p)-[:IN_CATEGORY]->(c:Category)
RETURN location, rank, p.id AS id, p.name AS name, c.id AS category_id;

// Per leaf category: how many shoppers bought in it, how many bought again more than a day
// after their previous purchase there (and every such gap in seconds: the cycle is its median),
// and how many bought more than one distinct product of it (a return to the category).
// name: repurchase
MATCH (u:Shopper)-[:HAD_SESSION]->(:Session)-[r:INTERACTED]->(p:Product)-[:IN_CATEGORY]->(c:Category)
WHERE r.type = 'purchase'
WITH c.id AS leaf, u, r.ts AS ts, p.id AS product
ORDER BY ts
WITH leaf, u, collect(ts) AS times, count(DISTINCT product) AS products
WITH leaf, products, [i IN range(1, size(times) - 1) WHERE times[i] - times[i - 1] > 86400 | times[i] - times[i - 1]] AS gaps
WITH leaf, count(*) AS buyers, sum(CASE WHEN size(gaps) > 0 THEN 1 ELSE 0 END) AS repeatBuyers,
     sum(CASE WHEN products > 1 THEN 1 ELSE 0 END) AS returningBuyers, collect(gaps) AS allGaps
RETURN leaf, buyers, repeatBuyers AS repeat_buyers, returningBuyers AS returning_buyers,
       reduce(acc = [], g IN allGaps | acc + g) AS gaps;

// name: product_count
MATCH (p:Product)
RETURN count(p) AS products;
