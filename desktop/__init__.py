"""StackOpt's Qt layer (PySide6 + pyqtgraph): windows, tabs, table models, plots, workers."""
