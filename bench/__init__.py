"""StackOpt's benchmark against PyPortfolioOpt, skfolio, Riskfolio-Lib and plain cvxpy.

Run ``python -m bench --quick`` (or ``make bench``); see ``bench/README.md``.
"""
