// Bringing a database made by an earlier lookgraph up to schema.cypher, whose IF NOT EXISTS
// leaves an existing index as it was (graph/neo4j_store.py, ensure_schema).

// The product_embedding vector index's configuration, when the index exists.
// name: product_embedding_config
SHOW VECTOR INDEXES YIELD name, options
WHERE name = 'product_embedding'
RETURN options.indexConfig AS config;

// name: drop_product_embedding_index
DROP INDEX product_embedding IF EXISTS;

// A recreated index fills from the stored embeddings in the background: wait for it.
// name: await_product_embedding_index
CALL db.awaitIndex('product_embedding', 600);
