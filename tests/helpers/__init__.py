"""Shared test code: golden-file parity checks, OpenSTL cell mappings, video fixtures, writers of distributed file formats."""
