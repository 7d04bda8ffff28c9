"""Shared layer of the wallet service: domain rules, use cases, database adapters and HTTP glue."""
