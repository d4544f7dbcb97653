"""The batch as Ray Data operators, so the stages overlap:

    read + prepare (CPU tasks) -> sample (a pool of actors: each loads the checkpoint once,
    one GPU each on CUDA machines) -> rank + reconstruct + bake + write (CPU tasks)

Without an address a local Ray starts inside the command, sized to the machine; with
``--address`` (or ``RAY_ADDRESS``) the same job runs on an existing cluster, whose nodes
must all see the output folder. Ray restarts a killed sampler actor and retries a killed
task; outputs are keyed by input and settings and written whole or not at all, so a
retried item is done exactly once and a rerun skips what is finished.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from .cluster import connect
from .interrupt import CtrlC
from .items import BatchItem, BatchSettings, item_key
from .report import BatchReport
from .work import FAILED, RECORD, Sampler, SamplerStartError, finish, prepare

PREPARE_CPUS = 0.5


@dataclass
class EngineOptions:
    """How the work is spread (it never changes a result)."""

    address: str | None = None
    sampler_actors: int | None = None  # default: one per GPU, else 1
    sampler_threads: int | None = None  # CPU sampling: torch threads per actor (default: the cores / actors)
    recon_cpus: float = 1.0
    object_store_mb: int | None = None
    progress: bool = True


class BatchInterrupted(Exception):
    """Ctrl-C: the finished items are kept; a rerun continues."""


def plan(items: list[BatchItem], settings: BatchSettings, output: Path, retry_failed: bool = False
         ) -> tuple[list[dict], BatchReport]:
    """The rows still to do, and a report holding the items that need no work."""
    identity = settings.checkpoint_identity()
    report, rows = BatchReport(), []
    failed_inputs = previous_failures(output) if retry_failed else set()
    for item in items:
        key = item_key(item, settings, identity)
        folder = output / key
        line = {"key": key, "input": item.path}
        if (folder / RECORD).is_file():
            report.add({**line, "status": "skipped", "outputs": json.loads((folder / RECORD).read_text()).get("outputs")})
            continue
        failed_before = (folder / FAILED).is_file()
        if failed_before and not retry_failed:
            previous = json.loads((folder / FAILED).read_text())
            report.add({**line, "status": "failed-before", "message": previous.get("message")})
            continue
        if retry_failed and not failed_before and item.path not in failed_inputs:
            continue
        rows.append({"key": key, "path": item.path, "content_hash": item.hash_content(),
                     "settings": json.dumps(settings.for_item(item)), "error": item.problem or "",
                     "failed_stage": "input" if item.problem else "", "times": "{}"})
    return rows, report


def previous_failures(output: Path) -> set[str]:
    """Inputs the last run's report lists as failed (also when the file has changed since,
    e.g. a missing image that now exists: its key is new)."""
    from .report import REPORT

    path = output / REPORT
    if not path.is_file():
        return set()
    lines = [json.loads(text) for text in path.read_text().splitlines() if text.strip()]
    return {line["input"] for line in lines if line.get("status") in ("failed", "failed-before")}


def sampler_cpus(actors: int, recon_cpus: float) -> float:
    """CPUs each sampler actor reserves: one, or less where the actors would otherwise hold every
    CPU of the cluster and leave none for a meshing task (the job would stall, not fail)."""
    import ray

    total = float(ray.cluster_resources().get("CPU", 1))
    return max(0.1, min(1.0, (total - recon_cpus - PREPARE_CPUS) / actors))


class PinnedSampler(Sampler):
    """The sampler actor with its torch thread count fixed (Ray's default of one thread
    per reserved CPU would leave a CPU sampler one core)."""

    def __init__(self, settings: BatchSettings, threads: int | None):
        if threads:
            import torch

            torch.set_num_threads(threads)
        super().__init__(settings)


def run_batch(items: list[BatchItem], settings: BatchSettings, output: Path, options: EngineOptions | None = None,
              retry_failed: bool = False, on_item=None) -> BatchReport:
    """Process every item not finished yet; returns the report (also written to
    ``output/report.jsonl``). ``on_item(line)`` is called as each item finishes."""

    from ..outputs import OutputLock

    options = options or EngineOptions()
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    with OutputLock(output):
        return _run_batch(items, settings, output, options, retry_failed, on_item)


def _run_batch(items, settings, output, options, retry_failed, on_item) -> BatchReport:
    import ray

    rows, report = plan(items, settings, output, retry_failed)
    if not rows:
        report.write(output)
        return report
    started_ray = connect(options.address, options.object_store_mb)
    try:
        gpus = int(ray.cluster_resources().get("GPU", 0))
        on_gpu = settings.device.startswith("cuda")
        actors = options.sampler_actors or (max(1, gpus) if on_gpu else 1)
        threads = options.sampler_threads or (None if on_gpu else max(1, (os.cpu_count() or 1) // actors))
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = options.progress
        context.execution_options.preserve_order = False
        dataset = ray.data.from_items(rows, override_num_blocks=len(rows))
        # Light (one image read and resized); its own CPU share keeps Ray Data from fusing it
        # into the sampler actors, so reading overlaps sampling.
        dataset = dataset.map(prepare, num_cpus=PREPARE_CPUS)
        dataset = dataset.map(PinnedSampler, fn_constructor_args=(settings, threads),
                              compute=ray.data.ActorPoolStrategy(size=actors),
                              num_gpus=1 if on_gpu else 0, num_cpus=sampler_cpus(actors, options.recon_cpus))
        dataset = dataset.map(finish, fn_kwargs={"output": str(output)}, num_cpus=options.recon_cpus)
        try:
            with CtrlC() as ctrl_c:
                for row in dataset.iter_rows():
                    line = json.loads(row["line"])
                    report.add(line)
                    if on_item is not None:
                        on_item(line)
                    if ctrl_c.pressed:  # pressed, but the exception was lost inside Ray
                        raise KeyboardInterrupt
        except KeyboardInterrupt:
            report.interrupted = True
            collect_finished(rows, output, report)
        except Exception as error:
            message = SamplerStartError.message_in(str(error))
            if message is None:
                raise
            raise ValueError(message) from None
    finally:
        report.write(output)
        if started_ray:
            ray.shutdown()
    if report.interrupted:
        raise BatchInterrupted(report)
    return report


def collect_finished(rows: list[dict], output: Path, report: BatchReport) -> None:
    """After Ctrl-C: items whose record was written but not yet reported count as done."""
    reported = {line["key"] for line in report.lines}
    for row in rows:
        path = output / row["key"] / RECORD
        if row["key"] not in reported and path.is_file():
            record = json.loads(path.read_text())
            report.add({k: record.get(k) for k in ("key", "status", "input", "outputs", "times")})


def print_line(line: dict) -> None:
    status = line["status"]
    detail = f": {line.get('message')}" if status == "failed" else ""
    print(f"[{status}] {line['input']} -> {line['key']}{detail}", file=sys.stderr if status == "failed" else sys.stdout,
          flush=True)
