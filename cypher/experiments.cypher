// Experiments (recommend/experiments.py): (:Experiment) nodes, each holding its definition as
// one JSON document (`spec`, as the embedded store keeps it) beside the fields a person exploring
// in the Browser reads: MATCH (e:Experiment) RETURN e.name, e.starts_at, e.ends_at.

// name: experiments
MATCH (e:Experiment)
RETURN e.spec AS spec
ORDER BY e.id;

// `created` is false when the id is taken (nothing is written then).
// name: create_experiment
MERGE (e:Experiment {id: $id})
  ON CREATE SET e._NEW_ = true
WITH e, e._NEW_ IS NOT NULL AS created
REMOVE e._NEW_
SET e += CASE WHEN created THEN {name: $name, starts_at: $starts_at, ends_at: $ends_at, spec: $spec} ELSE {} END
RETURN created;

// name: experiment
MATCH (e:Experiment {id: $id})
RETURN e.spec AS spec;

// name: end_experiment
MATCH (e:Experiment {id: $id})
SET e.ends_at = $ends_at, e.spec = $spec
RETURN e.id AS id;
