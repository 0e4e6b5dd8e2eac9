// Neo4j Browser favourites about the catalogue. Set :param productId => 'p000500' first.

// The looks around a product, with their other items and those items' categories.
// name: looks_around_product
MATCH path = (:Product {id: $productId})<-[:INCLUDES]-(:Look)-[:INCLUDES]->(:Product)-[:IN_CATEGORY]->(:Category)
RETURN path
LIMIT 100;

// The complement map: which categories the looks put together (GOES_WITH, graph/crowd.py,
// rewritten whenever looks change), most looks first; lift above 1: more often than chance.
// name: complement_map
MATCH path = (a:Category)-[r:GOES_WITH]->(b:Category)
WHERE a.id < b.id
RETURN path
ORDER BY r.looks DESC
LIMIT 50;

// What the crowd engages with together with this product (BOUGHT_WITH, graph/crowd.py), most
// sessions first, each with its lift (above 1: together more often than chance).
// name: bought_with_product
MATCH path = (:Product {id: $productId})-[r:BOUGHT_WITH]->(:Product)-[:IN_CATEGORY]->(:Category)
RETURN path
ORDER BY r.sessions DESC
LIMIT 25;

// Products LookGNN places nearest to this one (needs `lookgraph train --store neo4j`).
// name: embedding_neighbours
MATCH (p:Product {id: $productId})
CALL db.index.vector.queryNodes('product_embedding', 11, p.embedding) YIELD node, score
WHERE node <> p
RETURN node.id AS id, node.name AS name, score
ORDER BY score DESC;
