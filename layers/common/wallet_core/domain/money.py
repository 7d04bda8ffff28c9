"""Money is an integer number of minor units with a currency; never a float."""

from __future__ import annotations

MIN_AMOUNT = 1
MAX_AMOUNT = 10**15  # below 2**53 so JavaScript clients stay exact

DEFAULT_CURRENCIES = ("USD", "EUR", "GBP", "NGN", "KES", "GHS", "ZAR", "JPY")

# No posted balance may exceed 2^53 - 1: every figure we hand out (balance, available,
# balance_after) stays exact in JavaScript, and sums of bigints stay far from overflowing.
MAX_BALANCE = 2**53 - 1
