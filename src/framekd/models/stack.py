"""The widths of a stack of layers, shared by the MLP and the framelet teachers."""

from __future__ import annotations

from framekd.errors import ConfigError


def layer_widths(
    in_channels: int, hidden_channels: int, out_channels: int, num_layers: int, who: str
) -> list[tuple[int, int]]:
    """``(in, out)`` of each of ``num_layers`` layers: ``in -> hidden -> ... -> out``.

    Raises:
        ConfigError: ``num_layers < 1`` (``who`` names the model in the message).
    """
    if num_layers < 1:
        raise ConfigError(f"{who} needs num_layers >= 1, got {num_layers}")
    dims = [in_channels] + [hidden_channels] * (num_layers - 1) + [out_channels]
    return list(zip(dims[:-1], dims[1:], strict=True))
