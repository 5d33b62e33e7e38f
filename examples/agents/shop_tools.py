"""The tools of examples/agents/support.yaml: an order lookup and a refund (which has side
effects and waits for a person's approval, as the YAML says)."""

from __future__ import annotations

import agents

ORDERS = {"A-1042": {"item": "kettle", "price": 30.0, "state": "delivered"}}


@agents.tool
def order_status(order: str) -> dict[str, object]:
    """An order's item, price and state.

    Args:
        order: The order's number, e.g. "A-1042".
    """
    if order not in ORDERS:
        raise KeyError(f"no order {order}")
    return ORDERS[order]


@agents.tool
def refund(order: str, amount: float) -> str:
    """Refund part or all of an order's price.

    Args:
        order: The order's number.
        amount: How much to refund, in USD.
    """
    ORDERS[order]["state"] = "refunded"
    return f"refunded {amount:.2f} USD on {order}"
