"""ISINs: validation and the small built-in ISIN -> ticker table.

European brokers (DEGIRO) key positions by ISIN, not by ticker. The table below holds
only long-established US-listed funds of the default fund map: a US ISIN is ``US`` +
the fund's 9-character CUSIP + a check digit; the CUSIPs were cross-checked against
several independent public ISIN lists and the check digits are verified by the tests.
Funds whose ISIN could not be confirmed that way (the newer stacked funds such as RSSB
and NTSX, leveraged funds, IAU after its 2021 split) are left out on purpose, as are
UCITS ETFs (VWCE ...): they are listed as unmapped for the user to map once.
"""

from __future__ import annotations

import re
from types import MappingProxyType

_ISIN_RE = re.compile(r"^[A-Z]{2}[A-Z0-9]{9}[0-9]$")

#: ISIN -> ticker for funds of the default fund map (US share classes only).
ISIN_TO_TICKER = MappingProxyType(
    {
        "US78462F1030": "SPY",  # SPDR S&P 500 ETF Trust, CUSIP 78462F103
        "US9229083632": "VOO",  # Vanguard S&P 500 ETF, CUSIP 922908363
        "US9229087690": "VTI",  # Vanguard Total Stock Market ETF, CUSIP 922908769
        "US9220427424": "VT",  # Vanguard Total World Stock ETF, CUSIP 922042742
        "US9219438580": "VEA",  # Vanguard FTSE Developed Markets ETF, CUSIP 921943858
        "US9220428588": "VWO",  # Vanguard FTSE Emerging Markets ETF, CUSIP 922042858
        "US4642876555": "IWM",  # iShares Russell 2000 ETF, CUSIP 464287655
        "US4642874659": "EFA",  # iShares MSCI EAFE ETF, CUSIP 464287465
        "US4642872349": "EEM",  # iShares MSCI Emerging Markets ETF, CUSIP 464287234
        "US4642874402": "IEF",  # iShares 7-10 Year Treasury Bond ETF, CUSIP 464287440
        "US4642874329": "TLT",  # iShares 20+ Year Treasury Bond ETF, CUSIP 464287432
        "US78463V1070": "GLD",  # SPDR Gold Shares, CUSIP 78463V107
    }
)


def looks_like_isin(text: str) -> bool:
    """Two letters, nine letters/digits, one digit (format only, no check digit)."""
    return bool(_ISIN_RE.match(text.strip().upper()))


def isin_check_digit_ok(isin: str) -> bool:
    """True when the ISIN's last digit is its ISO 6166 (Luhn) check digit."""
    isin = isin.strip().upper()
    if not looks_like_isin(isin):
        return False
    digits = "".join(str(int(ch, 36)) for ch in isin[:-1])
    total = 0
    # Luhn from the right of the payload: double every other digit starting rightmost.
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return (10 - total % 10) % 10 == int(isin[-1])


def ticker_for_isin(isin: str) -> str | None:
    return ISIN_TO_TICKER.get(isin.strip().upper())
