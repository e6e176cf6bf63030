"""Models: the reference pipeline, faqtune's matcher, and the ranking metrics."""
