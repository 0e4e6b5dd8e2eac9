"""The recommendation engine: candidates -> features -> ranker -> policies -> explanations."""
