// Embeddings written back by `lookgraph train`: a vector property per node, with the artifact
// version that produced it. Labels cannot be parameters, so one statement per label. Product
// vectors are stored as 32-bit floats, as trained and as the vector index reads them.

// name: write_product_embeddings
UNWIND $rows AS row
MATCH (n:Product {id: row.id})
CALL db.create.setNodeVectorProperty(n, 'embedding', row.vector)
SET n.embedding_model = $model;

// name: write_shopper_embeddings
UNWIND $rows AS row
MATCH (n:Shopper {id: row.id})
SET n.embedding = row.vector, n.embedding_model = $model;

// name: write_look_embeddings
UNWIND $rows AS row
MATCH (n:Look {id: row.id})
SET n.embedding = row.vector, n.embedding_model = $model;

// name: read_embeddings
UNWIND $ids AS nodeId
MATCH (n:Product|Shopper|Look {id: nodeId})
WHERE $label IN labels(n) AND n.embedding IS NOT NULL
RETURN n.id AS id, n.embedding AS vector, n.embedding_model AS model;
