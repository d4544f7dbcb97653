"""Batch image-to-3D: many objects, one command, on Ray Data from one machine to a cluster.

- ``items``: what to process (files, folders, globs, CSV/JSONL lists with per-item
  settings) and the key every item's outputs are stored under.
- ``work``: the per-item stages as plain functions (prepare, sample, reconstruct and
  write), the same ones the single-object command line runs.
- ``engine``: the stages as Ray Data operators (CPU tasks, a pool of sampler actors that
  each load the checkpoint once), resumable and fault tolerant.
- ``servers``: the same over a pool of running ComfyUI servers and any API workflow.
- ``report``: report.jsonl and the printed summary.

Ray is an optional dependency (requirements-batch.txt): nothing here is imported by
the ComfyUI nodes.
"""
