"""course_lib: the helper library of the course *Multimodal generation from scratch*.

Modules are named after what they hold: ``device`` (where the work runs), ``profiles``
(budgets), ``data`` (digits, captions, shapes), ``train`` (the fit loop), ``plots``,
``artifacts`` (safe save/load), ``report`` (measured metrics), ``checks`` (exercise checkers).
"""
from .device import autocast, environment_report, pick_device, seed_everything
from .profiles import Profile, get_profile

__version__ = "0.1.0"
__all__ = ["autocast", "environment_report", "pick_device", "seed_everything", "Profile", "get_profile"]
