"""Exposure-level market assumptions and their projection onto funds.

Units
-----
Everything here is ANNUAL and in FRACTIONS: an expected excess return of 0.05 is 5% a year
over cash, a volatility of 0.15 is 15% a year. Returns are arithmetic excess returns over
the cash rate, the quantity the fund model of the spec adds up::

    r_fund - r_cash = sum_k e_k (r_k - r_cash) - expense - spread * (notional - 1) + noise

so a fund's expected excess return is ``E' mu_x - costs`` and its covariance is
``E' Sigma_x E + D`` (:meth:`MarketAssumptions.fund_expected_returns`,
:meth:`MarketAssumptions.fund_covariance`).

The built-in assumptions (``resources/market_assumptions.json``) are produced by
:func:`estimate_assumptions_from_panel` from the shared monthly exposure panel; the script
``scripts/build_assumptions.py`` only reads the files and calls it.
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.errors import DataError, StackOptWarning, ValidationError
from core.exposures import (
    BUILTIN_EXPOSURE_TYPES,
    AssetGroup,
    ExposureCalculator,
    ExposureType,
    FundDefinition,
    FundExposureMap,
)
from core.linalg import nearest_correlation as _nearest_correlation

MONTHS_PER_YEAR = 12
#: A JSON list of plain numbers spread over lines (strings never hold a raw newline).
_NUMBER_LIST = re.compile(r"\[\n\s*((?:-?[0-9][0-9.eE+-]*,\s*)*-?[0-9][0-9.eE+-]*)\s*\]")

#: Asymmetry or diagonal error up to this is repaired with a warning; beyond it is refused.
MILD_CORRELATION_ERROR = 0.02
#: A correlation matrix whose smallest eigenvalue is at least this is projected to the
#: nearest correlation matrix with a warning; below it the entries contradict each other.
REPAIRABLE_MIN_EIGENVALUE = -0.05
#: Deviations below this (floating-point noise) are fixed without a warning.
_SILENT = 1e-10
#: Smallest eigenvalue kept by the repair (keeps the covariance positive definite).
REPAIR_EIGENVALUE_FLOOR = 1e-6
#: Above these an input is taken for a unit mistake (percent typed where a fraction belongs).
MAX_ABS_EXCESS_RETURN = 1.0
MAX_VOLATILITY = 2.0

#: Default idiosyncratic (tracking) volatility per unit of risky notional, see
#: :func:`default_idiosyncratic_vol`.
IDIOSYNCRATIC_VOL_PER_NOTIONAL = 0.01
#: ... and at least this much, so that no two funds are ever perfectly correlated.
IDIOSYNCRATIC_VOL_FLOOR = 0.001

#: Volatility given to the CASH_TBILL exposure. Its excess return over cash is zero by
#: definition; a bill fund still wanders a little around the quoted bill rate, and a
#: non-zero value keeps every covariance matrix built from these assumptions positive definite.
CASH_VOLATILITY = 0.005

#: Judgmental assumptions for exposure types without a public return history.
#: Numbers are annual fractions; ``correlations`` pairs not listed are 0.
JUDGMENTAL_ASSUMPTIONS: dict[str, dict[str, Any]] = {
    "CARRY": {
        "expected_excess_return": 0.03,
        "volatility": 0.08,
        "correlations": {
            "US_EQUITY": 0.2, "US_SMALL": 0.2, "INTL_DEV": 0.2, "EM_EQUITY": 0.2,
            "UST_10Y": 0.1, "UST_LONG": 0.1, "GOLD": 0.0, "COMMODITIES": 0.1,
            "MANAGED_FUT": 0.1, "MERGER_ARB": 0.1,
        },
        "rationale": (
            "Diversified multi-asset futures carry at a 8% volatility target and a Sharpe "
            "ratio of ~0.38 after the fund's own trading costs, in line with the other "
            "exposures; low positive correlations with equities and bonds as reported for "
            "global carry factors by Koijen, Moskowitz, Pedersen and Vrugt (2018, 'Carry', "
            "Journal of Financial Economics)."
        ),
    },
    "MERGER_ARB": {
        "expected_excess_return": 0.02,
        "volatility": 0.05,
        "correlations": {
            "US_EQUITY": 0.45, "US_SMALL": 0.45, "INTL_DEV": 0.4, "EM_EQUITY": 0.35,
            "UST_10Y": 0.0, "UST_LONG": 0.0, "GOLD": 0.0, "COMMODITIES": 0.15,
            "MANAGED_FUT": 0.0, "CARRY": 0.1,
        },
        "rationale": (
            "Index-based merger arbitrage (long targets, short acquirers) at ~5% volatility. "
            "The mean is set at a Sharpe ratio of 0.4, below the 0.5 a 2.5% return would imply, "
            "because its volatility understates a short-put-like crash risk: Mitchell and "
            "Pulvino (2001, 'Characteristics of risk and return in risk arbitrage', Journal of "
            "Finance) find a near-zero market beta in flat or rising markets and about 0.5 in "
            "severe declines, hence the moderate equity correlations."
        ),
    },
}  # fmt: skip

_SOURCE_JUDGMENTAL = "judgmental assumption"


# ----------------------------------------------------------------------------- helpers
def _finite(value: Any, what: str, field: str) -> float:
    if isinstance(value, bool):
        raise ValidationError(f"{what} must be a number, got {value!r}", field=field)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValidationError(f"{what} must be a number, got {value!r}", field=field) from None
    if not math.isfinite(number):
        raise ValidationError(f"{what} must be finite, got {value!r}", field=field)
    return number


def nearest_correlation(
    matrix: np.ndarray,
    *,
    min_eigenvalue: float = REPAIR_EIGENVALUE_FLOOR,
    max_iter: int = 1000,
    tol: float = 1e-12,
) -> np.ndarray:
    """Nearest positive definite correlation matrix (Higham 2002; see :mod:`core.linalg`).

    The eigenvalue floor defaults to :data:`REPAIR_EIGENVALUE_FLOOR` so that a repaired
    assumption set stays strictly positive definite.
    """
    return _nearest_correlation(matrix, min_eigenvalue=min_eigenvalue, max_iter=max_iter, tol=tol)


def _check_correlation(
    matrix: np.ndarray, codes: Sequence[str]
) -> tuple[np.ndarray, list[str], float | None]:
    """Validate a correlation matrix; return (matrix, repair notes, min eigenvalue before repair).

    Raises :class:`ValidationError` when the matrix is not a correlation matrix at all.
    """
    n = len(codes)
    c = np.asarray(matrix, dtype=float)
    if c.shape != (n, n):
        raise ValidationError(
            f"correlation matrix has shape {c.shape}; expected ({n}, {n}), one row and column "
            f"per exposure type ({', '.join(codes)})",
            field="correlation.matrix",
        )
    if not np.all(np.isfinite(c)):
        i, j = np.argwhere(~np.isfinite(c))[0]
        raise ValidationError(
            f"correlation of {codes[i]} with {codes[j]} is not a finite number",
            field=f"correlation.{codes[i]}.{codes[j]}",
        )
    notes: list[str] = []
    diag_err = np.abs(np.diag(c) - 1.0)
    if n and diag_err.max() > MILD_CORRELATION_ERROR:
        k = int(np.argmax(diag_err))
        raise ValidationError(
            f"not a correlation matrix: the diagonal entry of {codes[k]} is {c[k, k]:g}; "
            "every type correlates 1 with itself",
            field=f"correlation.{codes[k]}.{codes[k]}",
        )
    off = np.abs(c) - np.diag(np.diag(np.abs(c)))
    if n and off.max() > 1.0 + 1e-9:
        i, j = np.unravel_index(np.argmax(off), c.shape)
        raise ValidationError(
            f"not a correlation matrix: correlation of {codes[i]} with {codes[j]} is "
            f"{c[i, j]:g}, outside [-1, 1]",
            field=f"correlation.{codes[i]}.{codes[j]}",
        )
    asym = np.abs(c - c.T)
    if n and asym.max() > MILD_CORRELATION_ERROR:
        i, j = np.unravel_index(np.argmax(asym), c.shape)
        raise ValidationError(
            f"not a correlation matrix: correlation({codes[i]}, {codes[j]}) = {c[i, j]:g} but "
            f"correlation({codes[j]}, {codes[i]}) = {c[j, i]:g}; the matrix must be symmetric",
            field=f"correlation.{codes[i]}.{codes[j]}",
        )
    # Rounding noise (below _SILENT) is fixed quietly; anything larger is reported.
    if n and diag_err.max() > _SILENT:
        notes.append(f"diagonal set to 1 (largest error {diag_err.max():.2g})")
    if n and asym.max() > _SILENT:
        notes.append(f"made symmetric (largest asymmetry {asym.max():.2g})")
    if n:
        c = (c + c.T) / 2.0
        np.fill_diagonal(c, 1.0)
    min_eig_before: float | None = None
    if n:
        min_eig = float(np.linalg.eigvalsh(c).min())
        if min_eig < REPAIRABLE_MIN_EIGENVALUE:
            raise ValidationError(
                f"the correlations contradict each other: the matrix is not positive "
                f"semidefinite (smallest eigenvalue {min_eig:.3f}; only matrices whose smallest "
                f"eigenvalue is above {REPAIRABLE_MIN_EIGENVALUE} are repaired automatically). "
                "Lower the largest correlations "
                "of the types you edited, e.g. a type cannot correlate strongly with two types "
                "that are uncorrelated with each other",
                field="correlation.matrix",
            )
        if min_eig < -_SILENT:
            repaired = nearest_correlation(c)
            notes.append(
                f"projected to the nearest correlation matrix (smallest eigenvalue was "
                f"{min_eig:.3g}; largest change {np.abs(repaired - c).max():.3g})"
            )
            c = repaired
            min_eig_before = min_eig
    return c, notes, min_eig_before


# ------------------------------------------------------------------------------ class
class MarketAssumptions:
    """Expected excess returns, volatilities and correlations of exposure types.

    Parameters
    ----------
    expected_excess_returns : pd.Series, shape (K,)
        Annual arithmetic expected return over cash per exposure type code (fractions).
    volatilities : pd.Series, shape (K,)
        Annual volatility of the excess return per type (fractions, >= 0).
    correlation : pd.DataFrame, shape (K, K)
        Correlation matrix of the excess returns, rows and columns labelled by code.
        Slightly asymmetric or indefinite matrices are repaired with a
        :class:`~core.errors.StackOptWarning`; matrices that are not correlations at all
        raise :class:`~core.errors.ValidationError`.
    cash_rate : float
        Annual cash (3-month T-bill) rate, fraction.
    sources : dict, optional
        Where each number came from: keys are type codes, ``"cash_rate"`` and ``"correlation"``.
    method : str, optional
        How the numbers were produced.
    details : dict, optional
        Extra per-entry information kept for display and round trips (windows, components);
        keys as for ``sources``.
    metadata : dict, optional
        Extra top-level information (as-of date, estimation parameters).
    exposure_types : iterable of ExposureType, optional
        Custom (user) types allowed besides the built-in ones.

    Attributes
    ----------
    codes : list of str
        The exposure type codes, in order.
    repairs : list of str
        What was repaired on construction (empty when nothing was).
    """

    FORMAT = "stackopt-market-assumptions"
    VERSION = 1

    def __init__(
        self,
        expected_excess_returns: pd.Series | Mapping[str, float],
        volatilities: pd.Series | Mapping[str, float],
        correlation: pd.DataFrame,
        cash_rate: float,
        *,
        sources: Mapping[str, str] | None = None,
        method: str = "",
        details: Mapping[str, Mapping[str, Any]] | None = None,
        metadata: Mapping[str, Any] | None = None,
        exposure_types: Iterable[ExposureType] | None = None,
    ):
        self.exposure_types: dict[str, ExposureType] = dict(BUILTIN_EXPOSURE_TYPES)
        for t in exposure_types or ():
            self.exposure_types[t.code] = t
        mu = pd.Series(expected_excess_returns, dtype=object)
        vol = pd.Series(volatilities, dtype=object)
        codes = [str(c).strip().upper() for c in mu.index]
        mu.index = codes
        vol.index = [str(c).strip().upper() for c in vol.index]
        if len(set(codes)) != len(codes):
            dup = sorted({c for c in codes if codes.count(c) > 1})
            raise ValidationError(
                f"exposure type(s) listed twice: {', '.join(dup)}", field=f"exposures.{dup[0]}"
            )
        unknown = [c for c in codes if c not in self.exposure_types]
        if unknown:
            raise ValidationError(
                f"unknown exposure type(s) {', '.join(unknown)}; use a built-in type "
                f"({', '.join(BUILTIN_EXPOSURE_TYPES)}) or declare it as a custom type",
                field=f"exposures.{unknown[0]}",
            )
        if set(vol.index) != set(codes):
            missing = sorted(set(codes) ^ set(vol.index))
            raise ValidationError(
                f"expected returns and volatilities must name the same types; mismatch: "
                f"{', '.join(missing)}",
                field=f"exposures.{missing[0]}",
            )
        mu_v = [
            _finite(mu[c], f"{c}: expected excess return", f"exposures.{c}.expected_excess_return")
            for c in codes
        ]
        vol_v = [_finite(vol[c], f"{c}: volatility", f"exposures.{c}.volatility") for c in codes]
        for c, m, s in zip(codes, mu_v, vol_v, strict=True):
            if abs(m) > MAX_ABS_EXCESS_RETURN:
                raise ValidationError(
                    f"{c}: expected excess return {m:g} is over 100% a year; enter fractions "
                    "(0.05 for 5%)",
                    field=f"exposures.{c}.expected_excess_return",
                )
            if s < 0 or s > MAX_VOLATILITY:
                raise ValidationError(
                    f"{c}: volatility {s:g} must be between 0 and {MAX_VOLATILITY:g}; enter "
                    "fractions (0.15 for 15%)",
                    field=f"exposures.{c}.volatility",
                )
        cash = _finite(cash_rate, "cash rate", "cash_rate")
        if not -0.05 <= cash <= 0.5:
            raise ValidationError(
                f"cash rate {cash:g} is outside -5%..50% a year; enter a fraction (0.04 for 4%)",
                field="cash_rate",
            )
        if not isinstance(correlation, pd.DataFrame):
            raise ValidationError(
                "correlation must be a labelled table (DataFrame)", field="correlation"
            )
        corr_df = correlation.copy()
        corr_df.index = [str(c).strip().upper() for c in corr_df.index]
        corr_df.columns = [str(c).strip().upper() for c in corr_df.columns]
        if set(corr_df.index) != set(codes) or set(corr_df.columns) != set(codes):
            diff = sorted((set(corr_df.index) | set(corr_df.columns)) ^ set(codes))
            raise ValidationError(
                "the correlation matrix must have one row and one column per exposure type; "
                f"mismatch: {', '.join(diff)}",
                field="correlation.codes",
            )
        try:
            raw = corr_df.loc[codes, codes].to_numpy(dtype=float)
        except (TypeError, ValueError) as exc:
            raise ValidationError(
                f"correlation entries must be numbers ({exc})", field="correlation.matrix"
            ) from None
        matrix, repairs, min_eig_before = _check_correlation(raw, codes)
        self.codes: list[str] = codes
        self.expected_excess_returns = pd.Series(mu_v, index=codes, dtype=float)
        self.volatilities = pd.Series(vol_v, index=codes, dtype=float)
        self.correlation = pd.DataFrame(matrix, index=codes, columns=codes)
        self.cash_rate = cash
        self.sources: dict[str, str] = {str(k): str(v) for k, v in (sources or {}).items()}
        self.method = str(method)
        self.details: dict[str, dict[str, Any]] = copy.deepcopy(
            {str(k): dict(v) for k, v in (details or {}).items()}
        )
        self.metadata: dict[str, Any] = copy.deepcopy(dict(metadata or {}))
        self.repairs = repairs
        if repairs:
            corr_details = self.details.setdefault("correlation", {})
            corr_details["repaired_on_load"] = "; ".join(repairs)
            if min_eig_before is not None:
                corr_details["min_eigenvalue_before_repair"] = min_eig_before
            warnings.warn(
                "correlation matrix repaired: " + "; ".join(repairs), StackOptWarning, stacklevel=2
            )

    # ------------------------------------------------------------------ access
    def __repr__(self) -> str:
        return f"MarketAssumptions({len(self.codes)} types, cash_rate={self.cash_rate:.4f})"

    def __contains__(self, code: object) -> bool:
        return isinstance(code, str) and code.upper() in self.codes

    @property
    def min_eigenvalue(self) -> float:
        """Smallest eigenvalue of the correlation matrix (> 0 means positive definite)."""
        return float(np.linalg.eigvalsh(self.correlation.to_numpy()).min())

    def sharpe_ratios(self) -> pd.Series:
        """Expected excess return over volatility per type (NaN where volatility is 0)."""
        vol = self.volatilities.replace(0.0, np.nan)
        return self.expected_excess_returns / vol

    def to_frame(self) -> pd.DataFrame:
        """One row per type: expected excess return, volatility, Sharpe ratio, source."""
        return pd.DataFrame(
            {
                "expected_excess_return": self.expected_excess_returns,
                "volatility": self.volatilities,
                "sharpe_ratio": self.sharpe_ratios(),
                "source": [self.sources.get(c, "") for c in self.codes],
            }
        )

    def _check_codes(self, codes: Iterable[str] | None) -> list[str]:
        if codes is None:
            return list(self.codes)
        out = [str(c).strip().upper() for c in codes]
        missing = [c for c in out if c not in self.codes]
        if missing:
            raise ValidationError(
                f"no market assumptions for exposure type(s) {', '.join(missing)}; add them "
                "with MarketAssumptions.with_type(...)",
                field="exposure_types",
            )
        return out

    def covariance(self, codes: Iterable[str] | None = None) -> pd.DataFrame:
        """Annual covariance matrix of excess returns, ``diag(vol) R diag(vol)``.

        Parameters
        ----------
        codes : iterable of str, optional
            Types to include, in this order; default every type.

        Returns
        -------
        pd.DataFrame, shape (K, K)
        """
        sel = self._check_codes(codes)
        vol = self.volatilities[sel].to_numpy()
        corr = self.correlation.loc[sel, sel].to_numpy()
        return pd.DataFrame(corr * np.outer(vol, vol), index=sel, columns=sel)

    # ---------------------------------------------------------------- editing
    def with_type(
        self,
        code: str,
        excess_return: float,
        vol: float,
        correlations: Mapping[str, float] | None = None,
        *,
        name: str | None = None,
        group: AssetGroup | str = AssetGroup.ALTERNATIVES,
        source: str = "user assumption",
    ) -> MarketAssumptions:
        """A copy with one type added (or its numbers replaced).

        Parameters
        ----------
        code : str
            Type code; a new code becomes a custom exposure type.
        excess_return, vol : float
            Annual expected excess return and volatility, fractions.
        correlations : mapping code -> float, optional
            Correlations with existing types. For a new type the missing ones are 0; for an
            existing type the missing ones keep their current values.
        """
        code_u = str(code).strip().upper()
        types = [t for t in self.exposure_types.values() if not t.builtin]
        if code_u not in self.exposure_types:
            grp = group if isinstance(group, AssetGroup) else AssetGroup(str(group).lower())
            types.append(
                ExposureType.from_dict({"code": code_u, "name": name or code_u, "group": grp.value})
            )
        corr_in = {str(k).strip().upper(): v for k, v in (correlations or {}).items()}
        unknown = [k for k in corr_in if k not in self.codes and k != code_u]
        if unknown:
            raise ValidationError(
                f"correlations name type(s) without assumptions: {', '.join(unknown)}",
                field=f"correlation.{code_u}.{unknown[0]}",
            )
        codes = list(self.codes) if code_u in self.codes else [*self.codes, code_u]
        corr = self.correlation.reindex(index=codes, columns=codes).fillna(0.0)
        corr.loc[code_u, code_u] = 1.0
        for other, rho in corr_in.items():
            if other == code_u:
                continue
            value = _finite(rho, f"correlation of {code_u} with {other}", f"correlation.{other}")
            corr.loc[code_u, other] = value
            corr.loc[other, code_u] = value
        mu = self.expected_excess_returns.reindex(codes)
        vols = self.volatilities.reindex(codes)
        mu[code_u] = excess_return
        vols[code_u] = vol
        sources = dict(self.sources)
        sources[code_u] = source
        details = copy.deepcopy(self.details)
        details.pop(code_u, None)
        edited = MarketAssumptions(
            mu,
            vols,
            corr,
            self.cash_rate,
            sources=sources,
            method=self.method,
            details=details,
            metadata=self.metadata,
            exposure_types=types,
        )
        # The recorded eigenvalue described the old matrix.
        corr_details = edited.details.setdefault("correlation", {})
        corr_details["min_eigenvalue"] = edited.min_eigenvalue
        corr_details["user_edits"] = [*corr_details.get("user_edits", []), code_u]
        return edited

    # ------------------------------------------------------- fund projection
    def _calculator(self, fund_map: FundExposureMap, symbols: Sequence[str]) -> ExposureCalculator:
        calc = ExposureCalculator(fund_map, symbols)
        missing = [c for c in calc.exposure_types if c not in self.codes]
        if missing:
            users = [s for s in calc.symbols if any(fund_map[s].exposures.get(c) for c in missing)]
            raise ValidationError(
                f"no market assumptions for exposure type(s) {', '.join(missing)} used by "
                f"{', '.join(users)}; add them with MarketAssumptions.with_type(...) or on the "
                "Views tab",
                field="exposure_types",
            )
        return calc

    def fund_expected_returns(
        self,
        fund_map: FundExposureMap,
        symbols: Sequence[str],
        *,
        include_cash_rate: bool = False,
    ) -> pd.Series:
        """Expected annual return of each fund from its exposures: ``E' mu_x - costs``.

        Costs are :attr:`FundDefinition.annual_cost` (expense ratio plus financing spread on
        borrowed notional). With ``include_cash_rate`` the cash rate is added, giving total
        rather than excess returns.

        Returns
        -------
        pd.Series, shape (N,)
            Indexed by symbol, fractions per year.
        """
        calc = self._calculator(fund_map, symbols)
        mu_x = self.expected_excess_returns[calc.exposure_types].to_numpy()
        mu = calc.matrix.T @ mu_x - calc.annual_costs
        if include_cash_rate:
            mu = mu + self.cash_rate
        name = "expected_return" if include_cash_rate else "expected_excess_return"
        return pd.Series(mu, index=calc.symbols, name=name)

    def fund_covariance(
        self,
        fund_map: FundExposureMap,
        symbols: Sequence[str],
        idiosyncratic_vol: Mapping[str, float] | float | None = None,
    ) -> pd.DataFrame:
        """Annual covariance of fund excess returns: ``E' Sigma_x E + D``.

        Parameters
        ----------
        idiosyncratic_vol : mapping symbol -> float, float or None
            Annual idiosyncratic (tracking) volatility per fund, the square root of D's
            diagonal. A float applies to every fund (0 gives ``D = 0``: two funds with the
            same exposures, e.g. SPY and VOO, or SSO and 2x VOO, are then perfectly
            correlated and the matrix is singular). Funds missing from a mapping, and every
            fund when None, get :func:`default_idiosyncratic_vol`.

        Returns
        -------
        pd.DataFrame, shape (N, N)
        """
        calc = self._calculator(fund_map, symbols)
        sigma_x = self.covariance(calc.exposure_types).to_numpy()
        e = calc.matrix
        cov = e.T @ sigma_x @ e
        given = (
            {str(k).upper(): v for k, v in idiosyncratic_vol.items()}
            if isinstance(idiosyncratic_vol, Mapping)
            else None
        )
        idio = np.empty(len(calc.symbols))
        for i, s in enumerate(calc.symbols):
            value = given.get(s) if given is not None else idiosyncratic_vol
            if value is None:
                idio[i] = default_idiosyncratic_vol(fund_map[s])
            else:
                idio[i] = _finite(value, f"{s}: idiosyncratic volatility", "idiosyncratic_vol")
                if idio[i] < 0:
                    raise ValidationError(
                        f"{s}: idiosyncratic volatility must be >= 0, got {value!r}",
                        field="idiosyncratic_vol",
                    )
        cov = (cov + cov.T) / 2.0 + np.diag(idio**2)
        return pd.DataFrame(cov, index=calc.symbols, columns=calc.symbols)

    # ------------------------------------------------------------- serialise
    def to_dict(self) -> dict[str, Any]:
        """The JSON document (see ``resources/market_assumptions.json``)."""
        custom = [t.to_dict() for t in self.exposure_types.values() if not t.builtin]
        exposures: dict[str, Any] = {}
        for c in self.codes:
            entry: dict[str, Any] = {
                "expected_excess_return": float(self.expected_excess_returns[c]),
                "volatility": float(self.volatilities[c]),
                "source": self.sources.get(c, ""),
            }
            entry.update({k: v for k, v in self.details.get(c, {}).items() if k not in entry})
            exposures[c] = entry
        cash: dict[str, Any] = {
            "value": float(self.cash_rate),
            "source": self.sources.get("cash_rate", ""),
        }
        cash.update({k: v for k, v in self.details.get("cash_rate", {}).items() if k not in cash})
        corr: dict[str, Any] = {
            "codes": list(self.codes),
            "matrix": [[float(x) for x in row] for row in self.correlation.to_numpy()],
            "source": self.sources.get("correlation", ""),
        }
        corr.update({k: v for k, v in self.details.get("correlation", {}).items() if k not in corr})
        doc: dict[str, Any] = {"format": self.FORMAT, "version": self.VERSION}
        doc.update(
            {k: v for k, v in self.metadata.items() if k not in ("format", "version", "method")}
        )
        doc["method"] = self.method
        doc["exposure_types"] = custom
        doc["cash_rate"] = cash
        doc["exposures"] = exposures
        doc["correlation"] = corr
        return copy.deepcopy(doc)

    @classmethod
    def from_dict(
        cls,
        data: Mapping[str, Any],
        *,
        exposure_types: Iterable[ExposureType] | None = None,
        source: str = "market assumptions",
    ) -> MarketAssumptions:
        """Read the JSON document; raise :class:`ValidationError` naming the bad field.

        ``exposure_types`` adds custom types known elsewhere (e.g. a fund map's).
        """
        if not isinstance(data, Mapping):
            raise ValidationError(f"{source}: expected a JSON object", field="format")
        fmt = data.get("format", cls.FORMAT)
        if fmt != cls.FORMAT:
            raise ValidationError(
                f"{source}: format {fmt!r} is not {cls.FORMAT!r}; is this a market assumptions "
                "file?",
                field="format",
            )
        version = data.get("version", cls.VERSION)
        if not isinstance(version, int) or version > cls.VERSION:
            raise ValidationError(
                f"{source}: version {version!r} is newer than this StackOpt reads "
                f"({cls.VERSION}); update StackOpt",
                field="version",
            )
        types_raw = data.get("exposure_types", [])
        if not isinstance(types_raw, list):
            raise ValidationError(
                f"{source}: 'exposure_types' must be a list", field="exposure_types"
            )
        types = [ExposureType.from_dict(t) for t in types_raw] + list(exposure_types or ())
        exposures = data.get("exposures")
        if not isinstance(exposures, Mapping) or not exposures:
            raise ValidationError(
                f"{source}: 'exposures' must be an object of type code -> "
                "{expected_excess_return, volatility, source}",
                field="exposures",
            )
        mu: dict[str, Any] = {}
        vol: dict[str, Any] = {}
        sources: dict[str, str] = {}
        details: dict[str, dict[str, Any]] = {}
        for code, entry in exposures.items():
            code_u = str(code).strip().upper()
            if not isinstance(entry, Mapping):
                raise ValidationError(
                    f"{source}: exposures.{code} must be an object", field=f"exposures.{code}"
                )
            for key in ("expected_excess_return", "volatility"):
                if key not in entry:
                    raise ValidationError(
                        f"{source}: exposures.{code} has no {key!r}",
                        field=f"exposures.{code}.{key}",
                    )
            mu[code_u] = entry["expected_excess_return"]
            vol[code_u] = entry["volatility"]
            sources[code_u] = str(entry.get("source", ""))
            details[code_u] = {
                k: v
                for k, v in entry.items()
                if k not in ("expected_excess_return", "volatility", "source")
            }
        cash_raw = data.get("cash_rate")
        if isinstance(cash_raw, Mapping):
            if "value" not in cash_raw:
                raise ValidationError(f"{source}: cash_rate has no 'value'", field="cash_rate")
            cash_value = cash_raw["value"]
            sources["cash_rate"] = str(cash_raw.get("source", ""))
            details["cash_rate"] = {
                k: v for k, v in cash_raw.items() if k not in ("value", "source")
            }
        elif cash_raw is not None:
            cash_value = cash_raw
        else:
            raise ValidationError(f"{source}: 'cash_rate' is missing", field="cash_rate")
        corr_raw = data.get("correlation")
        if not isinstance(corr_raw, Mapping) or "codes" not in corr_raw or "matrix" not in corr_raw:
            raise ValidationError(
                f"{source}: 'correlation' must be an object with 'codes' and 'matrix'",
                field="correlation",
            )
        corr_codes = [str(c).strip().upper() for c in corr_raw["codes"]]
        matrix = corr_raw["matrix"]
        if (
            not isinstance(matrix, list)
            or len(matrix) != len(corr_codes)
            or any(not isinstance(row, list) or len(row) != len(corr_codes) for row in matrix)
        ):
            raise ValidationError(
                f"{source}: correlation.matrix must be a {len(corr_codes)}x{len(corr_codes)} "
                "list of rows, one per code in correlation.codes",
                field="correlation.matrix",
            )
        numeric = [
            [
                _finite(x, f"correlation of {corr_codes[i]} with {corr_codes[j]}",
                        f"correlation.{corr_codes[i]}.{corr_codes[j]}")
                for j, x in enumerate(row)
            ]
            for i, row in enumerate(matrix)
        ]  # fmt: skip
        if len(set(corr_codes)) != len(corr_codes):
            raise ValidationError(
                f"{source}: correlation.codes lists a type twice", field="correlation.codes"
            )
        sources["correlation"] = str(corr_raw.get("source", ""))
        details["correlation"] = {
            k: v for k, v in corr_raw.items() if k not in ("codes", "matrix", "source")
        }
        metadata = {
            k: v
            for k, v in data.items()
            if k
            not in ("format", "version", "method", "exposure_types", "cash_rate", "exposures",
                    "correlation")
        }  # fmt: skip
        return cls(
            pd.Series(mu, dtype=object),
            pd.Series(vol, dtype=object),
            pd.DataFrame(numeric, index=corr_codes, columns=corr_codes),
            cash_value,
            sources=sources,
            method=str(data.get("method", "")),
            details=details,
            metadata=metadata,
            exposure_types=types,
        )

    @classmethod
    def from_json(
        cls,
        path: str | os.PathLike[str],
        *,
        exposure_types: Iterable[ExposureType] | None = None,
    ) -> MarketAssumptions:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8-sig"))
        except FileNotFoundError:
            raise DataError("file not found", path=str(path)) from None
        except UnicodeDecodeError as exc:
            raise DataError(f"not a UTF-8 text file: {exc.reason}", path=str(path)) from exc
        except json.JSONDecodeError as exc:
            raise DataError(
                f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
                path=str(path),
                row=exc.lineno,
            ) from exc
        return cls.from_dict(data, exposure_types=exposure_types, source=str(path))

    def to_json(self) -> str:
        text = json.dumps(self.to_dict(), indent=2, allow_nan=False)
        # One matrix row per line: lists of plain numbers are written on a single line.
        return _NUMBER_LIST.sub(lambda m: "[" + " ".join(m.group(1).split()) + "]", text)

    def save_json(self, path: str | os.PathLike[str]) -> None:
        from core.fileio import atomic_write_text

        atomic_write_text(path, self.to_json() + "\n")

    @classmethod
    def default(cls) -> MarketAssumptions:
        """The built-in assumptions shipped in ``resources/market_assumptions.json``."""
        from core.resources import resource_text

        return cls.from_dict(
            json.loads(resource_text("market_assumptions.json")),
            source="built-in market assumptions",
        )


def default_idiosyncratic_vol(fund: FundDefinition) -> float:
    """Default annual idiosyncratic volatility of a fund: 1% per unit of risky notional.

    ``max(0.01 * sum_k |e_k|, 0.001)`` over the fund's non-cash exposures (fractions): 1% for
    SPY, 1.5% for NTSX, 2% for RSSB, 3% for UPRO, the 0.1% floor for a T-bill fund. This is
    roughly the annualised weekly tracking error of such funds against their mapped proxies
    (index differences, futures roll, daily leverage reset, management), and it keeps funds
    with identical exposures (SPY and VOO, BIL and SGOV) from being perfectly correlated, so
    the fund covariance matrix stays positive definite. Pass measured values where a fund
    has history.
    """
    risky = sum(abs(v) for k, v in fund.exposures.items() if k != "CASH_TBILL") / 100.0
    return max(IDIOSYNCRATIC_VOL_PER_NOTIONAL * risky, IDIOSYNCRATIC_VOL_FLOOR)


# -------------------------------------------------------------------------- estimation
def read_exposure_panel(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a monthly exposure panel CSV (first column: month-end dates; one column per type).

    Returns
    -------
    pd.DataFrame, shape (T, K)
        Simple monthly returns (decimal), DatetimeIndex, NaN before a series starts.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", path=str(path))
    try:
        panel = pd.read_csv(path, index_col=0, parse_dates=True)
    except (ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"cannot read the panel: {exc}", path=str(path)) from exc
    if not isinstance(panel.index, pd.DatetimeIndex):
        raise DataError("the first column must hold dates", path=str(path), column="date")
    panel.index.name = "date"
    return panel


def _describe_sources(labels: pd.Series) -> str:
    """'A 1926-07..2025-07; B 2025-08..2026-07' from a column of per-month source labels."""
    col = labels.fillna("").astype(str)
    runs = (col != col.shift()).cumsum()
    parts = []
    for _, run in col.groupby(runs):
        if run.iloc[0]:
            parts.append(f"{run.iloc[0]} {run.index[0]:%Y-%m}..{run.index[-1]:%Y-%m}")
    return "; ".join(parts)


def _span(series: pd.Series) -> str:
    s = series.dropna()
    return f"{s.index[0]:%Y-%m}..{s.index[-1]:%Y-%m} ({len(s)} months)"


def estimate_assumptions_from_panel(
    panel: pd.DataFrame,
    *,
    sources: pd.DataFrame | None = None,
    cov_start: str | None = None,
    history_weight: float = 0.5,
    prior_sharpe: float = 0.25,
    managed_futures_fee: float = 0.02,
    managed_futures_keep: float = 0.5,
    cash_months: int = 12,
    cash_volatility: float = CASH_VOLATILITY,
    judgmental: Mapping[str, Mapping[str, Any]] | None = None,
    panel_name: str = "exposure_monthly_returns.csv",
    decimals: int = 10,
) -> MarketAssumptions:
    """Estimate exposure-level assumptions from a monthly return panel.

    Method (recorded in the result's ``method`` and ``metadata``):

    * Excess return of type k in month t: ``r_k,t - r_CASH_TBILL,t``.
    * Volatilities and correlations: sample statistics of monthly excess returns over the
      covariance window, annualised (``sqrt(12)``). By default the window is the longest one
      in which every series has data (from the latest series start to the end); with
      ``cov_start`` set earlier, correlations are pairwise-complete and the matrix is
      repaired to the nearest correlation matrix if it is not positive semidefinite.
    * Historical mean: mean monthly excess return over each series' whole history, x 12
      (arithmetic). MANAGED_FUT's history is a gross-of-fee paper factor, so its historical
      component is ``managed_futures_keep * (mean - managed_futures_fee)``.
    * Prior: ``prior_sharpe * volatility`` (one Sharpe ratio for every type).
    * Expected excess return: ``history_weight * historical + (1 - history_weight) * prior``.
    * Types without a series (CARRY, MERGER_ARB): ``judgmental`` numbers, marked
      ``"source": "judgmental assumption"``.
    * CASH_TBILL: excess return 0 by definition, volatility ``cash_volatility``,
      uncorrelated with everything.
    * Cash rate: mean monthly CASH_TBILL return over the last ``cash_months`` months, x 12.

    Parameters
    ----------
    panel : pd.DataFrame, shape (T, K)
        Monthly simple returns, DatetimeIndex, one column per built-in type code, NaN before
        a series starts. Must contain CASH_TBILL.
    sources : pd.DataFrame, shape (T, K), optional
        Per-month source labels (same layout), used to name each number's source.

    Returns
    -------
    MarketAssumptions
    """
    if not isinstance(panel, pd.DataFrame) or not isinstance(panel.index, pd.DatetimeIndex):
        raise DataError("the panel must be a table with a date index", path=panel_name)
    unknown = [c for c in panel.columns if c not in BUILTIN_EXPOSURE_TYPES]
    if unknown:
        raise DataError(
            f"unknown exposure type column(s) {', '.join(map(str, unknown))}",
            path=panel_name,
            column=str(unknown[0]),
        )
    if "CASH_TBILL" not in panel.columns:
        raise DataError("the panel needs a CASH_TBILL column", path=panel_name, column="CASH_TBILL")
    if not panel.index.is_monotonic_increasing or panel.index.has_duplicates:
        raise DataError("dates must be increasing and unique", path=panel_name)
    data = panel.astype(float)
    if np.isinf(data.to_numpy()).any():
        col = data.columns[np.isinf(data.to_numpy()).any(axis=0)][0]
        raise DataError("infinite return", path=panel_name, column=str(col))
    cash = data["CASH_TBILL"]
    risky = [c for c in BUILTIN_EXPOSURE_TYPES if c in data.columns and c != "CASH_TBILL"]
    excess = data[risky].sub(cash, axis=0)
    for c in risky:
        s = excess[c].dropna()
        if len(s) < 36:
            raise DataError(
                f"{c} has {len(s)} months with both its return and the cash return; need 36",
                path=panel_name,
                column=c,
            )
        inner = excess[c].loc[s.index[0] : s.index[-1]]
        if inner.isna().any():
            gap = inner[inner.isna()].index[0]
            raise DataError(
                f"{c} has a gap at {gap:%Y-%m}; fill or trim it", path=panel_name, column=c
            )
    judg = {k: dict(v) for k, v in (judgmental or JUDGMENTAL_ASSUMPTIONS).items()}
    end = data.index[-1]
    common_start = max(excess[c].first_valid_index() for c in risky)
    start = pd.Timestamp(cov_start) if cov_start is not None else common_start
    window = excess.loc[start:]
    complete = bool(window.notna().all().all())
    vol_hist = window.std(ddof=1) * math.sqrt(MONTHS_PER_YEAR)
    corr_hist = window.corr(min_periods=36)
    if corr_hist.isna().to_numpy().any():
        raise DataError(
            f"the covariance window from {start:%Y-%m} leaves a pair of types with under 36 "
            "common months; start it later",
            path=panel_name,
        )

    def label(code: str) -> str:
        if sources is not None and code in sources.columns:
            described = _describe_sources(sources[code].reindex(data.index))
            if described:
                return f"{panel_name}: {described}"
        return f"{panel_name}: column {code}"

    codes = [c for c in BUILTIN_EXPOSURE_TYPES if c in data.columns or c in judg]
    mu: dict[str, float] = {}
    vol: dict[str, float] = {}
    src: dict[str, str] = {}
    details: dict[str, dict[str, Any]] = {}
    cov_window = f"{window.index[0]:%Y-%m}..{end:%Y-%m}"
    for c in codes:
        if c == "CASH_TBILL":
            mu[c], vol[c] = 0.0, float(cash_volatility)
            src[c] = "definition (excess return of cash over cash) and judgmental volatility"
            details[c] = {
                "note": (
                    "zero expected excess return by definition; a small volatility for bill "
                    "funds' drift around the quoted bill rate, uncorrelated with every type, "
                    "keeps covariance matrices positive definite"
                )
            }
        elif c in risky:
            s = excess[c].dropna()
            hist = float(s.mean() * MONTHS_PER_YEAR)
            hist_used = hist
            entry: dict[str, Any] = {}
            if c == "MANAGED_FUT":
                hist_used = managed_futures_keep * (hist - managed_futures_fee)
                entry["historical_mean_excess_gross"] = hist
                entry["haircut"] = (
                    f"gross-of-fee paper factor: minus {managed_futures_fee:g} fees and costs, "
                    f"then keep {managed_futures_keep:g} of the rest"
                )
            prior = prior_sharpe * float(vol_hist[c])
            mu[c] = history_weight * hist_used + (1.0 - history_weight) * prior
            vol[c] = float(vol_hist[c])
            src[c] = label(c)
            entry.update(
                {
                    "historical_mean_excess": hist_used,
                    "prior_excess": prior,
                    "mean_window": _span(s),
                    "volatility_window": _span(window[c]),
                }
            )
            details[c] = entry
        else:
            j = judg[c]
            mu[c] = float(j["expected_excess_return"])
            vol[c] = float(j["volatility"])
            src[c] = _SOURCE_JUDGMENTAL
            details[c] = {"rationale": str(j.get("rationale", ""))}

    corr = pd.DataFrame(np.eye(len(codes)), index=codes, columns=codes)
    corr.loc[risky, risky] = corr_hist.loc[risky, risky].to_numpy()
    pairs: dict[frozenset[str], float] = {}
    for c, j in judg.items():
        if c not in codes:
            continue
        for other, rho in dict(j.get("correlations", {})).items():
            if other not in codes or other in (c, "CASH_TBILL"):
                continue
            key = frozenset((c, other))
            if key in pairs and not math.isclose(pairs[key], float(rho)):
                raise ValidationError(
                    f"judgmental correlation of {c} with {other} is given twice with different "
                    "values",
                    field=f"correlation.{c}.{other}",
                )
            pairs[key] = float(rho)
            corr.loc[c, other] = corr.loc[other, c] = float(rho)
    matrix = corr.to_numpy()
    min_eig_raw = float(np.linalg.eigvalsh(matrix).min())
    repaired = min_eig_raw < REPAIR_EIGENVALUE_FLOOR
    if repaired:
        matrix = nearest_correlation(matrix)
    matrix = np.round(matrix, decimals)
    np.fill_diagonal(matrix, 1.0)
    min_eig = float(np.linalg.eigvalsh(matrix).min())

    cash_recent = cash.iloc[-cash_months:]
    cash_rate = float(cash_recent.mean() * MONTHS_PER_YEAR)
    cash_label = (
        _describe_sources(sources["CASH_TBILL"].reindex(cash_recent.index))
        if sources is not None and "CASH_TBILL" in sources.columns
        else "CASH_TBILL"
    )
    src["cash_rate"] = (
        f"{panel_name}: mean monthly CASH_TBILL return of the last {cash_months} months x 12 "
        f"({cash_label}), i.e. the recent 3-month T-bill yield"
    )
    src["correlation"] = (
        f"{panel_name}: sample correlations of monthly excess returns over {cov_window}; "
        "CARRY and MERGER_ARB rows judgmental; CASH_TBILL uncorrelated by assumption"
    )
    details["cash_rate"] = {"window": _span(cash_recent)}
    details["correlation"] = {
        "window": cov_window,
        "window_rule": (
            "common window in which every series has data"
            if cov_start is None
            else ("common window" if complete else "pairwise-complete from " + f"{start:%Y-%m}")
        ),
        "min_eigenvalue": min_eig,
        "repaired": repaired,
    }
    if repaired:
        details["correlation"]["min_eigenvalue_before_repair"] = min_eig_raw

    window_rule = details["correlation"]["window_rule"]
    method = (
        "Annual arithmetic excess returns over cash (fractions). Volatilities and correlations: "
        f"sample statistics of monthly excess returns over {cov_window} ({window_rule}; "
        "annualised with sqrt(12)); the matrix is repaired to the "
        "nearest correlation matrix (Higham 2002) if it is not positive definite. Expected "
        f"excess return = {history_weight:g} x historical mean excess (each series' full "
        f"history, x 12) + {1 - history_weight:g} x a Sharpe-ratio prior ({prior_sharpe:g} x "
        "the type's volatility). MANAGED_FUT's history is a gross-of-fee paper factor: its "
        f"historical mean is cut by {managed_futures_fee:g} for fees and costs, then halved "
        f"(keep {managed_futures_keep:g}) for in-sample bias, before the blend. CARRY and "
        "MERGER_ARB have no public series: judgmental numbers with a stated rationale. "
        f"CASH_TBILL: zero excess return, volatility {cash_volatility:g}, uncorrelated. Cash "
        f"rate: last {cash_months} months of CASH_TBILL, mean x 12. See resources/ASSUMPTIONS.md."
    )
    metadata = {
        "as_of": f"{end:%Y-%m-%d}",
        "units": "annual fractions; arithmetic excess returns over the cash rate",
        "parameters": {
            "history_weight": history_weight,
            "prior_sharpe": prior_sharpe,
            "managed_futures_fee": managed_futures_fee,
            "managed_futures_keep": managed_futures_keep,
            "cash_months": cash_months,
            "cash_volatility": cash_volatility,
            "covariance_window_start": f"{window.index[0]:%Y-%m}",
        },
    }
    return MarketAssumptions(
        pd.Series({c: round(mu[c], decimals) for c in codes}),
        pd.Series({c: round(vol[c], decimals) for c in codes}),
        pd.DataFrame(matrix, index=codes, columns=codes),
        round(cash_rate, decimals),
        sources=src,
        method=method,
        details=_round_nested(details, decimals),
        metadata=metadata,
    )


def _round_nested(value: Any, decimals: int) -> Any:
    if isinstance(value, float):
        return round(value, decimals)
    if isinstance(value, dict):
        return {k: _round_nested(v, decimals) for k, v in value.items()}
    return value
