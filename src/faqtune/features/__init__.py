"""Features: TF-IDF vectors of each distinct text and similarities between them."""
