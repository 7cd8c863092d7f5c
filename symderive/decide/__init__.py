"""The decision: algebra, exact evaluation, the counterexample search, the symbolic decision, verdicts."""
