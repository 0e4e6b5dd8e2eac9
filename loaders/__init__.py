"""Input formats and dataset adapters: everything that turns files into model records."""
