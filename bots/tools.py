"""The bot's tools: small real functions the LLM calls through vLLM's tool-call parser.

Each `FunctionSchema` carries its handler, so Pipecat registers it wherever the context advertises
the schema (see `bots.llm.create_context`).
"""

from __future__ import annotations

import ast
import operator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pipecat.adapters.llm.schemas.function_schema import FunctionSchema
from pipecat.adapters.llm.schemas.tools_schema import ToolsSchema
from pipecat.services.llm_service import FunctionCallParams

_OPERATORS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}
# Keeps an expression such as 9 ** 9 ** 9 from stalling the bot.
MAX_EXPONENT = 100


def evaluate(expression: str) -> int | float:
    """The value of an arithmetic expression: numbers, + - * / // % ** and parentheses.

    The expression is parsed, never run: anything else (names, calls, attributes) is refused.
    """

    def value(node: ast.AST) -> int | float:
        match node:
            case ast.Constant(value=bool()):
                pass
            case ast.Constant(value=int() | float() as number):
                return number
            case ast.UnaryOp(op=op, operand=operand) if type(op) in _OPERATORS:
                return _OPERATORS[type(op)](value(operand))
            case ast.BinOp(left=left, op=op, right=right) if type(op) in _OPERATORS:
                a, b = value(left), value(right)
                if isinstance(op, ast.Pow) and abs(b) > MAX_EXPONENT:
                    raise ValueError(f"exponents above {MAX_EXPONENT} are not supported")
                return _OPERATORS[type(op)](a, b)
        raise ValueError(f"not plain arithmetic: {ast.unparse(node)}")

    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as e:
        raise ValueError(f"not an arithmetic expression: {expression!r}") from e
    result = value(tree.body)
    if isinstance(result, complex):
        raise ValueError("the result is not a real number")
    # 84.0 is said "eighty-four"; long binary fractions are cut to what a listener can use.
    if isinstance(result, float) and result.is_integer():
        return int(result)
    return round(result, 10) if isinstance(result, float) else result


def current_time(timezone: str | None = None) -> dict[str, str]:
    """The date and time now, in `timezone` (an IANA name) or the server's own zone."""
    now = datetime.now(ZoneInfo(timezone)) if timezone else datetime.now().astimezone()
    return {
        "date": f"{now:%A, %B} {now.day}, {now.year}",
        "time": f"{now.hour % 12 or 12}:{now:%M %p}",
        "timezone": timezone or now.tzname() or "local",
    }


async def _calculate(params: FunctionCallParams) -> None:
    expression = str(params.arguments.get("expression", ""))
    result: dict[str, Any] = {"expression": expression}
    try:
        result["result"] = evaluate(expression)
    except (ValueError, ZeroDivisionError, OverflowError) as e:
        result["error"] = str(e)
    await params.result_callback(result)


async def _get_current_time(params: FunctionCallParams) -> None:
    timezone = params.arguments.get("timezone") or None
    try:
        result: dict[str, str] = current_time(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        result = {"error": f"unknown time zone {timezone!r}"}
    await params.result_callback(result)


CALCULATE = FunctionSchema(
    name="calculate",
    description="Work out an arithmetic expression exactly. Use it for any sum beyond the trivial.",
    properties={
        "expression": {
            "type": "string",
            "description": "The expression in Python syntax, for example 12 * 7 or (3 + 4) ** 2.",
        }
    },
    required=["expression"],
    handler=_calculate,
)

GET_CURRENT_TIME = FunctionSchema(
    name="get_current_time",
    description="The current date and time. Use it whenever the user asks about today or now.",
    properties={
        "timezone": {
            "type": "string",
            "description": "An IANA time zone such as Europe/Paris; leave it out for local time.",
        }
    },
    required=[],
    handler=_get_current_time,
)

TOOLS = ToolsSchema(standard_tools=[GET_CURRENT_TIME, CALCULATE])
