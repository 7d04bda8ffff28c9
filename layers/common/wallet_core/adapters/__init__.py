"""Adapters: the engine, table descriptions, repositories and the unit of work. All SQL lives here."""
