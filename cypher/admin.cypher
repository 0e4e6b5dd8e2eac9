// Administrative statements. Not used by the product itself: the contract tests run them
// against a throwaway test database.

// name: delete_everything
MATCH (n)
DETACH DELETE n;

// The vector index as an earlier lookgraph made it, with Neo4j's default quantization (a test
// checks that connecting brings it up to schema.cypher).
// name: create_quantized_product_embedding_index
CREATE VECTOR INDEX product_embedding IF NOT EXISTS
FOR (p:Product) ON (p.embedding)
OPTIONS {indexConfig: {`vector.dimensions`: 64, `vector.similarity_function`: 'cosine'}};

// What an earlier lookgraph could leave behind (two Channel nodes of one name, with a contact
// each), made again by the test of `migrations.merge_duplicate_channels`. The constraint goes
// first: a schema change cannot share a transaction with data.
// name: drop_channel_constraint
DROP CONSTRAINT channel_name IF EXISTS;

// name: legacy_duplicate_channels
CREATE (:Shopper {id: $first})-[:CONTACTED {ts: 1.0}]->(:Channel {name: $channel}),
       (:Shopper {id: $second})-[:CONTACTED {ts: 2.0}]->(:Channel {name: $channel});
