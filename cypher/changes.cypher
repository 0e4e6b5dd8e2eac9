// The change log: every write that serving processes hold a copy of (products, looks, rules,
// categories, erasures), numbered in commit order by one counter node, whose lock serializes
// the writers that record a change (graph/neo4j_store.py runs record_changes in the write's own
// transaction). Each process reads what came after the last change it applied.

// name: record_changes
MERGE (counter:ChangeSequence {id: 'changes'})
SET counter.seq = coalesce(counter.seq, 0) + size($changes)
WITH counter.seq - size($changes) AS base
UNWIND range(0, size($changes) - 1) AS i
CREATE (:Change {seq: base + i + 1, kind: $changes[i].kind, key: $changes[i].key, at: $at});

// Changes older than the retention: a process further behind reloads everything.
// name: drop_old_changes
MATCH (old:Change)
WHERE old.at < $before
WITH old
LIMIT 10000
DELETE old;

// name: changes_since
MATCH (c:Change)
WHERE c.seq > $seq
RETURN c.seq AS seq, c.kind AS kind, c.key AS key
ORDER BY seq
LIMIT $limit;

// name: latest_change
OPTIONAL MATCH (counter:ChangeSequence {id: 'changes'})
RETURN coalesce(counter.seq, 0) AS seq;

// How many interactions there are, from the count store (constant time): it changes when events
// are added or erased, whoever wrote them.
// name: events_watermark
RETURN COUNT { ()-[:INTERACTED]->() } AS events;
