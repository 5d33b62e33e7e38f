"""Where this process stands in a data-parallel launch (``torchrun``, ``accelerate
launch``): every process trains on its shard; only the main one writes to the registry.

Trainer and accelerate do the data parallelism itself (sharded batches, all-reduced
gradients); this adds what they cannot know: the main process opens the registry run and
treats the data, and tells the others which run and which dataset version to use.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from genai.errors import GenAIError, ValidationError

__all__ = ["Launch"]


@dataclass(frozen=True)
class Launch:
    world: int = 1
    rank: int = 0

    @classmethod
    def current(cls) -> Launch:
        try:
            world = int(os.environ.get("WORLD_SIZE", "1"))
            rank = int(os.environ.get("RANK", "0"))
        except ValueError:
            raise ValidationError("WORLD_SIZE and RANK must be integers") from None
        return cls(world, rank)

    @property
    def main(self) -> bool:
        return self.rank == 0

    def _group(self) -> Any:
        import torch
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        return dist

    def share(self, value: Any = None, error: GenAIError | None = None) -> Any:
        """The main process's ``value`` in every process; an ``error`` the main process
        raises is raised in every process too (no process waits forever)."""
        if self.world == 1:
            if error is not None:
                raise error
            return value
        dist = self._group()
        box = [(value, error)]
        dist.broadcast_object_list(box, src=0)
        shared, failure = box[0]
        if failure is not None:
            raise failure
        return shared
