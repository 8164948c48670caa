"""Pre-inception history: each fund's real returns, and its exposure-synthesised ones before.

A stacked fund such as RSSB has two years of prices, but its exposures (global equity and
Treasury futures) have decades. :func:`build_synthetic_history` splices, per fund,

* the fund's REAL returns from its first real return on (gaps inside the real history are
  kept missing, never patched), and
* before that, the returns its exposure map implies,
  ``r_cash + sum_k e_k (r_k - r_cash) - costs / ppy``
  (:func:`core.market_data.synthesize_fund_returns`),

and reports, for every fund that got a synthetic part, which periods are synthetic
(``periods``) and how well the synthetic series tracks the real one where both exist
(``fits``: the evidence that justifies the splice, issue 13 point 4).

Everything here works at one frequency: the frequency of the exposure returns given
(monthly for the shared exposure panel, daily for ETF proxies). Fits of daily series are
measured on weekly compounded returns, because the daily closes of funds holding foreign
assets are asynchronous with US closes and would understate a good fit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from core.errors import DataError
from core.exposures import FundExposureMap
from core.fund_fit import SyntheticFit, compare_synthetic
from core.market_data import annualization_factor, splice_history, synthesize_fund_returns

__all__ = ["SyntheticFit", "SyntheticHistory", "build_synthetic_history", "compare_synthetic"]


@dataclass
class SyntheticHistory:
    """Spliced fund returns and the record of what is synthetic.

    Attributes
    ----------
    returns : DataFrame, shape (periods, funds)
        Real returns where they exist, synthetic ones before each fund's first real return.
    synthetic : DataFrame, shape (periods, funds)
        The full synthetic series of every fund (for charts of synthetic vs real).
    periods : dict[str, tuple[Timestamp, Timestamp]]
        Funds with a synthetic part -> (first, last) synthetic period.
    fits : dict[str, SyntheticFit]
        Every fund synthesised (including those with no synthetic part in the window).
    notes : list of str
        Funds that could not be synthesised and why.
    """

    returns: pd.DataFrame
    synthetic: pd.DataFrame
    periods: dict[str, tuple[pd.Timestamp, pd.Timestamp]] = field(default_factory=dict)
    fits: dict[str, SyntheticFit] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def describe(self) -> list[str]:
        """One line per synthetic fund: which periods, and the fit that justifies it."""
        lines = []
        for sym, (first, last) in self.periods.items():
            fit = self.fits.get(sym)
            why = fit.describe() if fit is not None else f"{sym}: no fit"
            lines.append(f"{sym} synthetic {first:%Y-%m-%d}..{last:%Y-%m-%d}; {why}")
        return lines + list(self.notes)


def _frequency_of(index: pd.DatetimeIndex) -> str:
    if len(index) < 3:
        return "monthly"
    gap = float(np.median(np.diff(index.values).astype("timedelta64[s]").astype(float))) / 86_400
    if gap > 20:
        return "monthly"
    if gap > 4:
        return "weekly"
    return "daily"


def build_synthetic_history(
    real_returns: pd.DataFrame,
    fund_map: FundExposureMap,
    exposure_returns: pd.DataFrame,
    cash_returns: pd.Series,
    *,
    symbols: Sequence[str] | None = None,
    first_prices: Mapping[str, pd.Timestamp | None] | None = None,
    haircuts: Mapping[str, float] | None = None,
) -> SyntheticHistory:
    """Splice exposure-synthesised returns before each fund's first real return.

    Parameters
    ----------
    real_returns : DataFrame, shape (periods, funds)
        The funds' own returns at the exposure returns' frequency, NaN before inception.
    fund_map : FundExposureMap
        Exposures (percent of NAV) and costs of every fund in ``symbols``.
    exposure_returns : DataFrame, shape (periods, types)
        Returns of the exposure types, columns named by type code (the shared monthly
        panel, or ETF proxies' daily returns).
    cash_returns : Series, shape (periods,)
        Cash (bill) return per period, the financing rate of the synthetic leverage.
    symbols : sequence of str, optional
        Funds to splice; default every column of ``real_returns`` in the fund map.
    first_prices : mapping, optional
        Symbol -> first price date, reported in the fits (the switch happens at the first
        RETURN, one period later).
    haircuts : mapping, optional
        Exposure type code -> annual return (fraction) taken off that type's returns
        before synthesis, for proxies known to overstate what a fund could earn (the
        panel's managed-futures series is gross of fees). Applied to the synthetic part
        only, and reported by the caller.

    Returns
    -------
    SyntheticHistory
        ``returns`` on the union of both indices, columns in ``symbols`` order.

    Raises
    ------
    DataError
        A fund has neither real returns nor every exposure series it needs.
    """
    freq = _frequency_of(pd.DatetimeIndex(exposure_returns.index))
    ppy = annualization_factor(freq)
    syms = (
        [s for s in real_returns.columns if s in fund_map]
        if symbols is None
        else [str(s).upper() for s in symbols]
    )
    exposure = exposure_returns.copy()
    exposure.columns = [str(c).upper() for c in exposure.columns]
    for code, cut in (haircuts or {}).items():
        code = str(code).upper()
        if code in exposure.columns and cut:
            exposure[code] = exposure[code] - float(cut) / ppy
    index = pd.DatetimeIndex(real_returns.index).union(pd.DatetimeIndex(exposure.index))
    cash = cash_returns.reindex(index)
    exposure = exposure.reindex(index)
    real = real_returns.reindex(index)
    out: dict[str, pd.Series] = {}
    synth_all: dict[str, pd.Series] = {}
    history = SyntheticHistory(returns=pd.DataFrame(index=index), synthetic=pd.DataFrame())
    for sym in syms:
        fund = fund_map[sym]
        own = real[sym] if sym in real.columns else pd.Series(np.nan, index=index, name=sym)
        own = own.astype(float).rename(sym)
        try:
            synth = synthesize_fund_returns(fund, exposure, cash, ppy)
        except DataError as exc:
            if own.notna().any():
                history.notes.append(f"{sym}: not synthesised before inception ({exc.reason})")
                out[sym] = own
                continue
            raise DataError(
                f"{sym} has no prices and cannot be synthesised: {exc.reason}", column=sym
            ) from exc
        synth_all[sym] = synth
        first_price = None if first_prices is None else first_prices.get(sym)
        first_real = own.first_valid_index()
        if first_real is not None:
            spliced, _ = splice_history(own, synth)
            spliced = spliced.reindex(index)
            synthetic_part = synth.loc[synth.index < first_real].dropna()
        else:
            spliced = synth.copy()
            synthetic_part = synth.dropna()
        out[sym] = spliced.rename(sym)
        history.fits[sym] = compare_synthetic(own, synth, freq, symbol=sym, first_price=first_price)
        if not synthetic_part.empty:
            history.periods[sym] = (
                pd.Timestamp(synthetic_part.index[0]),
                pd.Timestamp(synthetic_part.index[-1]),
            )
    history.returns = pd.DataFrame(out, index=index)[list(out)]
    history.synthetic = pd.DataFrame(synth_all, index=index)
    return history
