"""The end of a batch: ``report.jsonl`` (one line per item: status, message, outputs,
times) and a printed summary (done / skipped / failed, objects per hour, time per stage)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..outputs import atomic_write

REPORT = "report.jsonl"


@dataclass
class BatchReport:
    started: float = field(default_factory=time.perf_counter)
    lines: list[dict] = field(default_factory=list)
    interrupted: bool = False
    #: Why the run stopped before every item was tried (every ComfyUI server down), else None.
    stopped: str | None = None
    last_server_error: str | None = None

    def add(self, line: dict) -> None:
        self.lines.append(line)

    def count(self, status: str) -> int:
        return sum(1 for line in self.lines if line["status"] == status)

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started

    def objects_per_hour(self) -> float:
        done = self.count("done")
        return done / self.seconds * 3600 if done and self.seconds > 0 else 0.0

    def stage_means(self) -> dict[str, float]:
        totals: dict[str, list[float]] = {}
        for line in self.lines:
            if line["status"] == "done":
                for stage, seconds in (line.get("times") or {}).items():
                    totals.setdefault(stage, []).append(seconds)
        return {stage: sum(v) / len(v) for stage, v in totals.items()}

    def write(self, output: Path) -> Path:
        text = "".join(json.dumps(line, default=str) + "\n" for line in self.lines)
        return atomic_write(Path(output) / REPORT, lambda target: target.write_text(text))

    def summary(self) -> str:
        stages = ", ".join(f"{stage} {seconds:.1f} s" for stage, seconds in self.stage_means().items()) or "-"
        rows = [
            ("done", self.count("done")), ("skipped (finished before)", self.count("skipped")),
            ("failed", self.count("failed")), ("failed before (not retried)", self.count("failed-before")),
        ]
        if self.count("not-run"):
            rows.append(("not run (no server)", self.count("not-run")))
        text = "\n".join(f"  {name:28s} {count}" for name, count in rows)
        text += f"\n  {'objects per hour':28s} {self.objects_per_hour():.1f} ({self.seconds:.0f} s in all)"
        text += f"\n  {'mean time per stage':28s} {stages}"
        failures = [line for line in self.lines if line["status"] in ("failed", "failed-before")]
        if failures:
            text += "\nfailed items:\n" + "\n".join(f"  {f['input']}: {f.get('message')}" for f in failures)
        if self.interrupted:
            text += "\nINTERRUPTED: run the same command again to continue where it stopped."
        return text

    def exit_code(self) -> int:
        """What ``batch`` exits with (see EXIT_CODES)."""
        if self.interrupted:
            return 130
        if self.count("not-run"):
            return 3
        return 1 if self.count("failed") or self.count("failed-before") else 0

    def failure_line(self) -> str | None:
        """One line for a run that leaves failed items (now or from before), else None."""
        now, before = self.count("failed"), self.count("failed-before")
        if not now + before:
            return None
        return (f"{now + before} item(s) failed ({now} in this run, {before} in earlier runs and not retried): "
                "fix them and run the same command with --retry-failed to redo only those")


#: ``python -m syncdreamer_core batch`` exit codes (also in --help and the README).
EXIT_CODES = {
    0: "every item is done (in this run or before)",
    1: "some items failed, in this run or before and not retried (report.jsonl says why; --retry-failed redoes them)",
    2: "nothing was run: a bad argument, input list, workflow, checkpoint or output folder (the message says which)",
    3: "some items were not run: no ComfyUI server answered (--comfyui); rerun when one is up",
    130: "interrupted (Ctrl-C); the same command continues",
}
