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
