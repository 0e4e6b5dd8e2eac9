// The outbound contact log (email, push...): operational data about a shopper, erased with them.

// Lock the shopper (the lost-update pattern) and read their contacts since $since: parallel
// claims for one shopper serialize here, so a cap is decided on every earlier contact.
// name: lock_contacts
MATCH (u:Shopper {id: $shopper_id})
SET u._LOCK_ = true
REMOVE u._LOCK_
WITH u
OPTIONAL MATCH (u)-[contact:CONTACTED]->(:Channel)
WHERE contact.ts >= $since
RETURN u.id AS id, collect(contact.ts) AS times;

// name: record_contact
MATCH (u:Shopper {id: $shopper_id})
MERGE (c:Channel {name: $channel})
CREATE (u)-[:CONTACTED {ts: $ts}]->(c)
RETURN u.id AS id;

// name: contacts
MATCH (:Shopper {id: $shopper_id})-[contact:CONTACTED]->(c:Channel)
WHERE contact.ts >= $since
RETURN c.name AS channel, contact.ts AS ts
ORDER BY ts;
