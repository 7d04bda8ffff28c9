"""HTTP glue: problem+json responses, JWT claims -> principal, idempotency, the shared resolver."""
