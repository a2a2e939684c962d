"""Blocks that several models share (recurrent frames, SimVP's frames, attention and MetaFormer blocks, dropout).

Each file holds one family of blocks; a model file builds from them. May import the foundation modules
(errors, presets, losses) and each other; never a model file of :mod:`vpbench.models` or anything above.
"""
