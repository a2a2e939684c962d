"""Shared test code: golden-file parity checks, OpenSTL cell mappings, video fixtures, writers of the distributed
file formats."""
