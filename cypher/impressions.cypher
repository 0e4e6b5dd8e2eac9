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
WHERE i.at >= $since AND ($shopper_id IS NULL OR i.shopper_id = $shopper_id)
RETURN i.id AS id, i.list AS list, i.at AS at, i.shopper_id AS shopper_id, i.session_id AS session_id,
       i.product_id AS product_id, i.model AS model, i.ranker AS ranker, i.variant AS variant,
       i.context AS context, i.items AS items
ORDER BY at, id
LIMIT $limit;

// name: delete_impressions_before
MATCH (i:Impression)
WHERE i.at < $before
WITH i
LIMIT $batch
DELETE i
RETURN count(*) AS deleted;
