"""Lightning's rich model summary without the FLOPs it cannot count.

Lightning counts FLOPs only for a module with an ``example_input_array``; without one
(every model here) its summary shows a FLOPs column of zeros and ``Total FLOPs: 0``. This summary drops
both when the total is 0 and prints the totals on one line; with FLOPs it is Lightning's own.
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch.callbacks import RichModelSummary
from lightning.pytorch.utilities.model_summary import (
    get_formatted_model_size,
    get_human_readable_count,
)


class ModelSummary(RichModelSummary):
    """:class:`~lightning.pytorch.callbacks.RichModelSummary` without a FLOPs column of zeros.

    Args:
        max_depth: Depth of the module tree shown (Lightning's ``max_depth``).
        **summarize_kwargs: As Lightning's (``header_style``).
    """

    @staticmethod
    def summarize(summary_data: list[tuple[str, list[str]]], total_parameters: int, trainable_parameters: int,
                  model_size: float, total_training_modes: dict[str, int], total_flops: int,
                  **summarize_kwargs: Any) -> None:
        """Print the table (without the FLOPs column when ``total_flops`` is 0) and one line of totals."""
        if total_flops:
            return RichModelSummary.summarize(summary_data, total_parameters, trainable_parameters, model_size,
                                              total_training_modes, total_flops, **summarize_kwargs)
        from rich import get_console
        from rich.table import Table

        table = Table(header_style=summarize_kwargs.get("header_style", "bold magenta"))
        kept = [(name, values) for name, values in summary_data if name != "FLOPs"]
        table.add_column(" ", style="dim")
        for name, _ in kept[1:]:
            table.add_column(name, justify="right" if name.startswith("Params") else "left",
                             no_wrap=name == "Name")
        for row in zip(*(values for _, values in kept)):
            table.add_row(*row)
        console = get_console()
        console.print(table)
        frozen = total_parameters - trainable_parameters
        console.print(f"params: {get_human_readable_count(int(trainable_parameters))} trainable, "
                      f"{get_human_readable_count(int(frozen))} frozen ({get_formatted_model_size(model_size)} MB); "
                      f"modules: {total_training_modes['train']} train, {total_training_modes['eval']} eval mode",
                      highlight=False, soft_wrap=True)
