// What the API showed (recommend/impressions.py): (:Impression) nodes, one per served list, kept
// under the recommendation id its answer gave. Items and context are JSON text, as the embedded
// store keeps them. Operational: not part of the graph that is counted, trained on or walked.

// A shopper the store does not hold (not yet known, or erased while the impression was queued)
// is not named. An id already kept is not written again.
// name: append_impressions
UNWIND $rows AS row
OPTIONAL MATCH (u:Shopper {id: row.shopper_id})
WITH row, u
WHERE NOT EXISTS { MATCH (:Impression {id: row.id}) }
CREATE (:Impression {id: row.id, list: row.list, at: row.at, shopper_id: u.id, session_id: row.session_id,
                     product_id: row.product_id, model: row.model, ranker: row.ranker, variant: row.variant,
                     context: row.context, items: row.items})
RETURN count(*) AS written;

// name: impressions
MATCH (i:Impression)
WHERE i.at >= $since AND i.at < $until AND ($shopper_id IS NULL OR i.shopper_id = $shopper_id)
  AND ($experiment IS NULL OR i.variant STARTS WITH $experiment + '/')
RETURN i.id AS id, i.list AS list, i.at AS at, i.shopper_id AS shopper_id, i.session_id AS session_id,
       i.product_id AS product_id, i.model AS model, i.ranker AS ranker, i.variant AS variant,
       i.context AS context, i.items AS items
ORDER BY at, id
LIMIT coalesce($limit, 9223372036854775807);

// name: delete_impressions_before
MATCH (i:Impression)
WHERE i.at < $before
WITH i
LIMIT $batch
DELETE i
RETURN count(*) AS deleted;

// Which recommendation an event was sent back with: (:Attribution {event_id, recommendation_id}),
// the first kept, only for a stored event.
// name: record_attributions
UNWIND $pairs AS pair
MATCH ()-[i:INTERACTED {event_id: pair.event_id}]->()
WITH DISTINCT pair
WHERE NOT EXISTS { MATCH (:Attribution {event_id: pair.event_id}) }
CREATE (:Attribution {event_id: pair.event_id, recommendation_id: pair.recommendation_id})
RETURN count(*) AS recorded;

// Every view, cart and purchase in [$since, $until), with its attribution if any.
// name: outcomes_between
MATCH (s:Session)-[i:INTERACTED]->(p:Product)
WHERE i.ts >= $since AND i.ts < $until AND i.type <> 'dismiss'
OPTIONAL MATCH (u:Shopper)-[:HAD_SESSION]->(s)
OPTIONAL MATCH (a:Attribution {event_id: i.event_id})
RETURN i.event_id AS id, s.id AS session_id, p.id AS product_id, i.type AS type, i.ts AS ts,
       u.id AS shopper_id, i.location AS location, i.gift AS gift, a.recommendation_id AS recommendation_id
ORDER BY ts, id;
