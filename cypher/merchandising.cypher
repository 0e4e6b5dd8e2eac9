// What merchandisers steer: product availability and business rules (`model.Rule`), as nodes
// of the graph (explorable in the Browser: MATCH (r:Rule)-[*0..1]-(x) RETURN r, x).

// Each product not plainly in stock (out of stock, discontinued, or out of stock somewhere).
// name: unavailable_products
MATCH (p:Product)
WHERE p.availability IN ['out_of_stock', 'discontinued'] OR size(coalesce(p.unavailable_in, [])) > 0
RETURN p.id AS id, p.availability AS availability, coalesce(p.unavailable_in, []) AS unavailable_in;

// Only a product's availability changes (a stock update): its relationships stay untouched.
// name: set_availability
MATCH (p:Product {id: $id})
SET p.availability = $availability, p.unavailable_in = $unavailable_in
RETURN p.id AS id;

// The products a rule is about: every condition given must hold (a null one is no condition).
// Given categories, the walk starts from them (by the category id constraint's index) rather
// than scanning every product.
// name: products_matching
CALL () {
  MATCH (c:Category)<-[:IN_CATEGORY]-(p:Product)
  WHERE $categories IS NOT NULL AND c.id IN $categories
  RETURN p
  UNION
  MATCH (p:Product)
  WHERE $categories IS NULL
  RETURN p
}
WITH p
WHERE ($attribute IS NULL OR EXISTS { (p)-[:HAS_ATTRIBUTE]->(:Attribute {key: $attribute}) })
  AND ($price_min IS NULL OR p.price >= $price_min)
  AND ($price_max IS NULL OR p.price <= $price_max)
RETURN p.id AS id;

// Every rule, or those of $ids (a rule written: the others are not read again).
// name: rules
MATCH (r:Rule)
WHERE $ids IS NULL OR r.id IN $ids
OPTIONAL MATCH (u:Shopper)-[:HAS_RULE]->(r)
OPTIONAL MATCH (r)-[:PINS]->(l:Look)
RETURN r {.id, .action, .name, .category, .attribute, .price_min, .price_max, .weight, .starts_at, .ends_at,
          .variant, shopper_id: u.id, look_id: l.id} AS rule
ORDER BY r.id;

// A new rule, linked to its shopper and pinned look when it has them. `created` is false when
// the id is taken, `missing` names a shopper or look that does not exist (the caller rolls back).
// name: create_rule
MERGE (r:Rule {id: $rule.id})
  ON CREATE SET r._NEW_ = true
WITH r, r._NEW_ IS NOT NULL AS created
REMOVE r._NEW_
SET r += CASE WHEN created THEN $properties ELSE {} END
WITH r, created
OPTIONAL MATCH (u:Shopper {id: $rule.shopper_id})
OPTIONAL MATCH (l:Look {id: $rule.look_id})
FOREACH (shopper IN CASE WHEN created AND u IS NOT NULL THEN [u] ELSE [] END | MERGE (shopper)-[:HAS_RULE]->(r))
FOREACH (look IN CASE WHEN created AND l IS NOT NULL THEN [l] ELSE [] END | MERGE (r)-[:PINS]->(look))
RETURN created,
       CASE WHEN $rule.shopper_id IS NOT NULL AND u IS NULL THEN 'Shopper'
            WHEN $rule.look_id IS NOT NULL AND l IS NULL THEN 'Look' END AS missing;

// name: delete_rule
MATCH (r:Rule {id: $id})
DETACH DELETE r
RETURN count(*) AS deleted;
