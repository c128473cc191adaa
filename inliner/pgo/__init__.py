"""Profiles: the counters an instrumented build leaves (profile.py) in LLVM's
instrumentation profile formats, text and indexed .profdata (profdata.py)."""
