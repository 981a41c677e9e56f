"""BPF programs: :class:`Program` (load, verifier errors, test runs, stats) and the program enums."""

from .._sys._generated import AttachType, ProgType
from .info import ProgramInfo
from .program import Program
from .stats import RunStats, enable_stats, stats_enabled
from .test_run import TestRunResult
from .verifier_log import LogSummary, summarize

__all__ = ["Program", "ProgType", "AttachType", "TestRunResult", "ProgramInfo", "RunStats", "enable_stats",
           "stats_enabled", "LogSummary", "summarize"]
