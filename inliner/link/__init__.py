"""Stages 3 and 4: the helper sets (helpers.py), the plan of which call sites to splice
in (plan.py), and linking the helpers' bitcode into the program (link.py)."""
