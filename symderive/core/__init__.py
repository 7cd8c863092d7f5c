"""The core: index-level IR, z3 domains, operator trees, the operator table, the claim parser."""
