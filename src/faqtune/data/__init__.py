"""Data: raw sources, cleaning, preparation and the prepared data set."""
