"""Fetching published files: data sets and weights, from their publishers' addresses or a mirror.

Owns the downloader (:mod:`.download`: resumable into ``NAME.part``, renamed when complete, SHA-256 checked
against the pinned, the publisher's or the recorded digest), the folder manifests that record digests
(:mod:`.manifest`), the safe extraction of archives (:mod:`.archives`), fetching a data set's files
(:mod:`.entries`) and the catalogues of addresses (:mod:`.catalogue`, one YAML file per kind). Nothing here runs
unless a command asks for it: no run, evaluation or test downloads. May import the foundation modules (errors,
store); never models, datasets or anything above: the commands that check what was fetched live above it.
"""
from vpbench.fetch.download import MIRROR_ENV, Remote, fetch, mirror_from

__all__ = ["MIRROR_ENV", "Remote", "fetch", "mirror_from"]
