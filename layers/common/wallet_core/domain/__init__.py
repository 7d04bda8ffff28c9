"""Plain-Python domain: money, wallet rules, principals and the error tree (no SQL, no Powertools)."""
