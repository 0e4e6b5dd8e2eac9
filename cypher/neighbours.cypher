// One hop from a node over every relationship of the model (or only $rel when it is not null).
// Labels cannot be parameters in Neo4j 5 Cypher, so there is one statement per label.

// name: neighbours_Shopper
MATCH (n:Shopper {id: $id})-[r]-(m)
WHERE $rel IS NULL OR type(r) = $rel
RETURN type(r) AS rel, CASE WHEN startNode(r) = n THEN 'out' ELSE 'in' END AS direction,
       labels(m)[0] AS label, coalesce(m.id, m.key) AS id, properties(r) AS props
LIMIT $limit;

// name: neighbours_Session
MATCH (n:Session {id: $id})-[r]-(m)
WHERE $rel IS NULL OR type(r) = $rel
RETURN type(r) AS rel, CASE WHEN startNode(r) = n THEN 'out' ELSE 'in' END AS direction,
       labels(m)[0] AS label, coalesce(m.id, m.key) AS id, properties(r) AS props
LIMIT $limit;

// name: neighbours_Product
MATCH (n:Product {id: $id})-[r]-(m)
WHERE $rel IS NULL OR type(r) = $rel
RETURN type(r) AS rel, CASE WHEN startNode(r) = n THEN 'out' ELSE 'in' END AS direction,
       labels(m)[0] AS label, coalesce(m.id, m.key) AS id, properties(r) AS props
LIMIT $limit;

// name: neighbours_Category
MATCH (n:Category {id: $id})-[r]-(m)
WHERE $rel IS NULL OR type(r) = $rel
RETURN type(r) AS rel, CASE WHEN startNode(r) = n THEN 'out' ELSE 'in' END AS direction,
       labels(m)[0] AS label, coalesce(m.id, m.key) AS id, properties(r) AS props
LIMIT $limit;

// name: neighbours_Attribute
MATCH (n:Attribute {key: $id})-[r]-(m)
WHERE $rel IS NULL OR type(r) = $rel
RETURN type(r) AS rel, CASE WHEN startNode(r) = n THEN 'out' ELSE 'in' END AS direction,
       labels(m)[0] AS label, coalesce(m.id, m.key) AS id, properties(r) AS props
LIMIT $limit;

// name: neighbours_Look
MATCH (n:Look {id: $id})-[r]-(m)
WHERE $rel IS NULL OR type(r) = $rel
RETURN type(r) AS rel, CASE WHEN startNode(r) = n THEN 'out' ELSE 'in' END AS direction,
       labels(m)[0] AS label, coalesce(m.id, m.key) AS id, properties(r) AS props
LIMIT $limit;
