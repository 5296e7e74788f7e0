"""Transition data: validation and conversion, and the replay buffer."""

from mbrl_po.data.transitions import as_transitions, from_sb3_buffer

__all__ = ["as_transitions", "from_sb3_buffer"]
