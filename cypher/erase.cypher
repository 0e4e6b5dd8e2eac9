// Erase a shopper and every trace of their personal data: their sessions (with every event
// and embedding on them), saved looks, contact log, rules of their own, and the shopper node with its embedding. Curated looks
// found in their sessions stay; only the FOUND_IN link to the session goes with the session.

// name: erase_shopper
MATCH (u:Shopper {id: $shopper_id})
OPTIONAL MATCH (u)-[:HAD_SESSION]->(s:Session)
WITH u, collect(s) AS sessions
WITH u, sessions,
     reduce(total = 0, s IN sessions | total + COUNT { (s)-[:INTERACTED]->() }) AS events,
     COUNT { (u)-[:SAVED]->() } AS savedLooks,
     COUNT { (u)-[:CONTACTED]->() } AS contacts,
     [(u)-[:HAS_RULE]->(r:Rule) | r] AS rules,
     size([s IN sessions WHERE s.embedding IS NOT NULL])
       + CASE WHEN u.embedding IS NULL THEN 0 ELSE 1 END AS embeddings
FOREACH (s IN sessions | DETACH DELETE s)
FOREACH (r IN rules | DETACH DELETE r)
DETACH DELETE u
RETURN events, savedLooks AS saved_looks, contacts, size(rules) AS rules, embeddings, size(sessions) AS sessions,
       1 AS shoppers;

// The lists shown to the shopper or in their sessions, and which recommendation their events
// were sent back with: run before erase_shopper, in its transaction.
// name: erase_impressions
OPTIONAL MATCH (u:Shopper {id: $shopper_id})-[:HAD_SESSION]->(s:Session)
OPTIONAL MATCH (s)-[e:INTERACTED]->()
WITH collect(DISTINCT s.id) AS sessions, collect(e.event_id) AS events
CALL (events) {
  MATCH (a:Attribution)
  WHERE a.event_id IN events
  DELETE a
}
CALL (sessions) {
  MATCH (i:Impression)
  WHERE i.shopper_id = $shopper_id OR i.session_id IN sessions
  DELETE i
  RETURN count(*) AS impressions
}
RETURN impressions;
