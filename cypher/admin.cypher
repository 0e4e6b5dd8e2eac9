// Administrative statements. Not used by the product itself: the contract tests run them
// against a throwaway test database.

// name: delete_everything
MATCH (n)
DETACH DELETE n;
