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

// Before the channel_name constraint: a store that an earlier lookgraph wrote can hold two
// Channel nodes of one name (two first contacts at once); their contacts move to the first.
// name: merge_duplicate_channels
MATCH (c:Channel)
WITH c.name AS name, collect(c) AS nodes
WHERE size(nodes) > 1
WITH head(nodes) AS keep, tail(nodes) AS extra
UNWIND extra AS duplicate
OPTIONAL MATCH (u:Shopper)-[old:CONTACTED]->(duplicate)
FOREACH (contact IN CASE WHEN old IS NULL THEN [] ELSE [old] END |
  CREATE (u)-[:CONTACTED {ts: contact.ts}]->(keep)
  DELETE contact
)
WITH DISTINCT duplicate
DETACH DELETE duplicate;
