// Neo4j Browser favourites for merchandisers. Set parameters first, e.g.
//   :param shopperId => 'u000007'
//   :param productId => 'p000500'

// A shopper's journey: sessions, and what they viewed, carted, bought or dismissed in each.
// name: shopper_journey
MATCH path = (u:Shopper {id: $shopperId})-[:HAD_SESSION]->(s:Session)-[i:INTERACTED]->(p:Product)
RETURN path
ORDER BY s.started_at DESC, i.ts
LIMIT 300;

// Why this product is recommended to this shopper: looks and shared attributes (of any kind,
// the rarest first, as the engine walks them) that lead from what the shopper touched to the
// product.
// name: why_recommended
MATCH (:Shopper {id: $shopperId})-[:HAD_SESSION]->(:Session)-[i:INTERACTED]->(anchor:Product)
WHERE i.type <> 'dismiss'
MATCH path = (anchor)<-[:INCLUDES]-(:Look)-[:INCLUDES]->(:Product {id: $productId})
RETURN path
LIMIT 25
UNION
MATCH (:Shopper {id: $shopperId})-[:HAD_SESSION]->(:Session)-[i:INTERACTED]->(anchor:Product)
WHERE i.type <> 'dismiss'
MATCH path = (anchor)-[:HAS_ATTRIBUTE]->(a:Attribute)<-[:HAS_ATTRIBUTE]-(:Product {id: $productId})
WITH path, a.key AS attribute, COUNT { (a)<-[:HAS_ATTRIBUTE]-() } AS holders
ORDER BY holders, attribute
RETURN path
LIMIT 25;

// Gift sessions: shopping for someone else (they never shape the shopper's profile).
// name: gift_sessions
MATCH path = (:Shopper)-[:HAD_SESSION]->(s:Session)-[:INTERACTED]->(:Product)
WHERE s.gift = true
RETURN path
LIMIT 200;

// Travel sessions: sessions that started away from the shopper's home location.
// name: travel_sessions
MATCH path = (u:Shopper)-[:HAD_SESSION]->(s:Session)-[:INTERACTED]->(:Product)
WHERE s.location IS NOT NULL AND u.home_location IS NOT NULL AND s.location <> u.home_location
RETURN path
LIMIT 200;
