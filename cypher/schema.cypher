// lookgraph schema for Neo4j 5: uniqueness constraints (each backed by an index) and the
// indexes the loads and traversals rely on. Every statement is idempotent (IF NOT EXISTS).

// name: shopper_id_unique
CREATE CONSTRAINT shopper_id IF NOT EXISTS FOR (n:Shopper) REQUIRE n.id IS UNIQUE;

// name: session_id_unique
CREATE CONSTRAINT session_id IF NOT EXISTS FOR (n:Session) REQUIRE n.id IS UNIQUE;

// name: product_id_unique
CREATE CONSTRAINT product_id IF NOT EXISTS FOR (n:Product) REQUIRE n.id IS UNIQUE;

// name: category_id_unique
CREATE CONSTRAINT category_id IF NOT EXISTS FOR (n:Category) REQUIRE n.id IS UNIQUE;

// name: look_id_unique
CREATE CONSTRAINT look_id IF NOT EXISTS FOR (n:Look) REQUIRE n.id IS UNIQUE;

// One node per contact channel: without it, two first contacts at once each MERGE a node of
// their own, and a later contact links to both (counted twice against the cap).
// name: channel_name_unique
CREATE CONSTRAINT channel_name IF NOT EXISTS FOR (n:Channel) REQUIRE n.name IS UNIQUE;

// name: console_session_token_unique
CREATE CONSTRAINT console_session_token IF NOT EXISTS FOR (n:ConsoleSession) REQUIRE n.token_hash IS UNIQUE;

// name: rule_id_unique
CREATE CONSTRAINT rule_id IF NOT EXISTS FOR (n:Rule) REQUIRE n.id IS UNIQUE;

// name: attribute_key_unique
CREATE CONSTRAINT attribute_key IF NOT EXISTS FOR (n:Attribute) REQUIRE n.key IS UNIQUE;

// name: attribute_kind_index
CREATE INDEX attribute_kind IF NOT EXISTS FOR (n:Attribute) ON (n.kind);

// Events are relationships; their id makes appends idempotent.
// name: interacted_event_id_index
CREATE INDEX interacted_event_id IF NOT EXISTS FOR ()-[r:INTERACTED]-() ON (r.event_id);

// name: interacted_ts_index
CREATE INDEX interacted_ts IF NOT EXISTS FOR ()-[r:INTERACTED]-() ON (r.ts);

// Product embeddings written by `lookgraph train` (LookGNN, 64 dimensions by default) are
// searchable by vector similarity; `db.index.vector.queryNodes('product_embedding', k, $v)`.
// Not quantized (5.23+ quantizes by default): int8 vectors reordered LookGNN's nearest
// neighbours, and unquantized the index answers as the embedded store's does; 64 floats a
// product cost 25 MB per 100k products.
// name: product_embedding_index
CREATE VECTOR INDEX product_embedding IF NOT EXISTS
FOR (p:Product) ON (p.embedding)
OPTIONS {indexConfig: {
  `vector.dimensions`: 64,
  `vector.similarity_function`: 'cosine',
  `vector.quantization.enabled`: false
}};

// The change log's numbers (cypher/changes.cypher): one per change, looked up by range.
// name: change_seq_unique
CREATE CONSTRAINT change_seq IF NOT EXISTS FOR (n:Change) REQUIRE n.seq IS UNIQUE;

// name: impression_id_unique
CREATE CONSTRAINT impression_id IF NOT EXISTS FOR (n:Impression) REQUIRE n.id IS UNIQUE;

// name: impression_at
CREATE INDEX impression_at IF NOT EXISTS FOR (n:Impression) ON (n.at);

// name: impression_shopper
CREATE INDEX impression_shopper IF NOT EXISTS FOR (n:Impression) ON (n.shopper_id);

// name: impression_session
CREATE INDEX impression_session IF NOT EXISTS FOR (n:Impression) ON (n.session_id);

// name: attribution_event_unique
CREATE CONSTRAINT attribution_event IF NOT EXISTS FOR (n:Attribution) REQUIRE n.event_id IS UNIQUE;

// name: experiment_id_unique
CREATE CONSTRAINT experiment_id IF NOT EXISTS FOR (n:Experiment) REQUIRE n.id IS UNIQUE;

// name: impression_variant
CREATE INDEX impression_variant IF NOT EXISTS FOR (n:Impression) ON (n.variant);

// name: exploration_state_unique
CREATE CONSTRAINT exploration_state_id IF NOT EXISTS FOR (n:ExplorationState) REQUIRE n.id IS UNIQUE;
