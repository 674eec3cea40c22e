"""Loading TransNAS-Bench-101 tables (CSV or the official ``.pth``) into device arrays."""

from jaxnas.data.loader import load_table, resolve_data_file
from jaxnas.data.names import SPACES, all_encodings, all_names
from jaxnas.data.table import BenchmarkTable, table_from_numpy

__all__ = [
    "BenchmarkTable",
    "SPACES",
    "all_encodings",
    "all_names",
    "load_table",
    "resolve_data_file",
    "table_from_numpy",
]
