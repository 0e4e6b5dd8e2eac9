// Neo4j Graph Data Science, as `lookgraph evaluate --store neo4j` uses it for its FastRP + kNN
// baseline (embeddings/gds.py). The graph is projected from rows the evaluation sends, not from
// the stored graph: a split's held-out looks and interactions must not reach the baseline.

// One undirected relationship per [source, target] pair of node numbers in $edges, into GDS's
// in-memory catalogue under the name $graph (nothing is written to the database).
// name: project_edges
UNWIND $edges AS edge
WITH gds.graph.project($graph, edge[0], edge[1], {}, {undirectedRelationshipTypes: ['*']}) AS projected
RETURN projected.nodeCount AS nodes, projected.relationshipCount AS relationships;

// FastRP embeddings of every node of the projected graph, by node number.
// name: fastrp_embeddings
CALL gds.fastRP.stream($graph, {
  embeddingDimension: $dimension,
  iterationWeights: $iteration_weights,
  randomSeed: $seed,
  concurrency: 1
})
YIELD nodeId, embedding
RETURN nodeId AS node, embedding;

// name: drop_graph
CALL gds.graph.drop($graph, false)
YIELD graphName
RETURN graphName AS graph;

// The graphs in GDS's catalogue (each evaluation drops its own).
// name: projected_graphs
CALL gds.graph.list()
YIELD graphName
RETURN graphName AS graph;
