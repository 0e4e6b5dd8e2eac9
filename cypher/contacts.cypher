// The outbound contact log (email, push...): operational data about a shopper, erased with them.

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
