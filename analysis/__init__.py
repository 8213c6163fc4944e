"""Where theory and real training meet: metrics shared by every source, and comparisons of
predicted against measured spectra, alignment and collapse."""
from . import metrics  # noqa: F401
